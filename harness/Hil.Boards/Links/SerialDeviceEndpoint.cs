using System.IO.Ports;

namespace Hil.Boards.Links;

/// <summary>A UART (USB adapter, on-board tty) or a pseudo-terminal, through System.IO.Ports.</summary>
public sealed class SerialDeviceEndpoint(string path, int baud) : IConsoleEndpoint
{
    public string Address => path;
    public bool CanWrite => true;

    public Task<IConsoleTransport> OpenAsync(CancellationToken ct)
    {
        // System.IO.Ports reports a missing device as "access denied"; say what is really wrong.
        if (!File.Exists(path)) throw new IOException($"serial device {path} does not exist (unplugged or not powered?)");
        var port = new SerialPort(path, baud)
        {
            // Without a write timeout a write to a vanished device blocks forever.
            WriteTimeout = 5000,
            Handshake = Handshake.None,
        };
        port.Open();
        return Task.FromResult<IConsoleTransport>(new Transport(port));
    }

    private sealed class Transport(SerialPort port) : IConsoleTransport
    {
        private readonly Stream _stream = port.BaseStream;
        private volatile bool _gone;

        public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct)
        {
            try
            {
                // ReadTimeout does not apply to async reads; the caller's token bounds the wait.
                return await _stream.ReadAsync(buffer, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or IOException or InvalidOperationException)
            {
                // A vanished device shows up as "port closed" while IsOpen stays true.
                _gone = true;
                throw new IOException($"serial device {port.PortName} is gone: {ex.Message}", ex);
            }
        }

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            if (_gone) throw new IOException($"serial device {port.PortName} is gone");
            // The synchronous write honours WriteTimeout; run it off the caller's thread.
            await Task.Run(() => _stream.Write(data.Span), ct).ConfigureAwait(false);
        }

        public async ValueTask DisposeAsync()
        {
            // Disposing a SerialPort whose device vanished can hang for a long time: never wait for it.
            var dispose = Task.Run(port.Dispose);
            await Task.WhenAny(dispose, Task.Delay(2000)).ConfigureAwait(false);
        }
    }
}
