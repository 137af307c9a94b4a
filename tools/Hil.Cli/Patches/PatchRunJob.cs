using System.Diagnostics;
using Hil.Kernel;
using Hil.Model.Core;
using Hil.Patches;
using Hil.Workloads.Tracing.Module;
using Hil.Workloads.Tracing.Planning;
using Hil.Cli.Commands;
using Serilog;

namespace Hil.Cli.Patches;

/// <summary>What `hil patch run` was asked to do.</summary>
/// <param name="Series">The patch files, in order.</param>
/// <param name="Each">Each file is a series of its own (a corpus of alternatives), not one series.</param>
/// <param name="ExpectPolicy">The policy the patched driver must implement (overrides each series' Claims-Policy trailer).</param>
/// <param name="Boards">Instances of the board to share the drivers out to (each boots once).</param>
/// <param name="ControlRuns">How often the control runs (each a full pass of the tests, swapped in afresh): its false alarms are counted.</param>
internal sealed record PatchRunRequest(IReadOnlyList<string> Series, bool Each, string Board, string? ExpectPolicy, string Results, TimeSpan TestBudget,
    int Boards = 1, int ControlRuns = 1);

/// <summary>One patched driver of the run: its series, the policy it is judged by and why.</summary>
internal sealed record PatchedDriver(string Name, IReadOnlyList<string> Files, PatchBuildResult Build, string Policy, string PolicyFrom, bool KnownMutant);

/// <summary>
/// `hil patch run`: builds every series (and the control) for the board's kernel, refusing bad input
/// before anything boots; hands the drivers to the on-board suites (<see cref="DriverManifest"/>),
/// which boot the board once, swap each driver in (build ID checked on the board) and run the
/// call-queue tests on it, judging every trace under every policy; then reads the results back
/// and judges each patch (<see cref="PatchVerdicts"/>).
/// </summary>
internal sealed class PatchRunJob(PatchRunRequest request, HilCache cache, ILogger log)
{
    /// <summary>The suite project whose call-queue tests run on every driver.</summary>
    public const string SuiteProject = "testsuites/Hil.Suites.SystemThreads/Hil.Suites.SystemThreads.csproj";

    public async Task<int> RunAsync(CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        Directory.CreateDirectory(request.Results);
        if (request.ExpectPolicy is { } expected && Policy.Find(expected) is null)
            throw new UsageException($"--expect-policy: '{expected}' is not a model policy ({Policy.Names})");

        // 1. Everything that can refuse the input happens before a board boots.
        var groups = request.Each ? request.Series.Select(f => (IReadOnlyList<string>)[f]).ToList() : [request.Series];
        // What each series claims is checked before anything is fetched or built.
        foreach (var g in groups)
            if (request.ExpectPolicy is null && ClaimOf(PatchSeries.Load(g)) is { Value: { } v } c && Policy.Find(v) is null)
                throw new PatchRejectedException(PatchRejection.Malformed, $"{c.Patch.Name}: Claims-Policy: '{v}' is not a model policy ({Policy.Names})");
        var builds = new List<PatchBuildResult>();
        foreach (var g in groups)
        {
            var r = await new PatchBuildJob(cache, log).RunAsync(g, request.Board, ct);
            Console.WriteLine($"built:      {Describe(g)}: {r.Series.Patches.Count} patch(es), optee.ko {r.Patched.Module("optee").BuildId[..12]}… " +
                              $"{(r.Patched.Reused ? "(cached)" : $"in {r.Patched.Total.TotalSeconds:0.0} s")}");
            builds.Add(r);
        }
        var buildTime = clock.Elapsed;
        var control = builds[0].Control;
        var controlPolicy = await ControlPolicyAsync(control, ct);
        var patched = new List<PatchedDriver>();
        for (var i = 0; i < groups.Count; i++)
            patched.Add(Claim(Unique(NameOf(groups[i]), patched), groups[i], builds[i], controlPolicy));

        var manifest = new DriverManifest
        {
            Board = request.Board,
            Drivers =
            [
                .. Enumerable.Range(1, request.ControlRuns).Select(i => DriverUnderTest.From(i == 1 ? "control" : $"control-{i}", "control", control, [], null, null)),
                .. patched.Select(p => DriverUnderTest.From(p.Name, "patched", p.Build.Patched, [.. p.Files.Select(Path.GetFullPath)], p.Policy, p.PolicyFrom)),
            ],
        };
        manifest.Write(Path.Combine(request.Results, "drivers.json"));
        foreach (var p in patched)
            Console.WriteLine($"claim:      {p.Name}: judged by {p.Policy} ({p.PolicyFrom})");

        // 2. The suites, on the board, once per driver. A driver's tests mostly wait (calls held in
        // OP-TEE), so several instances of the board share the drivers out and finish sooner.
        var boardFile = RepoPaths.File("boards", request.Board + ".yaml");
        var shards = Shard(manifest, Math.Clamp(request.Boards, 1, manifest.Drivers.Count));
        Console.WriteLine($"running:    call-queue tests on {request.Board} for {manifest.Drivers.Count} drivers (control{(request.ControlRuns > 1 ? $" ×{request.ControlRuns}" : "")} + {patched.Count}) " +
                          $"on {shards.Count} instance(s) of the board; results {request.Results}");
        var runClock = Stopwatch.StartNew();
        if (!await new SuiteRun(RepoPaths.Root, request.Results, log).BuildAsync(SuiteProject, ct))
            throw new PatchEnvironmentException($"the suite {SuiteProject} does not build: see {request.Results}");
        var exits = await Task.WhenAll(shards.Select(async (shard, i) =>
        {
            var dir = shards.Count == 1 ? request.Results : Path.Combine(request.Results, $"instance-{i + 1}");
            Directory.CreateDirectory(dir);
            var path = Path.Combine(dir, "drivers.json");
            shard.Write(path);
            return await new SuiteRun(RepoPaths.Root, dir, log).TestAsync(SuiteProject, new Dictionary<string, string>
            {
                ["HIL_BOARDS"] = boardFile,
                ["HIL_RESULTS"] = dir,
                [DriverManifest.EnvVar] = path,
                ["HIL_TEST_BUDGET"] = ((int)request.TestBudget.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture),
            }, $"TestCategory={DriverManifest.SuiteCategory}", ct);
        }));
        var exit = exits.Max();
        var runTime = runClock.Elapsed;

        // 3. The verdicts.
        var folders = shards.Count == 1 ? [request.Results] : Enumerable.Range(1, shards.Count).Select(i => Path.Combine(request.Results, $"instance-{i}")).ToList();
        var outcome = PatchVerdicts.Judge(folders, request.Board, manifest, patched, controlPolicy);
        var report = PatchReport.Render(outcome, request, buildTime, runTime, clock.Elapsed);
        await File.WriteAllTextAsync(Path.Combine(request.Results, PatchReport.FileName), report, ct);
        Console.WriteLine();
        Console.Write(PatchReport.Console(outcome));
        Console.WriteLine($"times:      build {buildTime.TotalSeconds:0.0} s, board {runTime.TotalSeconds:0.0} s, total {clock.Elapsed.TotalSeconds:0.0} s (dotnet test exit {exit})");
        Console.WriteLine($"report:     {Path.Combine(request.Results, PatchReport.FileName)}");
        return outcome.Passed ? 0 : 1;
    }

    /// <summary>The drivers dealt out to <paramref name="n"/> board instances (the control with the first).</summary>
    private static IReadOnlyList<DriverManifest> Shard(DriverManifest all, int n) =>
        [.. Enumerable.Range(0, n).Select(i => all with { Drivers = [.. all.Drivers.Where((_, k) => k % n == i)] })];

    /// <summary>
    /// The policy a patch is judged by: --expect-policy, else what the series claims (a Claims-Policy
    /// trailer), else the stock driver's: a patch that says nothing means to keep the call queue's behaviour.
    /// </summary>
    private PatchedDriver Claim(string name, IReadOnlyList<string> files, PatchBuildResult build, string controlPolicy)
    {
        var trailer = ClaimOf(build.Series);
        var (policy, from) = request.ExpectPolicy is { } e ? (e, "--expect-policy")
            : trailer.Value is { } v ? (v, $"Claims-Policy trailer of {trailer.Patch.Name}")
            : (controlPolicy, "the stock driver's: the series claims no other (no Claims-Policy trailer)");
        if (Policy.Find(policy) is null)
            throw new PatchRejectedException(PatchRejection.Malformed, $"{trailer.Patch?.Name}: Claims-Policy: '{policy}' is not a model policy ({Policy.Names})");
        var mutant = build.Series.Patches.Any(p => p.Trailer("Breaks") is not null);
        return new PatchedDriver(name, files, build, policy, from, mutant);
    }

    /// <summary>The last Claims-Policy trailer of the series (a later patch's claim wins).</summary>
    private static (SeriesPatch Patch, string? Value) ClaimOf(PatchSeries series) =>
        series.Patches.Select(p => (Patch: p, Value: p.Trailer("Claims-Policy"))).LastOrDefault(x => x.Value is not null);

    /// <summary>The control's own policy, told from its code (the stock driver the patch is compared with).</summary>
    private static async Task<string> ControlPolicyAsync(DriverBuild control, CancellationToken ct)
    {
        var file = OpteeModuleFile.FromHostFile(control.Module("optee").Path);
        var own = DriverPolicy.From(CallQueueAnalyzer.Analyze(await file.DisassembleAsync(ct)));
        return own.Name ?? throw new PatchEnvironmentException($"the unpatched driver is not one the model knows: {own.Evidence}");
    }

    private static string Describe(IReadOnlyList<string> files) => files.Count == 1 ? Path.GetFileName(files[0]) : $"{files.Count} files ({Path.GetFileName(files[0])} …)";

    private static string NameOf(IReadOnlyList<string> files)
    {
        var stem = Path.GetFileNameWithoutExtension(files[0]);
        var safe = new string([.. stem.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-')]).Trim('-');
        if (safe.Length == 0 || safe == "control") safe = "patched";
        return safe.Length > 48 ? safe[..48] : safe;
    }

    private static string Unique(string name, IReadOnlyList<PatchedDriver> taken)
    {
        var n = name;
        for (var i = 2; taken.Any(p => p.Name == n); i++) n = $"{name}-{i}";
        return n;
    }
}
