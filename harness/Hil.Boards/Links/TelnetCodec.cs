namespace Hil.Boards.Links;

/// <summary>
/// The client side of a telnet stream (RFC 854/855) with the COM-PORT-OPTION of RFC 2217, as a pure
/// byte transformer: <see cref="Decode"/> turns what the server sent into console bytes plus the
/// answers owed to it, <see cref="Encode"/> escapes what we send. No IAC byte ever reaches the
/// console log or the board. Only BINARY, SUPPRESS-GO-AHEAD, ECHO (server side) and COM-PORT-OPTION
/// (our side) are accepted; everything else is refused, once per state change (no negotiation loops).
/// </summary>
public sealed class TelnetCodec
{
    public const byte Iac = 255, Dont = 254, Do = 253, Wont = 252, Will = 251, Sb = 250, Se = 240;
    public const byte OptBinary = 0, OptEcho = 1, OptSuppressGoAhead = 3, OptComPort = 44;
    /// <summary>RFC 2217 SET-BAUDRATE (client → server); the server answers with 100 added.</summary>
    public const byte ComSetBaudRate = 1, ComServerOffset = 100;

    private enum State { Data, Iac, Negotiate, Sub, SubIac, DataAfterCr }

    private State _state = State.Data;
    private byte _verb;
    private readonly List<byte> _sub = [];
    // What each side has agreed to; an answer is sent only when a request changes one of these.
    private readonly HashSet<byte> _serverWill = [];
    private readonly HashSet<byte> _clientWill = [];
    private readonly HashSet<byte> _refusedServer = [];
    private readonly HashSet<byte> _refusedClient = [];
    // Offered in the greeting and not answered yet: the server's reply settles them, with no answer owed.
    private readonly HashSet<byte> _serverPending = [];
    private readonly HashSet<byte> _clientPending = [];

    /// <summary>True once the server said DO COM-PORT-OPTION (an RFC 2217 access server).</summary>
    public bool ComPortAccepted => _clientWill.Contains(OptComPort);
    /// <summary>True once the server refused COM-PORT-OPTION (a plain telnet server).</summary>
    public bool ComPortRefused { get; private set; }
    /// <summary>The baud rate the server last reported (its answer to SET-BAUDRATE), or null.</summary>
    public int? ServerBaud { get; private set; }
    /// <summary>Raised (inside <see cref="Decode"/>) when the server answers DO COM-PORT-OPTION.</summary>
    public event Action? ComPortReady;

    /// <summary>Server → us binary mode: a CR is then not followed by NUL/LF padding to strip.</summary>
    private bool ServerBinary => _serverWill.Contains(OptBinary);
    private bool ClientBinary => _clientWill.Contains(OptBinary);

    /// <summary>What the client offers right after connecting: 8-bit clean both ways, no go-aheads, and COM-PORT control.</summary>
    public byte[] Greeting()
    {
        _clientPending.UnionWith([OptBinary, OptComPort]);
        _serverPending.UnionWith([OptBinary, OptSuppressGoAhead]);
        return [Iac, Will, OptBinary, Iac, Do, OptBinary, Iac, Do, OptSuppressGoAhead, Iac, Will, OptComPort];
    }

    /// <summary>RFC 2217 SET-BAUDRATE: four bytes, network order, IAC-escaped inside the subnegotiation.</summary>
    public static byte[] SetBaudRate(int baud)
    {
        var value = new[] { (byte)(baud >> 24), (byte)(baud >> 16), (byte)(baud >> 8), (byte)baud };
        var o = new List<byte> { Iac, Sb, OptComPort, ComSetBaudRate };
        foreach (var b in value)
        {
            o.Add(b);
            if (b == Iac) o.Add(Iac);
        }
        o.Add(Iac);
        o.Add(Se);
        return [.. o];
    }

    /// <summary>Escapes console bytes for the wire: IAC doubled; outside binary mode a bare CR becomes CR NUL (RFC 854).</summary>
    public byte[] Encode(ReadOnlySpan<byte> data)
    {
        var o = new List<byte>(data.Length + 8);
        for (var i = 0; i < data.Length; i++)
        {
            var b = data[i];
            o.Add(b);
            if (b == Iac) o.Add(Iac);
            else if (b == (byte)'\r' && !ClientBinary && (i + 1 >= data.Length || data[i + 1] != (byte)'\n')) o.Add(0);
        }
        return [.. o];
    }

    /// <summary>
    /// Consumes bytes from the server (any split: state is kept between calls). Console bytes are
    /// written to <paramref name="data"/> (never longer than the input); answers owed to the server
    /// are appended to <paramref name="replies"/>. Returns the number of console bytes.
    /// </summary>
    public int Decode(ReadOnlySpan<byte> input, Span<byte> data, List<byte> replies)
    {
        var n = 0;
        foreach (var b in input)
        {
            switch (_state)
            {
                case State.Data:
                    if (b == Iac) _state = State.Iac;
                    else
                    {
                        data[n++] = b;
                        if (b == (byte)'\r' && !ServerBinary) _state = State.DataAfterCr;
                    }
                    break;
                case State.DataAfterCr:
                    // NVT: CR is sent as CR NUL or CR LF; the NUL is padding, not console output.
                    _state = State.Data;
                    if (b == 0) break;
                    if (b == Iac) { _state = State.Iac; break; }
                    data[n++] = b;
                    if (b == (byte)'\r') _state = State.DataAfterCr;
                    break;
                case State.Iac:
                    switch (b)
                    {
                        case Iac: data[n++] = Iac; _state = State.Data; break;
                        case Will or Wont or Do or Dont: _verb = b; _state = State.Negotiate; break;
                        case Sb: _sub.Clear(); _state = State.Sub; break;
                        default: _state = State.Data; break;   // NOP, GA, AYT...: commands without data
                    }
                    break;
                case State.Negotiate:
                    Negotiate(_verb, b, replies);
                    _state = State.Data;
                    break;
                case State.Sub:
                    if (b == Iac) _state = State.SubIac;
                    else if (_sub.Count < 256) _sub.Add(b);
                    break;
                case State.SubIac:
                    if (b == Se) { Subnegotiation(); _state = State.Data; }
                    else if (b == Iac) { if (_sub.Count < 256) _sub.Add(Iac); _state = State.Sub; }
                    else _state = State.Data;   // malformed: drop the subnegotiation, never leak it as data
                    break;
            }
        }
        return n;
    }

    private void Negotiate(byte verb, byte opt, List<byte> replies)
    {
        switch (verb)
        {
            case Will:
                if (_serverPending.Remove(opt)) _serverWill.Add(opt);   // the answer to our DO: nothing owed
                else if (opt is OptBinary or OptSuppressGoAhead or OptEcho)
                {
                    if (_serverWill.Add(opt)) Reply(replies, Do, opt);
                }
                else if (_refusedServer.Add(opt)) Reply(replies, Dont, opt);
                break;
            case Wont:
                if (_serverPending.Remove(opt)) break;
                if (_serverWill.Remove(opt)) Reply(replies, Dont, opt);
                break;
            case Do:
                if (_clientPending.Remove(opt)) _clientWill.Add(opt);   // the answer to our WILL
                else if (opt is OptBinary or OptComPort or OptSuppressGoAhead)
                {
                    if (_clientWill.Add(opt)) Reply(replies, Will, opt);
                }
                else if (_refusedClient.Add(opt)) Reply(replies, Wont, opt);
                if (opt == OptComPort && _clientWill.Contains(OptComPort)) ComPortReady?.Invoke();
                break;
            case Dont:
                if (opt == OptComPort) ComPortRefused = true;
                if (_clientPending.Remove(opt)) break;
                if (_clientWill.Remove(opt)) Reply(replies, Wont, opt);
                break;
        }
    }

    private static void Reply(List<byte> replies, byte verb, byte opt) => replies.AddRange([Iac, verb, opt]);

    private void Subnegotiation()
    {
        if (_sub.Count >= 6 && _sub[0] == OptComPort && _sub[1] == ComServerOffset + ComSetBaudRate)
            ServerBaud = (_sub[2] << 24) | (_sub[3] << 16) | (_sub[4] << 8) | _sub[5];
        // Line-state and modem-state notifications (106, 107) carry nothing the console needs.
    }
}
