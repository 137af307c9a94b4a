using System.Globalization;
using Hil.Boards.Failures;
using Hil.Boards.Shell;
using Hil.Boards.Ssh;
using Serilog;

namespace Hil.Workloads.Holder;

/// <summary>
/// teeholder on a board: runs it in the foreground (one SSH command) or in the background (so a
/// test can make kernel calls while user space holds the secure threads). Every run is wrapped in
/// the board's `timeout`, because cancelling an SSH command does not kill a root process.
/// </summary>
public sealed class HolderRunner
{
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(60);
    private readonly SshLink _ssh;
    private readonly ILogger _log;

    private HolderRunner(SshLink ssh, string remotePath, ILogger log)
    {
        _ssh = ssh;
        RemotePath = remotePath;
        _log = log.ForContext<HolderRunner>();
    }

    public string RemotePath { get; }

    public static async Task<HolderRunner> DeployAsync(SshLink ssh, BuiltHolder holder, ILogger log, CancellationToken ct = default)
    {
        var remote = $"/tmp/hil/{HolderBuilder.ExecutableName}-{holder.Key}";
        await BoardUpload.UploadAsync(ssh, holder.Path, remote, "755", log, ct).ConfigureAwait(false);
        return new HolderRunner(ssh, remote, log);
    }

    /// <summary>Under emulation a holder may take a few times its plan; this bounds it on the board.</summary>
    public static TimeSpan DefaultTimeout(HolderPlan plan) => TimeSpan.FromMilliseconds(plan.Span.TotalMilliseconds * 3) + Slack;

    /// <summary>The board command line: `timeout SECONDS teeholder ARGS`, every argument quoted.</summary>
    public static string CommandLine(string remotePath, IReadOnlyList<string> arguments, TimeSpan timeout) =>
        ShellQuote.Join(["timeout", Math.Ceiling(timeout.TotalSeconds).ToString(CultureInfo.InvariantCulture), remotePath, .. arguments]);

    public Task<HolderReport> RunAsync(HolderPlan plan, TimeSpan? timeout = null, CancellationToken ct = default) =>
        RunRawAsync(plan.Arguments(), timeout ?? DefaultTimeout(plan), ct);

    /// <summary>Runs teeholder with arguments as given (no validation: for checking its own).</summary>
    public async Task<HolderReport> RunRawAsync(IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken ct = default)
    {
        var r = await _ssh.RunAsync(CommandLine(RemotePath, arguments, timeout), timeout + Slack, ct).ConfigureAwait(false);
        return Report(r.ExitStatus ?? -1, r.Stdout, r.Stderr);
    }

    /// <summary>Starts teeholder in the background on the board; its output goes to a fresh folder there.</summary>
    public async Task<RunningHolder> StartAsync(HolderPlan plan, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var limit = timeout ?? DefaultTimeout(plan);
        var script = "d=$(mktemp -d /tmp/hil/holder.XXXXXX) || exit 1; " +
                     $"( {CommandLine(RemotePath, plan.Arguments(), limit)} > \"$d/out\" 2> \"$d/err\"; echo $? > \"$d/rc\" ) </dev/null >/dev/null 2>&1 & " +
                     "echo \"$d\"";
        var r = await _ssh.RunAsync(script, TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
        var dir = r.Stdout.Trim();
        if (r.ExitStatus != 0 || !dir.StartsWith("/tmp/hil/holder.", StringComparison.Ordinal))
            throw new InfrastructureException($"starting teeholder on {_ssh.Address} failed: {r.Stderr.Trim()}");
        _log.Information("holder: started in the background on {Address} ({Holders} holders, output in {Dir})", _ssh.Address, plan.Calls.Count, dir);
        return new RunningHolder(_ssh, dir, limit + Slack);
    }

    internal static HolderReport Report(int exitCode, string stdout, string stderr)
    {
        try
        {
            return HolderOutput.Parse(stdout, stderr, exitCode);
        }
        catch (FormatException ex)
        {
            throw new ProductFailureException($"teeholder printed something unexpected (exit {exitCode}): {ex.Message}",
                stdout.Split('\n').Concat(stderr.Split('\n')).Where(l => l.Length > 0).ToList());
        }
    }
}

/// <summary>A teeholder running in the background on a board.</summary>
public sealed class RunningHolder
{
    private readonly SshLink _ssh;
    private readonly TimeSpan _limit;

    internal RunningHolder(SshLink ssh, string directory, TimeSpan limit)
    {
        _ssh = ssh;
        Directory = directory;
        _limit = limit;
    }

    /// <summary>The board folder holding out, err and (once it ended) rc.</summary>
    public string Directory { get; }

    /// <summary>Waits until every session is open and t0 is fixed; returns t0 (CLOCK_MONOTONIC ns).</summary>
    public async Task<ulong> WaitReadyAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        var d = ShellQuote.Quote(Directory);
        var script = $"n=0; while ! grep -q '^ready ' {d}/out; do if [ -e {d}/rc ]; then echo hil-ended; exit 6; fi; " +
                     $"n=$((n+1)); if [ $n -gt {Polls(timeout)} ]; then echo hil-timeout; exit 5; fi; sleep 0.05; done; grep '^ready ' {d}/out";
        var r = await _ssh.RunAsync(script, timeout + TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
        if (r.ExitStatus == 0)
            return KeyValueLine.Parse(r.Stdout.Trim(), skipWords: 1).Number<ulong>("t0_ns");
        if (r.ExitStatus == 6)
        {
            var report = await WaitAsync(ct).ConfigureAwait(false);
            throw new ProductFailureException($"teeholder ended before it was ready (exit {report.ExitCode})", report.Errors);
        }
        throw new ProductFailureException($"teeholder not ready after {timeout.TotalSeconds:0.#} s (sessions still opening?)");
    }

    /// <summary>Waits for the end of the run and returns its report.</summary>
    public async Task<HolderReport> WaitAsync(CancellationToken ct = default)
    {
        var d = ShellQuote.Quote(Directory);
        var script = $"n=0; while [ ! -e {d}/rc ]; do n=$((n+1)); if [ $n -gt {Polls(_limit)} ]; then echo hil-timeout; exit 5; fi; sleep 0.05; done; " +
                     $"cat {d}/rc; echo hil-sep; cat {d}/out; echo hil-sep; cat {d}/err";
        var r = await _ssh.RunAsync(script, _limit + TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
        if (r.ExitStatus == 5) throw new ProductFailureException($"teeholder still running after {_limit.TotalSeconds:0} s");
        if (r.ExitStatus != 0) throw new InfrastructureException($"reading teeholder's output in {Directory} failed: {r.Stderr.Trim()}");
        var parts = r.Stdout.Split("hil-sep\n");
        if (parts.Length != 3) throw new InfrastructureException($"unreadable teeholder output folder {Directory}");
        return HolderRunner.Report(int.Parse(parts[0].Trim(), CultureInfo.InvariantCulture), parts[1], parts[2]);
    }

    private static int Polls(TimeSpan t) => (int)Math.Ceiling(t.TotalMilliseconds / 50);
}
