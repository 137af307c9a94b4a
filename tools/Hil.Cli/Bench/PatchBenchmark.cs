using System.Diagnostics;
using System.Text.Json;
using Hil.Cli.Patches;
using Hil.Kernel;
using Hil.Patches;
using Serilog;

namespace Hil.Cli.Bench;

/// <summary>
/// `hil bench patch`: time from command to verdict with the kernel source cached. Baseline, in the
/// same run: the same call-queue tests on the stock board (build, boot, tests; no patch machinery).
/// Then `hil patch run` with one patch (control + patched: target ≤ 4 min) and with three patches
/// (--each; each further patch: target ≤ 90 s). The cold source download and unpack are reported
/// as the cache recorded them when it was filled (a clean cache, e.g. CI's, measures them).
/// </summary>
public sealed class PatchBenchmark : IBenchmark
{
    public string Name => "patch";
    public string Description => "hil patch run: one patch (with its control) and further patches, against the stock suite run";

    private const string Board = "qemu-optee";
    private static readonly string[] Corpus = ["v9-one-reserved-thread.patch", "bug-03-close-keeps-reservation.patch", "bug-05-fifo-wakeup.patch"];

    public async Task<BenchReport> RunAsync(BenchOptions options, CancellationToken ct)
    {
        var cache = HilCache.Default();
        using var log = new LoggerConfiguration().MinimumLevel.Warning().WriteTo.Console().CreateLogger();
        var root = Path.Combine(Path.GetTempPath(), $"hil-bench-patch-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        var patches = Corpus.Select(f => RepoPaths.File("testsuites", "patches", f)).ToList();

        // Baseline: the stock board, the same tests, nothing swapped.
        var sw = Stopwatch.StartNew();
        var stockDir = Path.Combine(root, "stock");
        Directory.CreateDirectory(stockDir);
        var suite = new SuiteRun(RepoPaths.Root, stockDir, log);
        if (!await suite.BuildAsync(PatchRunJob.SuiteProject, ct)) throw new InvalidOperationException("the suite does not build");
        var stockExit = await suite.TestAsync(PatchRunJob.SuiteProject, new Dictionary<string, string>
        {
            ["HIL_BOARDS"] = RepoPaths.File("boards", Board + ".yaml"), ["HIL_RESULTS"] = stockDir,
        }, $"TestCategory={DriverManifest.SuiteCategory}", ct);
        var stock = sw.Elapsed.TotalSeconds;

        async Task<(double Seconds, int Exit)> Run(string name, IReadOnlyList<string> files, bool each)
        {
            var clock = Stopwatch.StartNew();
            var exit = await new PatchRunJob(new PatchRunRequest(files, each, Board, null, Path.Combine(root, name), TimeSpan.FromSeconds(120)), cache, log).RunAsync(ct);
            return (clock.Elapsed.TotalSeconds, exit);
        }
        var one = await Run("one", [patches[0]], each: false);
        var rows = new List<BenchRow>
        {
            new("one patch: command to verdict (control + patched)", one.Seconds, stock, "s", "≤ 240 s"),
        };
        var met = one.Seconds <= 240;
        var notes = new List<string>
        {
            $"baseline: the call-queue tests on the stock {Board} (build, boot, tests), {stock:0.0} s (exit {stockExit})",
            $"one patch: {Corpus[0]}, exit {one.Exit}",
        };
        if (!options.Quick)
        {
            var three = await Run("three", patches, each: true);
            var further = (three.Seconds - one.Seconds) / 2;
            rows.Add(new BenchRow("three patches (--each): command to verdict", three.Seconds, stock, "s"));
            rows.Add(new BenchRow("each further patch", further, stock, "s", "≤ 90 s"));
            notes.Add($"three patches: {string.Join(", ", Corpus)}, exit {three.Exit}");
            met &= further <= 90;
        }
        foreach (var f in Directory.EnumerateFiles(Path.Combine(cache.Root, "patches", "sources"), "source.json", SearchOption.AllDirectories))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(f));
            var r = doc.RootElement;
            notes.Add($"cold source (recorded when the cache was filled): {r.GetProperty("Package").GetString()} {r.GetProperty("Version").GetString()}: " +
                      $"download {r.GetProperty("DownloadSeconds").GetDouble():0.0} s, unpack of drivers/tee {r.GetProperty("UnpackSeconds").GetDouble():0.0} s");
        }
        notes.Add($"results under {root}");
        return new BenchReport("hil patch run (qemu-optee, source cached)", rows, notes, met);
    }
}
