using Hil.Boards.BoardFiles;
using Hil.Boards.Links;
using static Hil.Boards.Links.TelnetCodec;

namespace Hil.Boards.Tests;

/// <summary>The telnet/RFC 2217 codec byte by byte: nothing of the protocol reaches the console, every split decodes alike.</summary>
[TestFixture]
public sealed class TelnetCodecTests
{
    private static (byte[] Data, byte[] Replies) Decode(TelnetCodec c, params byte[] input)
    {
        var data = new byte[input.Length];
        var replies = new List<byte>();
        var n = c.Decode(input, data, replies);
        return (data[..n], [.. replies]);
    }

    // What ser2net 4.3 sends first on a telnet(rfc2217) port (captured), then console text and a modem-state notification.
    private static readonly byte[] Ser2netHello =
    [
        Iac, Will, 3, Iac, Do, 3, Iac, Will, 1, Iac, Dont, 1, Iac, Do, 0, Iac, Will, 0, Iac, Do, 44,
        Iac, Sb, 44, 107, 0, Iac, Se,
        (byte)'o', (byte)'k', (byte)'\r', (byte)'\n',
    ];

    [Test]
    public void Ser2nets_opening_decodes_to_the_console_text_alone_with_only_the_answers_owed()
    {
        var c = new TelnetCodec();
        c.Greeting();
        var (data, replies) = Decode(c, Ser2netHello);
        Assert.That(data, Is.EqualTo("ok\r\n"u8.ToArray()));
        // DO SGA and WILL ECHO are questions (answered); DO BINARY, WILL BINARY, DO COM-PORT answer our greeting (no reply).
        Assert.That(replies, Is.EqualTo(new byte[] { Iac, Will, 3, Iac, Do, 1 }));
        Assert.That(c.ComPortAccepted, Is.True);
    }

    [Test]
    public void Every_split_of_the_stream_decodes_to_the_same_bytes_and_answers()
    {
        var stream = Ser2netHello.Concat(new byte[] { 1, Iac, Iac, 2, Iac, Sb, 44, 101, 0, 1, 194, 0, Iac, Se, 3, Iac, 241, 4 }).ToArray();
        var whole = new TelnetCodec();
        whole.Greeting();
        var (expectData, expectReplies) = Decode(whole, stream);
        Assert.That(expectData[^6..], Is.EqualTo(new byte[] { (byte)'\n', 1, Iac, 2, 3, 4 }));
        for (var cut = 1; cut < stream.Length; cut++)
        {
            var c = new TelnetCodec();
            c.Greeting();
            var (d1, r1) = Decode(c, stream[..cut]);
            var (d2, r2) = Decode(c, stream[cut..]);
            Assert.That(d1.Concat(d2), Is.EqualTo(expectData), $"split at {cut}");
            Assert.That(r1.Concat(r2), Is.EqualTo(expectReplies), $"split at {cut}");
            Assert.That(c.ServerBaud, Is.EqualTo(115200), $"split at {cut}");
        }
    }

    [Test]
    public void IAC_is_doubled_on_write_and_a_bare_CR_gets_its_NUL_until_binary_mode_is_agreed()
    {
        var c = new TelnetCodec();
        c.Greeting();
        Assert.That(c.Encode(new byte[] { 1, Iac, 2, (byte)'\r', (byte)'x', (byte)'\r', (byte)'\n' }),
            Is.EqualTo(new byte[] { 1, Iac, Iac, 2, (byte)'\r', 0, (byte)'x', (byte)'\r', (byte)'\n' }));
        Decode(c, Iac, Do, OptBinary);
        Assert.That(c.Encode("\r"u8), Is.EqualTo("\r"u8.ToArray()), "binary: CR goes as it is");
    }

    [Test]
    public void A_non_binary_server_CR_NUL_arrives_as_CR_and_options_nobody_asked_for_are_refused_once()
    {
        var c = new TelnetCodec();
        var (data, replies) = Decode(c, (byte)'a', (byte)'\r', 0, (byte)'b', Iac, Will, 24, Iac, Will, 24, Iac, Do, 31, Iac, Do, 31);
        Assert.That(data, Is.EqualTo("a\rb"u8.ToArray()));
        Assert.That(replies, Is.EqualTo(new byte[] { Iac, Dont, 24, Iac, Wont, 31 }), "refused once each: no negotiation loop");
    }

    [Test]
    public void SET_BAUDRATE_is_four_bytes_in_network_order_with_IAC_escaped()
    {
        Assert.That(SetBaudRate(115200), Is.EqualTo(new byte[] { Iac, Sb, 44, 1, 0, 1, 194, 0, Iac, Se }));
        Assert.That(SetBaudRate(0x00FF_0000 | 255), Is.EqualTo(new byte[] { Iac, Sb, 44, 1, 0, Iac, Iac, 0, Iac, Iac, Iac, Se }));
    }

    [Test]
    public void A_malformed_subnegotiation_is_dropped_not_leaked_into_the_console()
    {
        var c = new TelnetCodec();
        var (data, _) = Decode(c, Iac, Sb, 44, 9, 9, Iac, 7, (byte)'z');
        Assert.That(data, Is.EqualTo("z"u8.ToArray()));
    }

    [Test]
    public void Board_files_take_telnet_urls_and_remember_whether_baud_was_written()
    {
        using var ws = new Workspace();
        var withBaud = ws.Board("name: t\nconsole: { device: \"telnet://ser2net.lab:7002\", baud: 57600 }\n");
        Assert.That((withBaud.Console!.Kind, withBaud.Console.Host, withBaud.Console.Port, withBaud.Console.Baud, withBaud.Console.BaudGiven),
            Is.EqualTo((ConsoleKind.Telnet, "ser2net.lab", 7002, 57600, true)));
        Assert.That(withBaud.Console.ToString(), Is.EqualTo("telnet://ser2net.lab:7002"));
        var noBaud = ws.Board("name: t\nconsole: { device: \"telnet://ser2net.lab:7002\" }\n", "n.yaml");
        Assert.That(noBaud.Console!.BaudGiven, Is.False);
        var bad = Assert.Throws<BoardFileException>(() => ws.Board("name: t\nconsole: { device: \"telnet://ser2net.lab\" }\n", "b.yaml"));
        Assert.That(bad!.Message, Does.Contain("b.yaml:2:").And.Contain("console.device: expected telnet://host:port, got 'telnet://ser2net.lab'"));
        Assert.That(bad.Message, Does.Not.Contain("\n   at "));
    }
}
