namespace Hil.Boards.Links;

/// <summary>An open byte pipe to a console (tty, TCP, unix socket, file). One reader, one writer.</summary>
public interface IConsoleTransport : IAsyncDisposable
{
    /// <summary>Reads what is there (at least one byte); 0 or an exception means the other end is gone.</summary>
    ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct);

    ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct);
}

/// <summary>Opens a transport; called again by <see cref="ConsoleLink"/> each time it reconnects.</summary>
public interface IConsoleEndpoint
{
    /// <summary>For messages: the device path or URL.</summary>
    string Address { get; }

    /// <summary>Whether writes make sense (a followed log file is read-only).</summary>
    bool CanWrite { get; }

    /// <summary>Opens once; throws (IOException, SocketException, ...) when the device is not there now.</summary>
    Task<IConsoleTransport> OpenAsync(CancellationToken ct);
}

/// <summary>
/// A transport whose descriptor can be polled, so that a thread waiting for the board's answer can
/// read it itself: the kernel wakes that thread directly, with no hand-over from the pump thread
/// (one wake-up per answer instead of two, which is what made console automation slower than expect).
/// </summary>
public interface IPollableTransport : IConsoleTransport
{
    /// <summary>True when bytes (or a hang-up) are waiting; false after <paramref name="timeoutMs"/>.</summary>
    bool WaitReadable(int timeoutMs);

    /// <summary>Reads what is there without blocking: 0 = nothing now; throws IOException when the other end is gone.</summary>
    int ReadAvailable(Span<byte> buffer);
}
