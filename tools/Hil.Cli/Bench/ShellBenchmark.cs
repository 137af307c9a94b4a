using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Hil.Boards;
using Hil.Boards.BoardFiles;
using Hil.Peers;
using Serilog;

namespace Hil.Cli.Bench;

/// <summary>
/// `hil bench shell`: N short commands over a console (a real login shell on a pty, opened as a
/// serial device) — HilHarness's framed, verified console shell against a minimal `expect` script
/// that does the same on the same kind of console: send the command, read its output and exit code
/// (<c>cmd; echo RC=$?</c>). Each side gets a fresh, logged-in shell; only the command loop is timed.
/// </summary>
public sealed class ShellBenchmark : IBenchmark
{
    public string Name => "shell";
    public string Description => "short commands over a pty console: ConsoleShell vs a minimal expect script";

    private const string ExpectScript = """
        # Minimal console automation: log in, then for each command send it with "echo RC=$?" and
        # wait for the exit code line. Prints the loop's time in ms.
        set tty [lindex $argv 0]; set n [lindex $argv 1]; set user [lindex $argv 2]; set pw [lindex $argv 3]
        set timeout 20
        log_user 0
        set f [open $tty r+]
        fconfigure $f -translation binary -buffering none
        spawn -open $f
        expect "login: " { send "$user\r" }
        expect "Password: " { send "$pw\r" }
        expect "# "
        send "PS1='XPROMPT''X '\r"
        expect "XPROMPTX "
        set start [clock milliseconds]
        for {set i 0} {$i < $n} {incr i} {
            set want [expr {$i % 3}]
            send "echo hil-$i; (exit $want); echo RC=\$?\r"
            expect {
                -re "\r\nhil-$i\r\nRC=(\\d+)\r\n" { if {$expect_out(1,string) != $want} { puts "wrong exit code at $i"; exit 1 } }
                timeout { puts "timeout at $i"; exit 1 }
            }
            expect "XPROMPTX "
        }
        puts "ELAPSED [expr {[clock milliseconds] - $start}]"
        """;

    public async Task<BenchReport> RunAsync(BenchOptions options, CancellationToken ct)
    {
        var commands = options.Quick ? 50 : 200;
        var rounds = options.Quick ? 1 : 9;
        var dir = Directory.CreateTempSubdirectory("hil-bench-shell-").FullName;
        try
        {
            var script = Path.Combine(dir, "baseline.exp");
            await File.WriteAllTextAsync(script, ExpectScript, ct);
            return await BenchTiming.AlternatingAsync(Name, commands, rounds, "≤ 1.2", 1.2, "expect",
                () => TimeExpectAsync(script, commands, ct), () => TimeConsoleShellAsync(dir, commands, ct),
                "HilHarness also checks every command line and output on the board (two copies each) and keeps a flushed raw + timestamped console log");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<double> TimeConsoleShellAsync(string dir, int n, CancellationToken ct)
    {
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash);
        var yaml = Path.Combine(dir, "bench-board.yaml");
        await File.WriteAllTextAsync(yaml, $"""
            name: bench-console
            console:
              device: {peer.Device}
            login:
              user: hiltest
              password: {"{"} file: {peer.PasswordFile} {"}"}
            """, ct);
        var spec = BoardFileLoader.Load(yaml);
        await using var board = await Board.OpenAsync(spec, new BoardOptions { LogDirectory = Path.Combine(dir, "logs"), Logger = Log.Logger }, ct);
        await board.EnsureShellAsync(ct);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < n; i++)
        {
            var r = await board.Shell.RunAsync($"echo hil-{i}; (exit {i % 3})", TimeSpan.FromSeconds(20), ct);
            if (r.Output != $"hil-{i}\n" || r.ExitCode != i % 3) throw new InvalidOperationException($"shell bench: wrong result for command {i}");
        }
        return clock.Elapsed.TotalMilliseconds;
    }

    private static async Task<double> TimeExpectAsync(string script, int n, CancellationToken ct)
    {
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash);
        var psi = new ProcessStartInfo("expect") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { script, peer.TtyPath, n.ToString(CultureInfo.InvariantCulture), "hiltest", "hil-secret" }) psi.ArgumentList.Add(a);
        Hil.Boards.Secrets.ChildEnvironment.Scrub(psi);
        using var p = Process.Start(psi)!;
        var stdout = await p.StandardOutput.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        var m = Regex.Match(stdout, @"ELAPSED (\d+)");
        if (p.ExitCode != 0 || !m.Success)
            throw new InvalidOperationException($"shell bench: the expect baseline failed: {stdout} {await p.StandardError.ReadToEndAsync(ct)}");
        return double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }
}
