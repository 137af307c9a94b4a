using System.Security.Cryptography;
using System.Text;
using Hil.Boards.Console;
using Hil.Peers;

namespace Hil.Boards.Tests;

/// <summary>The console login password never reaches the console logs, even from a board that echoes it.</summary>
[TestFixture, Category("loopback")]
public sealed class ConsoleSecretTests : BoardTest
{
    [Test, CancelAfter(120_000)]
    public async Task An_echoed_login_password_is_masked_in_console_raw_and_console_log(CancellationToken ct)
    {
        using var ws = new Workspace();
        var password = "pw-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash, password: password, echoPassword: true);
        await using var board = await ws.OpenAsync(ws.Board(Yaml.ConsoleBoard(peer.Device, peer.PasswordFile)));
        await board.EnsureShellAsync(ct);
        var r = await board.Shell.RunAsync("echo logged-in", TimeSpan.FromSeconds(20), ct);
        Assert.That(r.Output, Is.EqualTo("logged-in\n"));
        await Eventually.EqualAsync(() => board.Console.Log.Position, () => new FileInfo(peer.SentDumpPath).Length, ct);
        var rawPath = board.Console.Log.RawPath;
        var linesPath = board.Console.Log.LinesPath;
        await board.DisposeAsync();
        peer.Unplug();

        // The peer really echoed it (else this test could not fail) ...
        var sent = Encoding.UTF8.GetString(await File.ReadAllBytesAsync(peer.SentDumpPath, ct));
        Assert.That(sent, Does.Contain(password), "the peer should have echoed the password");
        // ... and neither log has it: the same number of '*' stands in its place.
        var raw = Encoding.UTF8.GetString(await File.ReadAllBytesAsync(rawPath, ct));
        var lines = await File.ReadAllTextAsync(linesPath, ct);
        var stars = new string('*', password.Length);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(raw, Does.Not.Contain(password));
            Assert.That(lines, Does.Not.Contain(password));
            Assert.That(raw, Does.Contain("Password: " + stars));
            Assert.That(lines, Does.Contain("Password: " + stars));
            // Nothing but the password changed: the raw log is the peer's bytes with the password masked.
            Assert.That(raw, Is.EqualTo(sent.Replace(password, stars)));
            Assert.That(File.ReadAllText(Path.Combine(ws.Dir, "harness.log")), Does.Not.Contain(password));
        }
    }

    [Test]
    public void A_secret_split_across_chunks_is_masked_and_near_misses_are_kept()
    {
        using var ws = new Workspace();
        var lines = new List<string>();
        using (var log = new ConsoleLog(ws.Dir, "console"))
        {
            log.LineCompleted += l => lines.Add(l.Text);
            log.Mask("abcd");
            // One byte at a time, with a false start ("abc" then "abcd") and a partial match at the very end.
            foreach (var b in Encoding.ASCII.GetBytes("x abcabcd y\nabcd\nab"))
                log.Append([b]);
            Assert.That(lines, Is.EqualTo(new[] { "x abc**** y", "****" }));
            Assert.That(log.Position, Is.EqualTo("x abcabcd y\nabcd\n".Length), "a possible start of the secret is held back");
        }
        // A held-back tail that never became the secret is written when the log closes.
        Assert.That(File.ReadAllText(Path.Combine(ws.Dir, "console.raw")), Is.EqualTo("x abc**** y\n****\nab"));
    }
}

/// <summary>Secret variables named by board files do not reach child processes that do not need them.</summary>
[TestFixture, NonParallelizable]
public sealed class ChildEnvironmentTests : BoardTest
{
    [Test]
    public async Task A_variable_a_board_file_names_as_a_secret_is_removed_from_children_unless_kept()
    {
        using var ws = new Workspace();
        var secretVar = "HIL_TEST_SECRET_" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4));
        var plainVar = secretVar + "_PLAIN";
        Environment.SetEnvironmentVariable(secretVar, "s3cret-value");
        Environment.SetEnvironmentVariable(plainVar, "not-a-secret");
        try
        {
            // Before any board file names it, the variable is an ordinary one and children see it ...
            Assert.That(await ChildEnvAsync(), Does.Contain($"{secretVar}=s3cret-value"));
            // ... loading a board file that names it as a secret marks it.
            var spec = ws.Board($$"""
                name: secret-board
                ssh:
                  host: 127.0.0.1
                  user: root
                  password: { env: {{secretVar}} }
                  host_key: ["SHA256:{{new string('A', 43)}}"]
                """);
            Assert.That(Hil.Boards.Secrets.ChildEnvironment.VariablesOf(spec), Is.EqualTo(new[] { secretVar }));
            var env = await ChildEnvAsync();
            Assert.That(env, Does.Not.Contain(secretVar + "="));
            Assert.That(env, Does.Contain($"{plainVar}=not-a-secret"), "other variables pass");
            // A child that opens this board (a test run) may keep the board's own secrets.
            Assert.That(await ChildEnvAsync(Hil.Boards.Secrets.ChildEnvironment.VariablesOf(spec)), Does.Contain($"{secretVar}=s3cret-value"));
            // With UseShellExecute the environment could not be scrubbed: refused rather than leaked.
            Assert.Throws<InvalidOperationException>(() => Hil.Boards.Secrets.ChildEnvironment.Scrub(new System.Diagnostics.ProcessStartInfo("env") { UseShellExecute = true }));
        }
        finally
        {
            Environment.SetEnvironmentVariable(secretVar, null);
            Environment.SetEnvironmentVariable(plainVar, null);
        }
    }

    /// <summary>The environment a child started through the scrubbing helper sees (`env` prints it).</summary>
    private static async Task<string> ChildEnvAsync(IEnumerable<string>? keep = null)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("env") { RedirectStandardOutput = true, UseShellExecute = false };
        Hil.Boards.Secrets.ChildEnvironment.Scrub(psi, keep);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var output = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        return output;
    }
}
