using System.CommandLine;
using System.Globalization;
using Hil.Boards.Failures;
using Hil.Boards.Leases;
using Hil.Qemu.Board;
using Serilog;

namespace Hil.Cli.Commands;

/// <summary>
/// `hil lease hold BOARD... [--for SECONDS] [--wait SECONDS]` — takes boards' leases exactly as
/// `hil run` does and holds them (until --for runs out, Ctrl-C or SIGTERM): a person working on a
/// lab board by hand keeps every run off it. `hil lease list` shows who holds what. Both use the
/// lease folder of `hil run` ($HIL_LEASES, else ~/.cache/hil/leases).
/// </summary>
public static class LeaseCommands
{
    public static Command Build()
    {
        var boards = new Argument<string[]>("BOARD") { Description = "board names (the name: field of their board files)", Arity = ArgumentArity.OneOrMore };
        var hold = new Option<double?>("--for") { Description = "seconds to hold the leases (default: until Ctrl-C or SIGTERM)" };
        var wait = new Option<double?>("--wait") { Description = $"seconds to wait for a board someone else holds (default {BoardLeasing.DefaultWait.TotalSeconds:0})" };
        var holdCmd = new Command("hold", "Take boards' exclusive leases and hold them, as hil run does") { boards, hold, wait };
        holdCmd.SetAction(async (pr, ct) =>
        {
            var forSeconds = pr.GetValue(hold);
            var waitSeconds = pr.GetValue(wait);
            if (forSeconds is < 0 || waitSeconds is < 0 or > 86400)
            {
                Console.Error.WriteLine("hil lease hold: --for and --wait are seconds, not negative (--wait at most 86400)");
                return CliRunner.UsageError;
            }
            return await HoldAsync(pr.GetValue(boards) ?? [], forSeconds, TimeSpan.FromSeconds(waitSeconds ?? BoardLeasing.DefaultWait.TotalSeconds), ct);
        });
        var list = new Command("list", "Show the leases in the lease folder: board, holder, expiry");
        list.SetAction(_ => List());
        return new Command("lease", "Exclusive board leases: who holds which board") { holdCmd, list };
    }

    private static async Task<int> HoldAsync(IReadOnlyList<string> boards, double? forSeconds, TimeSpan wait, CancellationToken ct)
    {
        // The lease's own lines (waiting, taking over a dead holder's lease) go to stderr; stdout says what is held.
        using var log = new LoggerConfiguration().MinimumLevel.Information()
            .WriteTo.Console(outputTemplate: "{Timestamp:HH:mm:ss} {Message:lj}{NewLine}", standardErrorFromLevel: Serilog.Events.LogEventLevel.Verbose)
            .CreateLogger();
        LeaseSet leases;
        try
        {
            leases = await LeaseSet.TakeAsync(boards, null, BoardLease.DefaultOwner, BoardLeasing.Ttl, wait, log, ct);
        }
        catch (HilException ex)
        {
            return RunLeases.Refused("hil lease hold", ex);
        }
        await using (leases)
        {
            foreach (var l in leases.Leases)
                Console.WriteLine($"holding {l.Board} as {l.Holder} ({l.File})");
            Console.Out.Flush();
            try
            {
                using var until = CancellationTokenSource.CreateLinkedTokenSource(ct, leases.AnyLost);
                await Task.Delay(forSeconds is { } s ? TimeSpan.FromSeconds(s) : Timeout.InfiniteTimeSpan, until.Token);
            }
            catch (OperationCanceledException) when (leases.AnyLost.IsCancellationRequested)
            {
                Console.Error.WriteLine($"hil lease hold: {leases.Leases.Select(l => l.LostReason).First(r => r is not null)}");
                return 1;
            }
            catch (OperationCanceledException)
            {
                // Ctrl-C or SIGTERM: the normal way to end an open-ended hold; the leases are released below.
            }
        }
        Console.WriteLine($"released {string.Join(", ", boards)}");
        return 0;
    }

    private static int List()
    {
        var folder = new LeaseFolder(LeaseFolder.DefaultPath());
        if (!Directory.Exists(folder.Path))
        {
            Console.WriteLine($"no leases ({folder.Path} does not exist)");
            return 0;
        }
        var now = DateTimeOffset.UtcNow;
        var files = Directory.EnumerateFiles(folder.Path, "*.lease").Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0) Console.WriteLine($"no leases in {folder.Path}");
        foreach (var file in files)
        {
            var board = Path.GetFileNameWithoutExtension(file);
            // Read without the board's lock: a listing decides nothing, and a reader never sees half a file (leases are renamed into place).
            var state = folder.Read(board, now);
            if (state.Corrupt is { } c) Console.WriteLine($"{board}: {c.Message}");
            else if (state.Lease is { } l)
            {
                var left = (l.ExpiresUtc - now).TotalSeconds;
                var dead = l.Holder.WhyDead();
                Console.WriteLine($"{board}: {l.Holder} since {Stamp(l.TakenUtc)}, " +
                    (left < 0 ? $"expired {-left:0} s ago" : $"expires in {left:0} s unless renewed") + (dead is null ? "" : $" (holder gone: {dead})"));
            }
        }
        return 0;
    }

    private static string Stamp(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}

/// <summary>How a lease that could not be taken is reported by hil run and hil lease: one line, never a stack trace.</summary>
internal static class RunLeases
{
    /// <summary>A setup mistake (unwritable folder, bad board name): exit 2; a busy board or a corrupt file: an infrastructure verdict, exit 1.</summary>
    public static int Refused(string command, HilException ex)
    {
        var line = ex.Message.Split('\n')[0];
        if (ex.Class == FailureClass.Test)
        {
            Console.Error.WriteLine($"{command}: {line}");
            return CliRunner.UsageError;
        }
        Console.Error.WriteLine($"{command}: [infrastructure] {line}");
        return 1;
    }
}
