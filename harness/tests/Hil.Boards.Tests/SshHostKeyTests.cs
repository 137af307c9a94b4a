using System.Text.RegularExpressions;
using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Hil.Boards.Ssh;
using Hil.Peers;

namespace Hil.Boards.Tests;

/// <summary>
/// Host-key verification, every combination of pin / known_hosts / accept_new_host_key, against a
/// real OpenSSH sshd that also accepts password logins (a test user that exists only in the sshd's
/// own mount namespace). Each case logs in with the password, so a refused case also proves the
/// password never reached the server (sshd's log has no password attempt for it).
/// </summary>
[TestFixture, Category("loopback"), NonParallelizable]
public sealed class SshHostKeyTests : BoardTest
{
    private SshdPeer _sshd = null!;
    private string _otherKeyLine = "";
    private string _otherFingerprint = "";

    [OneTimeSetUp]
    public async Task StartSshd()
    {
        _sshd = await SshdPeer.StartAsync(passwordUser: true);
        var other = Path.Combine(_sshd.Directory, "other_key");
        PeerProcess.Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other);
        _otherKeyLine = File.ReadAllText(other + ".pub").Trim();
        _otherFingerprint = PeerProcess.Run("ssh-keygen", "-l", "-E", "sha256", "-f", other + ".pub").Split(' ')[1];
    }

    [OneTimeTearDown]
    public async Task StopSshd() => await _sshd.DisposeAsync();

    public enum Pin { None, Match, Mismatch }

    /// <summary>What known_hosts is (or holds) for the case.</summary>
    public enum Kh { None, Missing, Empty, Plain, Hashed, PortlessName, OtherKey, Revoked, RevokedAndPlain, DevNull, Directory, Fifo }

    public enum Outcome { Trusted, Refused, LoadError }

    /// <summary>
    /// The expected verdict, written from the rules of issue 11 (not from the implementation): a pin
    /// that does not match is refused whatever else is given; sources are never OR'd; accept_new needs
    /// a writable regular known_hosts; only a key nothing contradicts is recorded.
    /// </summary>
    private static (Outcome Outcome, string Says, bool Recorded) Expected(Pin pin, Kh kh, bool acceptNew)
    {
        if (pin == Pin.None && kh == Kh.None) return (Outcome.LoadError, "host keys are always verified", false);
        if (acceptNew && kh == Kh.None) return (Outcome.LoadError, "needs known_hosts", false);
        if (kh is Kh.DevNull or Kh.Directory or Kh.Fifo) return (Outcome.LoadError, "known_hosts must be a regular file", false);
        if (pin == Pin.Mismatch) return (Outcome.Refused, "not the key pinned", false);
        if (kh is Kh.Revoked or Kh.RevokedAndPlain) return (Outcome.Refused, "@revoked", false);
        if (kh == Kh.OtherKey) return (Outcome.Refused, "CHANGED", false);
        if (kh is Kh.Plain or Kh.Hashed) return (Outcome.Trusted, "", false);
        // Left: the key is not listed (no file, missing, empty, or listed only for port 22).
        if (acceptNew) return (Outcome.Trusted, "", true);
        if (pin == Pin.Match) return (Outcome.Trusted, "", false);
        return (Outcome.Refused, kh == Kh.Missing ? "does not exist" : "is unknown", false);
    }

    public static IEnumerable<TestCaseData> Combinations() =>
        from pin in Enum.GetValues<Pin>()
        from kh in Enum.GetValues<Kh>()
        from acceptNew in new[] { false, true }
        select new TestCaseData(pin, kh, acceptNew).SetName($"HostKey_pin_{pin}_known_hosts_{kh}_accept_new_{acceptNew}");

    [TestCaseSource(nameof(Combinations)), CancelAfter(60_000)]
    public async Task Every_combination_of_pin_known_hosts_and_accept_new(Pin pin, Kh kh, bool acceptNew, CancellationToken ct)
    {
        using var ws = new Workspace();
        var (outcome, says, recorded) = Expected(pin, kh, acceptNew);
        var knownHosts = MakeKnownHosts(ws, kh);
        var before = KnownHostsContent(knownHosts);
        var lines = new List<string>();
        if (pin != Pin.None) lines.Add($"  host_key: [\"{(pin == Pin.Match ? _sshd.HostKeyFingerprint : _otherFingerprint)}\"]");
        if (knownHosts is not null) lines.Add($"  known_hosts: {knownHosts}");
        if (acceptNew) lines.Add("  accept_new_host_key: true");
        var yaml = PasswordBoard(ws, string.Join("\n", lines));

        if (outcome == Outcome.LoadError)
        {
            var ex = Assert.Throws<BoardFileException>(() => ws.Board(yaml))!;
            Assert.That(ex.Message, Does.Contain(says));
            // file:line:column: field: the line is the field's own line, never a stack trace.
            Assert.That(ex.Errors.All(e => e.File.EndsWith("board.yaml") && e.Line > 1 && e.Field.StartsWith("ssh")), Is.True, ex.Message);
            Assert.That(KnownHostsContent(knownHosts), Is.EqualTo(before), "known_hosts must not be touched");
            return;
        }

        var attemptsBefore = PasswordAttempts();
        await using var board = await ws.OpenAsync(ws.Board(yaml));
        if (outcome == Outcome.Trusted)
        {
            var r = await board.Ssh.RunAsync("id -un", TimeSpan.FromSeconds(20), ct);
            Assert.That(r.Stdout, Is.EqualTo(_sshd.PasswordUser + "\n"), r.Stderr);
            Assert.That(PasswordAttempts() - attemptsBefore, Is.EqualTo(1), "one password login");
        }
        else
        {
            var ex = (await Assert.ThrowsAsync<HostKeyRejectedException>(() => board.Ssh.RunAsync("true", TimeSpan.FromSeconds(10), ct)))!;
            Assert.That(ex.Message, Does.Contain(says).And.Contain(_sshd.HostKeyFingerprint));
            Assert.That(ex.Retryable, Is.False);
            // The stranger was never sent the password: sshd saw no password attempt at all.
            Assert.That(PasswordAttempts(), Is.EqualTo(attemptsBefore), "no password may reach a host whose key was refused");
        }
        if (recorded)
        {
            var entry = new KnownHosts(knownHosts!).Find("127.0.0.1", _sshd.Port);
            Assert.That(entry.Select(e => e.Fingerprint), Is.EqualTo(new[] { _sshd.HostKeyFingerprint }));
        }
        else
        {
            Assert.That(KnownHostsContent(knownHosts), Is.EqualTo(before), "known_hosts must not be touched");
        }
    }

    [Test, CancelAfter(60_000)]
    public async Task A_wrong_password_is_refused_as_a_test_error_naming_the_fields(CancellationToken ct)
    {
        using var ws = new Workspace();
        var yaml = PasswordBoard(ws, $"  host_key: [\"{_sshd.HostKeyFingerprint}\"]", password: "not-" + _sshd.PasswordUserPassword);
        await using var board = await ws.OpenAsync(ws.Board(yaml));
        var ex = (await Assert.ThrowsAsync<TestErrorException>(() => board.Ssh.RunAsync("true", TimeSpan.FromSeconds(10), ct)))!;
        Assert.That(ex.Message, Does.Contain("authentication failed").And.Contain("ssh.password"));
        Assert.That(File.ReadAllText(_sshd.LogPath), Does.Contain($"Failed password for {_sshd.PasswordUser}"));
    }

    [Test]
    public void Accept_new_with_a_known_hosts_that_cannot_be_written_is_refused_at_load_naming_file_line_and_field()
    {
        using var ws = new Workspace();
        var aFile = ws.Write("a-file", "x");
        // The parent is a regular file: the known_hosts can never be created.
        var yaml = PasswordBoard(ws, $"  known_hosts: {Path.Combine(aFile, "known_hosts")}\n  accept_new_host_key: true");
        var ex = Assert.Throws<BoardFileException>(() => ws.Board(yaml))!;
        var e = ex.Errors.Single();
        Assert.That((e.Field, e.Line), Is.EqualTo(("ssh.accept_new_host_key", 11)), ex.Message);
        Assert.That(e.Message, Does.Contain("cannot be created").And.Contain(aFile));
        Assert.That(ex.Message, Does.StartWith(Path.Combine(ws.Dir, "board.yaml") + ":11:"));
    }

    [Test, CancelAfter(60_000)]
    public async Task A_known_hosts_replaced_by_a_special_file_after_loading_is_refused_and_never_read(CancellationToken ct)
    {
        using var ws = new Workspace();
        var kh = ws.Write("known_hosts", "");
        var spec = ws.Board(PasswordBoard(ws, $"  known_hosts: {kh}\n  accept_new_host_key: true"));
        // After the load: the file becomes a FIFO (reading it would block forever) ...
        File.Delete(kh);
        PeerProcess.Run("mkfifo", kh);
        await using (var board = await ws.OpenAsync(spec))
        {
            var ex = (await Assert.ThrowsAsync<HostKeyRejectedException>(() => board.Ssh.RunAsync("true", TimeSpan.FromSeconds(10), ct)))!;
            Assert.That(ex.Message, Does.Contain("FIFO").And.Contain(kh));
        }
        // ... or a directory: accept-new cannot record, so it does not accept.
        File.Delete(kh);
        Directory.CreateDirectory(kh);
        var attempts = PasswordAttempts();
        await using (var board = await ws.OpenAsync(spec))
        {
            var ex = (await Assert.ThrowsAsync<HostKeyRejectedException>(() => board.Ssh.RunAsync("true", TimeSpan.FromSeconds(10), ct)))!;
            Assert.That(ex.Message, Does.Contain("directory").And.Contain(kh));
        }
        Assert.That(PasswordAttempts(), Is.EqualTo(attempts));
    }

    [Test, CancelAfter(60_000)]
    public async Task Accept_new_into_a_place_where_nothing_can_be_created_is_refused_at_load_or_before_the_password(CancellationToken ct)
    {
        // sysfs: access(2) may say "writable" to root, yet no file can be created there. Where the
        // load cannot tell (a writable-looking directory), the connection must be refused before any
        // credential is sent; where it can (a read-only mount), the load refuses it.
        using var ws = new Workspace();
        var kh = $"/sys/kernel/hil-known-hosts-{Guid.NewGuid():N}";
        var yaml = PasswordBoard(ws, $"  known_hosts: {kh}\n  accept_new_host_key: true");
        BoardFiles.BoardSpec spec;
        try
        {
            spec = ws.Board(yaml);
        }
        catch (BoardFileException ex)
        {
            Assert.That(ex.Message, Does.Contain("ssh.accept_new_host_key").And.Contain(kh));
            TestContext.Out.WriteLine($"refused at load: {ex.Message}");
            return;
        }
        var attempts = PasswordAttempts();
        await using var board = await ws.OpenAsync(spec);
        var refused = (await Assert.ThrowsAsync<HostKeyRejectedException>(() => board.Ssh.RunAsync("true", TimeSpan.FromSeconds(10), ct)))!;
        Assert.That(refused.Message, Does.Contain("cannot record it").And.Contain(kh));
        TestContext.Out.WriteLine($"refused at connection: {refused.Message}");
        Assert.That(PasswordAttempts(), Is.EqualTo(attempts), "no password may be sent when the key cannot be recorded");
        Assert.That(File.Exists(kh), Is.False);
    }

    private string PasswordBoard(Workspace ws, string hostKeyLines, string? password = null)
    {
        var pw = ws.Write("ssh-password", (password ?? _sshd.PasswordUserPassword) + "\n");
        return $"""
            name: ssh-board
            ssh:
              host: 127.0.0.1
              port: {_sshd.Port}
              user: {_sshd.PasswordUser}
              password: {"{"} file: {pw} {"}"}
              connect_timeout: 5s
              reconnect_timeout: 10s
              keepalive: 2s
            {hostKeyLines}

            """;
    }

    /// <summary>Password attempts (accepted or failed) sshd logged for the test user so far.</summary>
    private int PasswordAttempts() =>
        Regex.Matches(File.ReadAllText(_sshd.LogPath), $@"(Accepted|Failed) password for {_sshd.PasswordUser} ").Count;

    private static string? KnownHostsContent(string? path) =>
        path is not null && FileKinds.Of(path) == FileKind.Regular ? File.ReadAllText(path) : path is null ? null : $"({FileKinds.Of(path)})";

    private string? MakeKnownHosts(Workspace ws, Kh kh)
    {
        var server = $"[127.0.0.1]:{_sshd.Port}";
        var path = Path.Combine(ws.Dir, "known_hosts");
        switch (kh)
        {
            case Kh.None: return null;
            case Kh.Missing: return Path.Combine(ws.Dir, "not-yet", "known_hosts");
            case Kh.Empty: return ws.Write("known_hosts", "# nothing yet\n");
            case Kh.Plain: return ws.Write("known_hosts", $"{server} {_sshd.HostKeyLine}\n");
            case Kh.Hashed:
                // Hashed by OpenSSH itself (HashKnownHosts format |1|salt|hmac), not by our code.
                ws.Write("known_hosts", $"{server} {_sshd.HostKeyLine}\n");
                PeerProcess.Run("ssh-keygen", "-H", "-f", path);
                Assert.That(File.ReadAllText(path), Does.StartWith("|1|").And.Not.Contain("127.0.0.1"));
                return path;
            case Kh.PortlessName: return ws.Write("known_hosts", $"127.0.0.1 {_sshd.HostKeyLine}\n"); // vouches for port 22 only
            case Kh.OtherKey: return ws.Write("known_hosts", $"{server} {_otherKeyLine}\n");
            case Kh.Revoked: return ws.Write("known_hosts", $"@revoked {server} {_sshd.HostKeyLine}\n");
            case Kh.RevokedAndPlain: return ws.Write("known_hosts", $"{server} {_sshd.HostKeyLine}\n@revoked * {_sshd.HostKeyLine}\n");
            case Kh.DevNull: return "/dev/null";
            case Kh.Directory:
                Directory.CreateDirectory(path);
                return path;
            case Kh.Fifo:
                PeerProcess.Run("mkfifo", path);
                return path;
            default: throw new ArgumentOutOfRangeException(nameof(kh));
        }
    }
}
