using System.Net.Sockets;

namespace Hil.Boards.Links;

/// <summary>
/// A console behind a telnet port with RFC 2217 (ser2net's <c>telnet(rfc2217)</c> accepter, labgrid's
/// default): the bytes are unescaped by <see cref="TelnetCodec"/>, negotiations answered, and when
/// the board file gives a baud rate the serial port is set to it with COM-PORT-OPTION SET-BAUDRATE
/// before the first byte is handed to the console.
/// </summary>
public sealed class TelnetEndpoint(string host, int port, int? baud) : IConsoleEndpoint
{
    /// <summary>How long opening waits for the server's COM-PORT answers (a plain telnet server never sends one).</summary>
    public TimeSpan NegotiationTimeout { get; init; } = TimeSpan.FromSeconds(2);

    public string Address => $"telnet://{host}:{port}";
    public bool CanWrite => true;

    /// <summary>What the last opening learned: the server's reported baud rate (null: not asked or no RFC 2217).</summary>
    public int? ServerBaud { get; private set; }
    /// <summary>True when the last opening found a server that refuses COM-PORT-OPTION.</summary>
    public bool ComPortRefused { get; private set; }

    public async Task<IConsoleTransport> OpenAsync(CancellationToken ct)
    {
        // A send that cannot complete (ser2net gone without a FIN) fails instead of hanging the writer.
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, SendTimeout = 10_000 };
        try
        {
            System.Net.EndPoint ep = System.Net.IPAddress.TryParse(host, out var ip)
                ? new System.Net.IPEndPoint(ip, port) : new System.Net.DnsEndPoint(host, port);
            await socket.ConnectAsync(ep, ct).ConfigureAwait(false);
            var transport = new Transport(socket);
            await transport.NegotiateAsync(baud, NegotiationTimeout, ct).ConfigureAwait(false);
            ServerBaud = transport.Codec.ServerBaud;
            ComPortRefused = transport.Codec.ComPortRefused;
            return transport;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private sealed class Transport(Socket socket) : IPollableTransport
    {
        public TelnetCodec Codec { get; } = new();
        private readonly Lock _sendLock = new();
        private readonly byte[] _wire = new byte[16 * 1024];
        private readonly Queue<byte> _early = new();   // console bytes that arrived while negotiating

        /// <summary>Greeting, then (if a baud rate is wanted) SET-BAUDRATE once the server accepts COM-PORT, then its answer.</summary>
        public async Task NegotiateAsync(int? baud, TimeSpan timeout, CancellationToken ct)
        {
            Send(Codec.Greeting());
            if (baud is not { } rate) return;
            var asked = false;
            var deadline = DateTime.UtcNow + timeout;
            while (DateTime.UtcNow < deadline && !Codec.ComPortRefused && Codec.ServerBaud is null)
            {
                ct.ThrowIfCancellationRequested();
                if (!asked && Codec.ComPortAccepted)
                {
                    Send(TelnetCodec.SetBaudRate(rate));
                    asked = true;
                }
                if (!socket.Poll(20_000, SelectMode.SelectRead)) continue;
                var buf = new byte[4096];
                var n = ReadAvailable(buf);
                for (var i = 0; i < n; i++) _early.Enqueue(buf[i]);
            }
            await Task.CompletedTask.ConfigureAwait(false);
        }

        private void Send(ReadOnlySpan<byte> bytes)
        {
            try
            {
                lock (_sendLock)
                    while (bytes.Length > 0) bytes = bytes[socket.Send(bytes, SocketFlags.None)..];
            }
            catch (SocketException ex)
            {
                // Like a read's end of stream: the console server went away (ser2net restart, device failure).
                throw new IOException($"connection closed by the other end ({ex.SocketErrorCode})", ex);
            }
        }

        public bool WaitReadable(int timeoutMs) => _early.Count > 0 || socket.Poll(timeoutMs * 1000, SelectMode.SelectRead);

        public int ReadAvailable(Span<byte> buffer)
        {
            if (_early.Count > 0)
            {
                var k = 0;
                while (k < buffer.Length && _early.Count > 0) buffer[k++] = _early.Dequeue();
                return k;
            }
            if (socket.Available == 0)
            {
                // Readable with nothing to read is the peer closing the connection.
                if (socket.Poll(0, SelectMode.SelectRead)) throw new IOException("connection closed by the other end");
                return 0;
            }
            var max = Math.Min(buffer.Length, _wire.Length);
            var got = socket.Receive(_wire, 0, max, SocketFlags.None);
            if (got == 0) throw new IOException("connection closed by the other end");
            var replies = new List<byte>();
            var n = Codec.Decode(_wire.AsSpan(0, got), buffer, replies);
            if (replies.Count > 0) Send(replies.ToArray());
            return n;
        }

        public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct)
        {
            while (true)
            {
                if (_early.Count == 0 && socket.Available == 0)
                {
                    // Wait without holding a thread busy, then decode what came (a chunk may be all negotiation).
                    var got = await socket.ReceiveAsync(_wire.AsMemory(0, Math.Min(buffer.Length, _wire.Length)), SocketFlags.None, ct).ConfigureAwait(false);
                    if (got == 0) return 0;
                    var replies = new List<byte>();
                    var n = Codec.Decode(_wire.AsSpan(0, got), buffer.Span, replies);
                    if (replies.Count > 0) Send(replies.ToArray());
                    if (n > 0) return n;
                    continue;
                }
                var k = ReadAvailable(buffer.Span);
                if (k > 0) return k;
            }
        }

        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            ct.ThrowIfCancellationRequested();
            // Encoded and sent under the lock: a negotiation answer must never land inside an escaped sequence.
            lock (_sendLock) Send(Codec.Encode(data.Span));
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
