using System.Security.Cryptography;
using Hil.Boards.Failures;
using Hil.Boards.Shell;
using Hil.Boards.Ssh;
using Hil.Peers;

namespace Hil.Boards.Tests;

/// <summary>SSH against a real OpenSSH sshd started for these tests (own config, host key, user key, port).</summary>
[TestFixture, Category("loopback"), NonParallelizable]
public sealed class SshLinkTests : BoardTest
{
    private SshdPeer _sshd = null!;

    [OneTimeSetUp]
    public async Task StartSshd() => _sshd = await SshdPeer.StartAsync();

    [OneTimeTearDown]
    public async Task StopSshd() => await _sshd.DisposeAsync();

    private string SshYaml(string hostKeyLines, string extra = "") => $"""
        name: ssh-board
        ssh:
          host: 127.0.0.1
          port: {_sshd.Port}
          user: {_sshd.User}
          key_file: {_sshd.UserKeyPath}
          connect_timeout: 5s
          reconnect_timeout: 20s
          keepalive: 2s
        {hostKeyLines}
        {extra}
        """;

    private string Pinned => $"  host_key: [\"{_sshd.HostKeyFingerprint}\"]";

    [Test, CancelAfter(60_000)]
    public async Task Exit_status_stdout_and_stderr_come_back_separately(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var board = await ws.OpenAsync(ws.Board(SshYaml(Pinned)));
        var r = await board.Ssh.RunAsync("echo to-stdout; echo to-stderr >&2; printf 'no newline'; exit 7", TimeSpan.FromSeconds(20), ct);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(r.ExitStatus, Is.EqualTo(7));
            Assert.That(r.Stdout, Is.EqualTo("to-stdout\nno newline"));
            Assert.That(r.Stderr, Is.EqualTo("to-stderr\n"));
        }
        var sig = await board.Ssh.RunAsync("kill -SEGV $$", TimeSpan.FromSeconds(20), ct);
        Assert.That((sig.ExitStatus, sig.ExitSignal), Is.EqualTo(((int?)null, "SEGV")));
        var ok = await board.Ssh.RunCheckedAsync("true", TimeSpan.FromSeconds(20), ct);
        Assert.That(ok.Succeeded, Is.True);
        var ex = await Assert.ThrowsAsync<ProductFailureException>(() => board.Ssh.RunCheckedAsync("echo boom >&2; exit 3", TimeSpan.FromSeconds(20), ct));
        Assert.That(ex!.Evidence, Does.Contain("boom"));
    }

    [Test, CancelAfter(60_000)]
    public async Task Arguments_quoted_by_the_helper_arrive_unchanged(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var board = await ws.OpenAsync(ws.Board(SshYaml(Pinned)));
        string[] nasty = ["plain", "", "two words", "it's", "'", "\"$HOME\"", "$(touch /tmp/hil-injected)", "`id`", "a;b|c&d", "back\\slash", "new\nline", "*", "-n", "grüße"];
        foreach (var arg in nasty)
        {
            var r = await board.Ssh.RunAsync($"printf '%s' {ShellQuote.Quote(arg)}", TimeSpan.FromSeconds(20), ct);
            Assert.That(r.Stdout, Is.EqualTo(arg), $"argument {arg}");
        }
        Assert.That(File.Exists("/tmp/hil-injected"), Is.False);
    }

    [Test, CancelAfter(60_000)]
    public async Task Sftp_upload_and_download_round_trip(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var board = await ws.OpenAsync(ws.Board(SshYaml(Pinned)));
        var data = RandomNumberGenerator.GetBytes(1024 * 1024 + 17);
        var local = Path.Combine(ws.Dir, "up.bin");
        await File.WriteAllBytesAsync(local, data, ct);
        var remote = Path.Combine(ws.Dir, "remote dir");
        await board.Ssh.RunCheckedAsync($"mkdir -p {ShellQuote.Quote(remote)}", TimeSpan.FromSeconds(20), ct);
        var remoteFile = Path.Combine(remote, "payload.bin");
        await board.Ssh.UploadAsync(local, remoteFile, mode: "750", ct: ct);
        var sum = await board.Ssh.RunCheckedAsync($"sha256sum {ShellQuote.Quote(remoteFile)}; stat -c %a {ShellQuote.Quote(remoteFile)}", TimeSpan.FromSeconds(20), ct);
        Assert.That(sum.Stdout, Does.StartWith(Convert.ToHexStringLower(SHA256.HashData(data))));
        Assert.That(sum.Stdout.TrimEnd(), Does.EndWith("750"));
        var back = Path.Combine(ws.Dir, "down.bin");
        await board.Ssh.DownloadAsync(remoteFile, back, ct);
        Assert.That((await File.ReadAllBytesAsync(back, ct)).AsSpan().SequenceEqual(data), Is.True);
    }

    [Test, CancelAfter(90_000)]
    public async Task Reconnects_after_the_server_restarts(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var board = await ws.OpenAsync(ws.Board(SshYaml(Pinned)));
        Assert.That((await board.Ssh.RunAsync("echo one", TimeSpan.FromSeconds(20), ct)).Stdout, Is.EqualTo("one\n"));
        // Down for a while, like a rebooting board: the next command waits for it and reconnects.
        var restart = _sshd.RestartAsync(TimeSpan.FromSeconds(2));
        await Task.Delay(300, ct);
        var r = await board.Ssh.RunAsync("echo two", TimeSpan.FromSeconds(20), ct);
        await restart;
        Assert.That(r.Stdout, Is.EqualTo("two\n"));
        Assert.That(board.Ssh.Connections, Is.EqualTo(2));
    }

    [Test, CancelAfter(60_000)]
    public async Task A_timed_out_command_is_killed_on_the_board_even_as_root(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var board = await ws.OpenAsync(ws.Board(SshYaml(Pinned)));
        var marker = $"{Random.Shared.Next(100, 999)}.{Random.Shared.Next(100, 999)}";
        var ex = await Assert.ThrowsAsync<CommandTimeoutException>(() => board.Ssh.RunAsync($"sleep {marker}; echo never", TimeSpan.FromSeconds(1), ct));
        Assert.That(ex!.Message, Does.Contain("killed"));
        await Task.Delay(300, ct);
        var left = await board.Ssh.RunAsync($"pgrep -f 'sleep {marker}'", TimeSpan.FromSeconds(20), ct);
        Assert.That(left.ExitStatus, Is.EqualTo(1), $"still running: {left.Stdout}");
        // The connection is still usable.
        Assert.That((await board.Ssh.RunAsync("echo after", TimeSpan.FromSeconds(20), ct)).Stdout, Is.EqualTo("after\n"));
    }

    [Test, CancelAfter(60_000)]
    public async Task Changed_or_unknown_host_keys_are_refused_with_a_clear_message(CancellationToken ct)
    {
        using var ws = new Workspace();
        var knownHosts = ws.Write("known_hosts", $"[127.0.0.1]:{_sshd.Port} {_sshd.HostKeyLine}\n");
        // A wrong pinned key (another key's fingerprint) is refused.
        var other = new SshdPeerKey(ws.Dir).Fingerprint;
        await using (var pinnedWrong = await ws.OpenAsync(ws.Board(SshYaml($"  host_key: [\"{other}\"]"), "wrong.yaml")))
        {
            var ex = await Assert.ThrowsAsync<HostKeyRejectedException>(() => pinnedWrong.Ssh.RunAsync("true", TimeSpan.FromSeconds(10), ct));
            Assert.That(ex!.Message, Does.Contain("not the key pinned").And.Contain(_sshd.HostKeyFingerprint));
            Assert.That(ex.Retryable, Is.False);
            Assert.That(FailureClassifier.Classify(ex).Class, Is.EqualTo(FailureClass.Infrastructure));
        }
        // known_hosts: works, then the server's key changes (a reinstalled board or an impostor) and it is refused.
        await using (var viaKnown = await ws.OpenAsync(ws.Board(SshYaml($"  known_hosts: {knownHosts}"), "known.yaml")))
        {
            Assert.That((await viaKnown.Ssh.RunAsync("echo ok", TimeSpan.FromSeconds(20), ct)).Stdout, Is.EqualTo("ok\n"));
            var oldFingerprint = _sshd.HostKeyFingerprint;
            _sshd.NewHostKey();
            await _sshd.RestartAsync();
            var ex = await Assert.ThrowsAsync<HostKeyRejectedException>(() => viaKnown.Ssh.RunAsync("true", TimeSpan.FromSeconds(10), ct));
            Assert.That(ex!.Message, Does.Contain("CHANGED").And.Contain(oldFingerprint).And.Contain(_sshd.HostKeyFingerprint));
        }
        // Unknown (empty known_hosts) is refused unless accept-new is opted in; then it is recorded and trusted.
        var empty = ws.Write("known_hosts_empty", "");
        await using (var unknown = await ws.OpenAsync(ws.Board(SshYaml($"  known_hosts: {empty}"), "unknown.yaml")))
        {
            var ex = await Assert.ThrowsAsync<HostKeyRejectedException>(() => unknown.Ssh.RunAsync("true", TimeSpan.FromSeconds(10), ct));
            Assert.That(ex!.Message, Does.Contain("unknown"));
        }
        await using (var tofu = await ws.OpenAsync(ws.Board(SshYaml($"  known_hosts: {empty}\n  accept_new_host_key: true"), "tofu.yaml")))
        {
            Assert.That((await tofu.Ssh.RunAsync("echo first", TimeSpan.FromSeconds(20), ct)).Stdout, Is.EqualTo("first\n"));
        }
        Assert.That(File.ReadAllText(empty), Does.Contain(_sshd.HostKeyLine.Split(' ')[1]));
        var recorded = new KnownHosts(empty).Find("127.0.0.1", _sshd.Port);
        Assert.That(recorded.Single().Fingerprint, Is.EqualTo(_sshd.HostKeyFingerprint));
    }

    /// <summary>A throwaway key, to have a fingerprint that is not the server's.</summary>
    private sealed class SshdPeerKey
    {
        public SshdPeerKey(string dir)
        {
            var path = Path.Combine(dir, "other_key");
            PeerProcess.Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path);
            Fingerprint = PeerProcess.Run("ssh-keygen", "-l", "-E", "sha256", "-f", path + ".pub").Split(' ')[1];
        }

        public string Fingerprint { get; }
    }
}
