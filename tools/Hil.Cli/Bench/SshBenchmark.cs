using System.Diagnostics;
using Hil.Boards.BoardFiles;
using Hil.Boards.Ssh;
using Hil.Peers;
using Serilog;

namespace Hil.Cli.Bench;

/// <summary>
/// `hil bench ssh`: N short commands over SSH to a real sshd on 127.0.0.1 — HilHarness's SshLink
/// against OpenSSH's ssh reusing a ControlMaster connection (each command a new ssh process on the
/// shared connection, host key checked in both). Rounds alternate; medians are compared.
/// </summary>
public sealed class SshBenchmark : IBenchmark
{
    public string Name => "ssh";
    public string Description => "short commands over SSH: SshLink vs OpenSSH ssh with ControlMaster";

    public async Task<BenchReport> RunAsync(BenchOptions options, CancellationToken ct)
    {
        var commands = options.Quick ? 50 : 200;
        var rounds = options.Quick ? 1 : 9;
        await using var sshd = await SshdPeer.StartAsync();
        var dir = Directory.CreateTempSubdirectory("hil-bench-ssh-").FullName;
        try
        {
            var knownHosts = Path.Combine(dir, "known_hosts");
            await File.WriteAllTextAsync(knownHosts, $"[127.0.0.1]:{sshd.Port} {sshd.HostKeyLine}\n", ct);
            var spec = new SshSpec("127.0.0.1", sshd.Port, sshd.User, sshd.UserKeyPath, null, null, [sshd.HostKeyFingerprint], null, false,
                TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30));
            await using var link = new SshLink(spec, Log.Logger);
            await link.ConnectAsync(ct: ct);
            var control = Path.Combine(dir, "ctl");
            var baseArgs = sshd.SshClientArgs(knownHosts).Concat(["-o", $"ControlPath={control}"]).ToList();
            using var master = StartMaster(baseArgs, sshd.User);
            await WaitForMasterAsync(baseArgs, sshd.User, ct);

            return await BenchTiming.AlternatingAsync(Name, commands, rounds, "≤ 1.0", 1.0, "OpenSSH",
                () => TimeOpenSshAsync(baseArgs, sshd.User, commands, ct), () => TimeSshLinkAsync(link, commands, ct),
                "both reuse one authenticated connection and check the host key; every output and exit status is verified");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<double> TimeSshLinkAsync(SshLink link, int n, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < n; i++)
        {
            var r = await link.RunAsync($"echo hil-{i}; exit {i % 3}", TimeSpan.FromSeconds(30), ct);
            if (r.Stdout != $"hil-{i}\n" || r.ExitStatus != i % 3) throw new InvalidOperationException($"ssh bench: wrong result for command {i}");
        }
        return clock.Elapsed.TotalMilliseconds;
    }

    private static async Task<double> TimeOpenSshAsync(IReadOnlyList<string> baseArgs, string user, int n, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < n; i++)
        {
            var psi = new ProcessStartInfo("ssh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in baseArgs) psi.ArgumentList.Add(a);
            psi.ArgumentList.Add("-o");
            psi.ArgumentList.Add("ControlMaster=no");
            psi.ArgumentList.Add($"{user}@127.0.0.1");
            psi.ArgumentList.Add($"echo hil-{i}; exit {i % 3}");
            using var p = Process.Start(psi)!;
            var stdout = await p.StandardOutput.ReadToEndAsync(ct);
            await p.WaitForExitAsync(ct);
            if (stdout != $"hil-{i}\n" || p.ExitCode != i % 3) throw new InvalidOperationException($"ssh bench: OpenSSH gave a wrong result for command {i}: {await p.StandardError.ReadToEndAsync(ct)}");
        }
        return clock.Elapsed.TotalMilliseconds;
    }

    private static Process StartMaster(IReadOnlyList<string> baseArgs, string user)
    {
        var psi = new ProcessStartInfo("ssh") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in baseArgs) psi.ArgumentList.Add(a);
        foreach (var a in new[] { "-o", "ControlMaster=yes", "-N", $"{user}@127.0.0.1" }) psi.ArgumentList.Add(a);
        return new KillOnDispose(Process.Start(psi)!).Process;
    }

    private static async Task WaitForMasterAsync(IReadOnlyList<string> baseArgs, string user, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            var psi = new ProcessStartInfo("ssh") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in baseArgs) psi.ArgumentList.Add(a);
            foreach (var a in new[] { "-O", "check", $"{user}@127.0.0.1" }) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            await p.WaitForExitAsync(ct);
            if (p.ExitCode == 0) return;
            await Task.Delay(100, ct);
        }
        throw new InvalidOperationException("ssh bench: the OpenSSH ControlMaster did not come up");
    }

    /// <summary>Kills the master when the benchmark ends (Dispose of the Process alone would leave it running).</summary>
    private sealed class KillOnDispose(Process process)
    {
        public Process Process { get; } = Track(process);

        private static Process Track(Process p)
        {
            AppDomain.CurrentDomain.ProcessExit += (_, _) => Kill(p);
            p.Disposed += (_, _) => Kill(p);
            return p;
        }

        private static void Kill(Process p)
        {
            try
            {
                if (!p.HasExited) p.Kill();
            }
            catch (InvalidOperationException)
            {
            }
        }
    }
}
