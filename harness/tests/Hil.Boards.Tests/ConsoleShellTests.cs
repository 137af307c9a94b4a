using System.Text;
using Hil.Boards.Failures;
using Hil.Boards.Shell;
using Hil.Peers;

namespace Hil.Boards.Tests;

/// <summary>The console shell against a real login shell on a real pty (dash and bash behind socat).</summary>
[TestFixture, Category("loopback")]
public sealed class ConsoleShellTests : BoardTest
{
    [Test, CancelAfter(120_000)]
    public async Task Login_then_1000_commands_with_random_outputs_and_exit_codes_are_all_correct(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash);
        var spec = ws.Board(Yaml.ConsoleBoard(peer.Device, peer.PasswordFile));
        await using var board = await ws.OpenAsync(spec);
        await board.EnsureShellAsync(ct);

        // A random text the commands cut pieces from; the test knows every expected output.
        var rng = new Random(1234);
        var pattern = RandomText(rng, 64 * 1024);
        var patternFile = ws.Write("pattern.txt", pattern);
        var failures = new List<string>();
        for (var i = 0; i < 1000; i++)
        {
            var size = rng.Next(10) switch { 0 => 0, < 7 => rng.Next(1, 200), < 9 => rng.Next(200, 4000), _ => rng.Next(4000, 20000) };
            var code = rng.Next(5) == 0 ? rng.Next(1, 256) : 0;
            var toStderr = rng.Next(4) == 0;
            var cmd = $"head -c {size} {ShellQuote.Quote(patternFile)}{(toStderr ? " >&2" : "")}; (exit {code})";
            var r = await board.Shell.RunAsync(cmd, TimeSpan.FromSeconds(20), ct);
            var expected = pattern[..size];
            if (r.ExitCode != code || r.Output != expected)
                failures.Add($"#{i} {cmd}: exit {r.ExitCode} (want {code}), output {r.Output.Length} chars (want {size})");
        }
        Assert.That(failures, Is.Empty);
        Assert.That(board.Shell.Stats.Commands, Is.EqualTo(1000));
        TestContext.Out.WriteLine($"shell stats: {board.Shell.Stats}");

        // The raw console log is exactly what the shell side sent (socat's own dump of that direction).
        await Eventually.EqualAsync(() => board.Console.Log.Position, () => new FileInfo(peer.SentDumpPath).Length, ct);
        await board.DisposeAsync();
        peer.Unplug();
        var sent = await File.ReadAllBytesAsync(peer.SentDumpPath, ct);
        var logged = await File.ReadAllBytesAsync(board.Console.Log.RawPath, ct);
        Assert.That(logged.Length, Is.EqualTo(sent.Length), "raw log length");
        Assert.That(logged.AsSpan().SequenceEqual(sent), Is.True, "raw console log differs from the bytes the peer sent");
    }

    [TestCase(PeerShell.Bash), TestCase(PeerShell.Busybox), CancelAfter(60_000)]
    public async Task Bash_with_readline_and_busybox_ash_give_exact_results(PeerShell shell, CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var peer = await ConsolePeer.StartAsync(shell);
        var spec = ws.Board(Yaml.ConsoleBoard(peer.Device, peer.PasswordFile));
        await using var board = await ws.OpenAsync(spec);
        await board.EnsureShellAsync(ct);
        var r = await board.Shell.RunAsync("export LANG=C.UTF-8 LC_ALL=C.UTF-8; printf 'grüße\\n'; echo 'it''s \"quoted\" $HOME `x`' >&2; false", null, ct);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(r.ExitCode, Is.EqualTo(1));
            Assert.That(r.Output, Is.EqualTo("grüße\nits \"quoted\" $HOME `x`\n"));
        }
        var u = await board.Shell.RunAsync("printf 'äöü€'", null, ct);
        Assert.That(u.Output, Is.EqualTo("äöü€"));
        // Large outputs (busybox has no cksum here, so they come back in two copies too).
        var rng = new Random(7);
        var pattern = RandomText(rng, 30_000);
        var file = ShellQuote.Quote(ws.Write("pattern.txt", pattern));
        foreach (var size in new[] { 0, 1, 4095, 4096, 4097, 12_345, 30_000 })
        {
            var big = await board.Shell.RunAsync($"head -c {size} {file}; (exit {size % 7})", null, ct);
            Assert.That((big.Output == pattern[..size], big.ExitCode), Is.EqualTo((true, size % 7)), $"size {size}");
        }
    }

    [Test, CancelAfter(60_000)]
    public async Task Shell_state_persists_and_special_output_is_kept(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash);
        await using var board = await ws.OpenAsync(ws.Board(Yaml.ConsoleBoard(peer.Device, peer.PasswordFile)));
        await board.EnsureShellAsync(ct);
        await board.Shell.RunCheckedAsync("cd /usr/share && HIL_X=42", null, ct);
        var r = await board.Shell.RunAsync("pwd; echo $HIL_X", null, ct);
        Assert.That(r.Output, Is.EqualTo("/usr/share\n42\n"));
        // Output that looks like kernel messages, prompts and markers is the command's and stays.
        var tricky = "[    1.000000] not the kernel\n# \n\\036HIL:fake:1:0:e\\036\nno newline at end";
        var t = await board.Shell.RunAsync($"printf '%s' {ShellQuote.Quote(tricky)}", null, ct);
        Assert.That(t.Output, Is.EqualTo(tricky));
        Assert.That(t.KernelLines, Is.Empty);
        // A command with a syntax error fails like it would in a script, and the shell goes on.
        var bad = await board.Shell.RunAsync("echo 'unterminated", null, ct);
        Assert.That(bad.ExitCode, Is.Not.EqualTo(0));
        Assert.That((await board.Shell.RunAsync("echo ok", null, ct)).Output, Is.EqualTo("ok\n"));
        // Control characters would be interpreted by the tty: refused up front, as the caller's error.
        var ex = await Assert.ThrowsAsync<TestErrorException>(() => board.Shell.RunAsync("echo a\rb", null, ct));
        Assert.That(ex!.Class, Is.EqualTo(FailureClass.Test));
    }

    [Test, CancelAfter(60_000)]
    public async Task Timeout_interrupts_resynchronises_and_the_next_command_works(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash);
        await using var board = await ws.OpenAsync(ws.Board(Yaml.ConsoleBoard(peer.Device, peer.PasswordFile)));
        await board.EnsureShellAsync(ct);
        var ex = await Assert.ThrowsAsync<CommandTimeoutException>(() => board.Shell.RunAsync("sleep 30; echo late", TimeSpan.FromSeconds(1), ct));
        Assert.That(ex!.Class, Is.EqualTo(FailureClass.Product));
        var r = await board.Shell.RunAsync("echo next; (exit 3)", null, ct);
        Assert.That((r.Output, r.ExitCode), Is.EqualTo(("next\n", 3)));
        Assert.That(board.IsBroken, Is.False);
        // An open quote left by a timed-out command must not swallow the next one either.
        await Assert.ThrowsAsync<CommandTimeoutException>(() => board.Shell.RunAsync("while :; do :; done", TimeSpan.FromSeconds(1), ct));
        Assert.That((await board.Shell.RunAsync("echo alive", null, ct)).Output, Is.EqualTo("alive\n"));
    }

    [Test, CancelAfter(90_000)]
    public async Task A_shell_that_cannot_be_recovered_breaks_the_session_as_infrastructure(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash);
        var opts = new ShellOptions { ResyncTimeout = TimeSpan.FromSeconds(1), ResyncAttempts = 2, SetupTimeout = TimeSpan.FromSeconds(1) };
        await using var board = await ws.OpenAsync(ws.Board(Yaml.ConsoleBoard(peer.Device, peer.PasswordFile)), opts);
        await board.EnsureShellAsync(ct);
        // The command ignores SIGINT and outlives every resynchronisation attempt.
        var ex = await Assert.ThrowsAsync<BoardBrokenException>(() => board.Shell.RunAsync("trap '' INT; sleep 25", TimeSpan.FromSeconds(1), ct));
        Assert.That(ex!.Class, Is.EqualTo(FailureClass.Infrastructure));
        Assert.That(FailureClassifier.Classify(ex).Retryable, Is.True);
        Assert.That(board.IsBroken, Is.True);
        var again = await Assert.ThrowsAsync<BoardBrokenException>(() => board.Shell.RunAsync("echo x", null, ct));
        Assert.That(again!.Message, Does.Contain("broken"));
    }

    [Test, CancelAfter(90_000)]
    public async Task Serial_device_that_disappears_and_reappears_is_reopened_and_the_shell_logs_in_again(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash);
        await using var board = await ws.OpenAsync(ws.Board(Yaml.ConsoleBoard(peer.Device, peer.PasswordFile)));
        await board.EnsureShellAsync(ct);
        Assert.That((await board.Shell.RunAsync("echo before", null, ct)).Output, Is.EqualTo("before\n"));
        peer.Unplug();
        await Task.Delay(500, ct);
        Assert.That(board.Console.IsConnected, Is.False);
        await peer.PlugInAsync();
        // The device is back with a new login (the "board" rebooted): the next command logs in again.
        var r = await board.Shell.RunAsync("echo after", null, ct);
        Assert.That(r.Output, Is.EqualTo("after\n"));
        Assert.That(board.Console.Reconnects, Is.EqualTo(1));
    }

    [Test, CancelAfter(60_000)]
    public async Task Raw_tcp_console_like_ser2net_with_auto_login_and_kernel_noise_at_login(CancellationToken ct)
    {
        using var ws = new Workspace();
        var noise = "[    3.141592] random: crng init done\r\n[    3.2] not kernel\r\nWelcome\r\n";
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash, password: null, transport: PeerTransport.Tcp, preLogin: noise);
        await using var board = await ws.OpenAsync(ws.Board(Yaml.ConsoleBoard(peer.Device, passwordFile: null)));
        await board.EnsureShellAsync(ct);
        var r = await board.Shell.RunAsync("uname -s", null, ct);
        Assert.That(r.Output, Is.EqualTo("Linux\n"));
    }

    internal static string RandomText(Random rng, int length)
    {
        const string chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_/()[]{}'\"$%&!?<>=+*#@\\";
        var sb = new StringBuilder(length);
        while (sb.Length < length)
        {
            var line = rng.Next(0, 120);
            for (var i = 0; i < line && sb.Length < length; i++) sb.Append(chars[rng.Next(chars.Length)]);
            if (sb.Length < length) sb.Append('\n');
        }
        return sb.ToString();
    }
}
