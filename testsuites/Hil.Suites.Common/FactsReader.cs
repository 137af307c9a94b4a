using Hil.Boards.Failures;

namespace Hil.Suites.Common;

/// <summary>Reads what the board itself says about the facts suites rely on, right after a boot.</summary>
internal static class FactsReader
{
    /// <summary>Where the QEMU image's /init leaves the thread count its optee_cq_init kprobe saw ("unavailable" on 6.1).</summary>
    public const string ThreadCountRecord = "/run/hil/optee_thread_count";

    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(15);

    public static async Task<BoardFacts> ReadAsync(LiveBoard live, SuiteFacts promised, CancellationToken ct)
    {
        var uname = await RunAsync(live, "uname -r", ct).ConfigureAwait(false);
        int? observed = null;
        string raw;
        string? error = null;
        if (live.Qemu is { } q)
        {
            try
            {
                var check = await q.CheckThreadCountAsync(ct).ConfigureAwait(false);
                observed = check.Observed;
                raw = check.Raw;
            }
            catch (ProductFailureException ex)
            {
                // Not fatal for the session: the smoke suite reports it as the product failure it is.
                raw = "unreadable";
                error = ex.Message;
            }
        }
        else
        {
            // A real board only has the record if its image captures the count the way ours does.
            var r = await RunAsync(live, $"cat {ThreadCountRecord} 2>/dev/null || echo unavailable", ct).ConfigureAwait(false);
            raw = r.Output.Trim();
            if (int.TryParse(raw, out var n)) observed = n;
            else if (raw != "unavailable") error = $"unexpected thread-count record on {live.Target.Name}: '{raw}'";
        }
        return new BoardFacts
        {
            Board = live.Target.Name,
            BoardFile = live.Target.BoardFile,
            KernelPolicy = promised.KernelPolicy,
            ExpectedThreads = promised.OpteeThreads,
            ObservedThreads = observed,
            ThreadsRaw = raw,
            ThreadsReadError = error,
            ThreadsObservableExpected = live.IsQemu && promised.KernelPolicy == "mainline",
            KernelRelease = uname.ExitCode == 0 ? uname.Output.Trim() : null,
            OpteeVersion = live.Qemu?.Image.OpteeVersion,
            Source = live.Qemu is { } qs ? $"qemu image {qs.Image.Directory}" : "real board",
            Session = live.Session,
            ReadAtUtc = DateTimeOffset.UtcNow,
        };
    }

    /// <summary>Over the console shell when the board has a console, else over SSH (stdout only).</summary>
    private static async Task<(int ExitCode, string Output)> RunAsync(LiveBoard live, string command, CancellationToken ct)
    {
        if (live.Board.HasConsole)
        {
            var r = await live.Board.Shell.RunAsync(command, CommandTimeout, ct).ConfigureAwait(false);
            return (r.ExitCode, r.Output);
        }
        var s = await live.Board.Ssh.RunAsync(command, CommandTimeout, ct).ConfigureAwait(false);
        return (s.ExitStatus ?? -1, s.Stdout);
    }
}
