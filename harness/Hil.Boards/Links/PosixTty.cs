using System.Runtime.InteropServices;

namespace Hil.Boards.Links;

/// <summary>
/// The data path of a tty: a non-blocking file descriptor driven with poll(2), read(2), write(2).
/// System.IO.Ports still opens and configures the device (baud, 8N1, raw mode); its own stream is
/// not used for data because its I/O loop thread adds milliseconds per round trip (measured: about
/// 5 ms per write and 15 ms per echo round trip on a pty, against 0.07 ms for the same echo over a
/// socket), which made console automation slower than a plain expect script.
/// </summary>
internal sealed partial class PosixTty : IDisposable
{
    private const int O_RDWR = 0x2, O_NOCTTY = 0x100, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    private const short POLLIN = 0x1, POLLOUT = 0x4, POLLERR = 0x8, POLLHUP = 0x10, POLLNVAL = 0x20;
    private const int EINTR = 4, EAGAIN = 11;

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SysOpen(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int SysClose(int fd);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int SysPoll(ref PollFd fds, nuint nfds, int timeout);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static partial nint SysRead(int fd, ref byte buf, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static partial nint SysWrite(int fd, ref byte buf, nuint count);

    private int _fd;

    private PosixTty(int fd, string path)
    {
        _fd = fd;
        Path = path;
    }

    public string Path { get; }

    public static PosixTty Open(string path)
    {
        var fd = SysOpen(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) throw new IOException($"cannot open {path}: {Marshal.GetLastPInvokeErrorMessage()}");
        return new PosixTty(fd, path);
    }

    /// <summary>Blocks until bytes arrive (or the token fires); 0 means the device hung up.</summary>
    public int Read(Span<byte> buffer, CancellationToken ct)
    {
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var revents = Poll(POLLIN, 200);
            if (revents == 0) continue;
            if ((revents & POLLIN) == 0 && (revents & (POLLHUP | POLLERR | POLLNVAL)) != 0) return 0;
            var n = SysRead(_fd, ref MemoryMarshal.GetReference(buffer), (nuint)buffer.Length);
            if (n > 0) return (int)n;
            if (n == 0) return 0;
            var err = Marshal.GetLastPInvokeError();
            if (err is EAGAIN or EINTR) continue;
            // EIO: the other end of a pty closed, or a USB adapter went away.
            throw new IOException($"{Path}: read failed: {Marshal.GetPInvokeErrorMessage(err)}");
        }
    }

    /// <summary>True when a read would not block (data, or a hang-up to report).</summary>
    public bool WaitReadable(int timeoutMs) => Poll(POLLIN, timeoutMs) != 0;

    /// <summary>Reads what is there now; 0 = nothing; throws when the device hung up or failed.</summary>
    public int ReadAvailable(Span<byte> buffer)
    {
        var n = SysRead(_fd, ref MemoryMarshal.GetReference(buffer), (nuint)buffer.Length);
        if (n > 0) return (int)n;
        if (n == 0) throw new IOException($"{Path}: the other end hung up");
        var err = Marshal.GetLastPInvokeError();
        if (err is EAGAIN or EINTR) return 0;
        throw new IOException($"{Path}: read failed: {Marshal.GetPInvokeErrorMessage(err)}");
    }

    /// <summary>Writes everything, waiting for room at most <paramref name="timeout"/> at a time.</summary>
    public void Write(ReadOnlySpan<byte> data, TimeSpan timeout)
    {
        while (data.Length > 0)
        {
            var n = SysWrite(_fd, ref MemoryMarshal.GetReference(data), (nuint)data.Length);
            if (n > 0)
            {
                data = data[(int)n..];
                continue;
            }
            var err = Marshal.GetLastPInvokeError();
            if (n < 0 && err is not (EAGAIN or EINTR)) throw new IOException($"{Path}: write failed: {Marshal.GetPInvokeErrorMessage(err)}");
            var revents = Poll(POLLOUT, (int)timeout.TotalMilliseconds);
            if (revents == 0) throw new TimeoutException($"{Path}: the device took no data for {timeout.TotalSeconds:0} s");
            if ((revents & (POLLHUP | POLLERR | POLLNVAL)) != 0 && (revents & POLLOUT) == 0) throw new IOException($"{Path}: device hung up");
        }
    }

    private short Poll(short events, int timeoutMs)
    {
        var p = new PollFd { Fd = _fd, Events = events };
        var r = SysPoll(ref p, 1, timeoutMs);
        if (r < 0)
        {
            var err = Marshal.GetLastPInvokeError();
            if (err == EINTR) return 0;
            throw new IOException($"{Path}: poll failed: {Marshal.GetPInvokeErrorMessage(err)}");
        }
        return r == 0 ? (short)0 : p.Revents;
    }

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) SysClose(fd);
    }
}
