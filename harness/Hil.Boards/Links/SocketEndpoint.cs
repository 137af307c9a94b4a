using System.Net.Sockets;

namespace Hil.Boards.Links;

/// <summary>
/// A console reached over a stream socket: raw TCP (ser2net "raw" ports, a lab console server) or a
/// unix-domain socket (QEMU <c>-serial unix:PATH,server,nowait</c>).
/// </summary>
public sealed class SocketEndpoint : IConsoleEndpoint
{
    private readonly Func<Socket> _create;
    private readonly EndPointFactory _endpoint;

    private delegate System.Net.EndPoint EndPointFactory();

    private SocketEndpoint(string address, Func<Socket> create, EndPointFactory endpoint)
    {
        Address = address;
        _create = create;
        _endpoint = endpoint;
    }

    public static SocketEndpoint Tcp(string host, int port) => new($"tcp://{host}:{port}",
        () => new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true },
        () => System.Net.IPAddress.TryParse(host, out var ip) ? new System.Net.IPEndPoint(ip, port) : new System.Net.DnsEndPoint(host, port));

    public static SocketEndpoint Unix(string path) => new($"unix:{path}",
        () => new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified),
        () => new UnixDomainSocketEndPoint(path));

    public string Address { get; }
    public bool CanWrite => true;

    public async Task<IConsoleTransport> OpenAsync(CancellationToken ct)
    {
        var socket = _create();
        try
        {
            await socket.ConnectAsync(_endpoint(), ct).ConfigureAwait(false);
            return new Transport(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private sealed class Transport(Socket socket) : IPollableTransport
    {
        public bool WaitReadable(int timeoutMs) => socket.Poll(timeoutMs * 1000, SelectMode.SelectRead);

        public int ReadAvailable(Span<byte> buffer)
        {
            if (socket.Available == 0)
            {
                // Readable with nothing to read is the peer closing the connection.
                if (socket.Poll(0, SelectMode.SelectRead)) throw new IOException("connection closed by the other end");
                return 0;
            }
            return socket.Receive(buffer, SocketFlags.None);
        }

        public ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct) => socket.ReceiveAsync(buffer, SocketFlags.None, ct);

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            while (data.Length > 0)
            {
                var n = await socket.SendAsync(data, SocketFlags.None, ct).ConfigureAwait(false);
                data = data[n..];
            }
        }

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
