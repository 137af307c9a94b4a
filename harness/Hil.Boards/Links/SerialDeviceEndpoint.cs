using System.IO.Ports;

namespace Hil.Boards.Links;

/// <summary>
/// A UART (USB adapter, on-board tty) or a pseudo-terminal. System.IO.Ports opens and configures it
/// (baud rate, 8N1, no handshake, raw); bytes then move through <see cref="PosixTty"/>.
/// </summary>
public sealed class SerialDeviceEndpoint(string path, int baud) : IConsoleEndpoint
{
    public string Address => path;
    public bool CanWrite => true;

    public Task<IConsoleTransport> OpenAsync(CancellationToken ct)
    {
        // System.IO.Ports reports a missing device as "access denied"; say what is really wrong.
        if (!File.Exists(path)) throw new IOException($"serial device {path} does not exist (unplugged or not powered?)");
        var port = new SerialPort(path, baud) { Handshake = Handshake.None, WriteTimeout = 5000 };
        port.Open();
        PosixTty tty;
        try
        {
            tty = PosixTty.Open(path);
        }
        catch
        {
            port.Dispose();
            throw;
        }
        return Task.FromResult<IConsoleTransport>(new Transport(port, tty));
    }

    private sealed class Transport(SerialPort port, PosixTty tty) : IPollableTransport
    {
        public bool WaitReadable(int timeoutMs) => tty.WaitReadable(timeoutMs);
        public int ReadAvailable(Span<byte> buffer) => tty.ReadAvailable(buffer);

        private static readonly TimeSpan WriteTimeout = TimeSpan.FromSeconds(5);

        // Reads complete synchronously on the pump's thread: no thread hop between the device and the log.
        public ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct) => ValueTask.FromResult(tty.Read(buffer.Span, ct));

        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            tty.Write(data.Span, WriteTimeout);
            return ValueTask.CompletedTask;
        }

        public async ValueTask DisposeAsync()
        {
            tty.Dispose();
            // Disposing a SerialPort whose device vanished can hang for a long time: never wait for it.
            var dispose = Task.Run(port.Dispose);
            await Task.WhenAny(dispose, Task.Delay(2000)).ConfigureAwait(false);
        }
    }
}
