using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Hil.Boards.Leases;
using Hil.Qemu.Board;
using Hil.Qemu.Provisioning;
using Hil.Kernel;
using Serilog;
using Spectre.Console;

namespace Hil.Cli.Commands;

/// <summary>
/// `hil run [--board NAME|FILE]... [--suite smoke|system-threads|all] [--results DIR]` — the main
/// job: lease the boards that need it (every board but a private QEMU one, see BoardLeasing),
/// provision (or reuse) the QEMU boards, build the on-board suites, run them with <c>dotnet test</c>
/// — one child per board and suite, the boards at once, each board's suites in turn (HIL_BOARDS =
/// that board; JUnit/NUnit XML, TRX and log into RESULTS/BOARD, merged per suite at the root) —
/// and print a board × test table with outcome, failure class and duration, and a line per board.
/// Exit 0 only when every test passed; 1 when something failed (or a board could not be leased);
/// 2 for bad input.
/// </summary>
public static class RunCommands
{
    /// <summary>What `hil run` runs on when no --board is given: the QEMU board on both kernels.</summary>
    public static readonly IReadOnlyList<string> DefaultBoards = ["qemu-optee", "qemu-optee-6.1"];

    public const string AllSuites = "all";

    public static Command Build()
    {
        // Values are optional to the parser so that a missing one is reported by us, in one line, with exit 2.
        var board = new Option<string[]>("--board", "-b")
        {
            Description = $"board name (boards/NAME.yaml) or board file; repeat for several (default: {string.Join(", ", DefaultBoards)})",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var suite = new Option<string?>("--suite", "-s")
        {
            Description = "suite to run: smoke, system-threads or all (default: all that exist under testsuites/)",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var results = new Option<string?>("--results", "-r")
        {
            Description = "results folder (default: artifacts/results/<UTC timestamp>)",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var noRetry = new Option<bool>("--no-retry")
        {
            Description = "never retry a test after an infrastructure failure (every first-attempt failure stays a failure)",
        };
        var leaseWait = new Option<double?>("--lease-wait")
        {
            Description = $"seconds to wait for a board another run holds (default {BoardLeasing.DefaultWait.TotalSeconds:0}); QEMU boards are never leased",
        };
        var parallel = new Option<int?>("--parallel")
        {
            Description = "boards run at once (default: all of them; 1 runs them one after another)",
        };
        var cmd = new Command("run", "Provision and boot the boards, run the on-board suites (every board at once, each apart), write results (JUnit/NUnit XML, console logs, manifests)")
            { board, suite, results, noRetry, leaseWait, parallel };
        cmd.TreatUnmatchedTokensAsErrors = false;
        cmd.SetAction(async (pr, ct) =>
        {
            RunRequest request;
            try
            {
                request = RunRequest.From(pr, board, suite, results) with { NoRetry = pr.GetValue(noRetry) };
                if (pr.GetValue(leaseWait) is { } w)
                    request = request with { LeaseWait = w is >= 0 and <= 86400 ? TimeSpan.FromSeconds(w) : throw new UsageException("--lease-wait: seconds from 0 to 86400") };
                if (pr.GetValue(parallel) is { } n)
                    request = request with { Parallel = n >= 1 ? n : throw new UsageException("--parallel: at least 1") };
            }
            catch (UsageException ex)
            {
                Console.Error.WriteLine($"hil run: {ex.Message}");
                return CliRunner.UsageError;
            }
            return await new RunJob(request).RunAsync(ct);
        });
        return cmd;
    }
}

/// <summary>Bad command-line input: reported as one line, exit 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>One on-board suite project: testsuites/Hil.Suites.NAME/Hil.Suites.NAME.csproj.</summary>
internal sealed record SuiteProject(string Name, string Project)
{
    /// <summary>Every suite project under testsuites/ (Hil.Suites.Common is the library they share, not a suite).</summary>
    public static IReadOnlyList<SuiteProject> Discover(string root)
    {
        var dir = Path.Combine(root, "testsuites");
        if (!Directory.Exists(dir)) return [];
        return Directory.EnumerateDirectories(dir, "Hil.Suites.*")
            .Select(d => (Dir: d, Name: Path.GetFileName(d)))
            .Where(d => d.Name != "Hil.Suites.Common" && File.Exists(Path.Combine(d.Dir, d.Name + ".csproj")))
            .Select(d => new SuiteProject(Kebab(d.Name["Hil.Suites.".Length..]), Path.Combine(d.Dir, d.Name + ".csproj")))
            .OrderBy(s => s.Name, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>"SystemThreads" → "system-threads" (the suites name their results folders the same way).</summary>
    public static string Kebab(string name) =>
        string.Concat(name.Select((c, i) => char.IsUpper(c) && i > 0 ? "-" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));
}

/// <summary>A board to run on: its name (from the board file) and the board file.</summary>
internal sealed record RunBoard(string Name, string File, BoardSpec Spec)
{
    public bool IsQemu => Spec.Power.Driver == QemuPowerDriver.DriverName;
}

/// <summary>The validated command line.</summary>
internal sealed record RunRequest(string Root, IReadOnlyList<RunBoard> Boards, IReadOnlyList<SuiteProject> Suites, string Results)
{
    /// <summary>--no-retry: infrastructure failures are not retried on a fresh board.</summary>
    public bool NoRetry { get; init; }

    /// <summary>--lease-wait: how long to wait for a board another run holds.</summary>
    public TimeSpan LeaseWait { get; init; } = BoardLeasing.DefaultWait;

    /// <summary>--parallel: boards run at once (each board's suites still run one after another).</summary>
    public int Parallel { get; init; } = int.MaxValue;

    private static readonly string[] KnownSuites = ["smoke", "system-threads", RunCommands.AllSuites];

    public static RunRequest From(ParseResult pr, Option<string[]> board, Option<string?> suite, Option<string?> results)
    {
        if (pr.UnmatchedTokens.Count > 0)
            throw new UsageException($"unexpected argument '{pr.UnmatchedTokens[0]}' (usage: hil run [--board NAME|FILE]... [--suite smoke|system-threads|all] [--results DIR] [--no-retry] [--lease-wait SECONDS] [--parallel N])");
        var root = RepoPaths.Root;

        var boardResult = pr.GetResult(board);
        var boardArgs = pr.GetValue(board) ?? [];
        if (boardResult is not null && boardArgs.Length == 0) throw new UsageException("--board: give a board name or a board file");
        var boards = ResolveBoards(boardArgs.Length > 0 ? boardArgs : RunCommands.DefaultBoards, root);

        var suiteName = pr.GetValue(suite);
        if (pr.GetResult(suite) is not null && string.IsNullOrWhiteSpace(suiteName))
            throw new UsageException("--suite: give smoke, system-threads or all");
        var available = SuiteProject.Discover(root);
        var wanted = suiteName?.Trim() ?? RunCommands.AllSuites;
        IReadOnlyList<SuiteProject> suites;
        if (wanted == RunCommands.AllSuites) suites = available;
        else if (available.FirstOrDefault(s => s.Name == wanted) is { } one) suites = [one];
        else if (KnownSuites.Contains(wanted))
            throw new UsageException($"--suite {wanted}: the suite does not exist yet (no testsuites/Hil.Suites.*/ project for it); suites here: {string.Join(", ", available.Select(s => s.Name))}");
        else
            throw new UsageException($"--suite: unknown suite '{wanted}'; known: {string.Join(", ", available.Select(s => s.Name).Append(RunCommands.AllSuites))}");
        if (suites.Count == 0) throw new UsageException($"no suite projects under {Path.Combine(root, "testsuites")}");

        var resultsArg = pr.GetValue(results);
        if (pr.GetResult(results) is not null && string.IsNullOrWhiteSpace(resultsArg)) throw new UsageException("--results: give a folder");
        var resultsDir = resultsArg is { Length: > 0 }
            ? Path.GetFullPath(resultsArg)
            : Path.Combine(root, "artifacts", "results", DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture));
        if (File.Exists(resultsDir)) throw new UsageException($"--results: {resultsDir} is a file");
        return new RunRequest(root, boards, suites, resultsDir);
    }

    private static IReadOnlyList<RunBoard> ResolveBoards(IEnumerable<string> args, string root)
    {
        QemuBoards.Register();
        var boards = new List<RunBoard>();
        foreach (var raw in args)
        {
            var arg = raw.Trim();
            var isPath = arg.Contains('/') || arg.EndsWith(".yaml", StringComparison.Ordinal) || arg.EndsWith(".yml", StringComparison.Ordinal);
            var file = isPath ? Path.GetFullPath(arg) : Path.Combine(root, "boards", arg + ".yaml");
            if (arg.Length == 0) throw new UsageException("--board: empty board name");
            if (!isPath && !Regex.IsMatch(arg, "^[A-Za-z0-9][A-Za-z0-9._-]*$"))
                throw new UsageException($"--board '{arg}': not a board name (letters, digits, '.', '_', '-') nor a board file path");
            if (!File.Exists(file))
            {
                var known = string.Join(", ", Directory.EnumerateFiles(Path.Combine(root, "boards"), "*.yaml").Select(Path.GetFileNameWithoutExtension).Order());
                throw new UsageException(isPath ? $"--board: board file {file} does not exist" : $"--board '{arg}': no board file {file} (known boards: {known})");
            }
            // HIL_BOARDS is comma-separated.
            if (file.Contains(',')) throw new UsageException($"--board: the board file's path {file} contains a comma; move or rename it");
            BoardSpec spec;
            try
            {
                spec = BoardFileLoader.Load(file);
            }
            catch (BoardFileException ex)
            {
                // Every error of the file, each "file:line:column: field: message"; the first line says it all.
                throw new UsageException(ex.Errors.Count == 1 ? ex.Message : $"{ex.Errors[0]} (+{ex.Errors.Count - 1} more in the same file)");
            }
            CheckSuiteFacts(spec);
            if (boards.Any(b => b.Name == spec.Name)) throw new UsageException($"--board: board '{spec.Name}' is given twice");
            boards.Add(new RunBoard(spec.Name, file, spec));
        }
        return boards;
    }

    /// <summary>
    /// The suites measure policy and thread count on the board; a board file may state them as
    /// expectations, and one the suites would not understand is refused before anything runs.
    /// </summary>
    private static void CheckSuiteFacts(BoardSpec spec)
    {
        if (spec.Facts.TryGetValue("kernel_policy", out var policy) && !KernelPolicies.Known.Contains(policy))
            throw new UsageException($"{spec.SourceFile}: facts.kernel_policy: '{policy}' is not a policy the suites know; write mainline or legacy, or leave it out (it is measured on the board)");
    }
}

/// <summary>One test's line in the summary: read back from the NUnit XML the suites' run wrote.</summary>
internal sealed record TestRow(string Suite, string Board, string Test, string Outcome, string? FailureClass, double Seconds, string? Message,
    string? RetryNote = null)
{
    /// <summary>Passed only on a retry after an infrastructure failure: flaky, and shown as such.</summary>
    public bool PassedOnRetry => Outcome == "Passed" && RetryNote is not null;

    public string Shown => PassedOnRetry ? "passed on retry" : Outcome == "Failed" ? "FAILED" : Outcome.ToLowerInvariant();
}

/// <summary>What one board's part of a run came to.</summary>
internal sealed record BoardRun(string Board, DateTimeOffset Started, TimeSpan Elapsed, IReadOnlyList<int> ExitCodes, IReadOnlyList<TestRow> Rows);

/// <summary>Does the work of one `hil run`.</summary>
internal sealed class RunJob(RunRequest request)
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    private readonly bool _terminal = !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    public async Task<int> RunAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(request.Results);
        using var log = Logger();
        var clock = Stopwatch.StartNew();
        log.Information("hil run: boards {Boards}; suites {Suites}; results {Results}",
            string.Join(", ", request.Boards.Select(b => $"{b.Name} ({b.File})")), string.Join(", ", request.Suites.Select(s => s.Name)), request.Results);

        // Leases first: a run that cannot have its boards stops before it spends minutes building,
        // and one that waits for a board builds only once it has it.
        var leased = request.Boards.Where(b => BoardLeasing.NeedsLease(b.Spec)).Select(b => b.Name).ToList();
        LeaseSet? leases = null;
        if (leased.Count > 0)
        {
            if (_terminal) AnsiConsole.WriteLine($"leasing {string.Join(", ", leased)} (lease folder {LeaseFolder.DefaultPath()}; waiting up to {request.LeaseWait.TotalSeconds:0} s)");
            try
            {
                leases = await LeaseSet.TakeAsync(leased, null, BoardLease.DefaultOwner, BoardLeasing.Ttl, request.LeaseWait, log, ct);
            }
            catch (HilException ex)
            {
                log.Error("leasing the boards failed: {Message}", ex.Message);
                return RunLeases.Refused("hil run", ex);
            }
        }
        await using (leases)
        {
            // A lost lease means the board may be in someone else's hands: stop using it at once.
            using var run = CancellationTokenSource.CreateLinkedTokenSource(ct, leases?.AnyLost ?? CancellationToken.None);
            try
            {
                return await RunLeasedAsync(leases?.ChildEnvironment(), log, clock, run.Token);
            }
            catch (OperationCanceledException) when (leases is { AnyLost.IsCancellationRequested: true })
            {
                var why = leases.Leases.Select(l => l.LostReason).FirstOrDefault(r => r is not null) ?? "a board's lease was lost";
                log.Error("hil run stopped: {Why}", why);
                Console.Error.WriteLine($"hil run: [infrastructure] {why}; the run was stopped (results so far: {request.Results})");
                return 1;
            }
        }
    }

    /// <summary>Builds and provisions, then runs every board's suites, the boards at once (up to --parallel), each into its own folder.</summary>
    private async Task<int> RunLeasedAsync(IReadOnlyDictionary<string, string>? leaseEnv, ILogger log, Stopwatch clock, CancellationToken ct)
    {
        // Building needs no board and provisioning needs no build: do both at once.
        var build = BuildAsync(log, ct);
        var provisioned = await ProvisionAsync(log, ct);
        var built = await build;
        if (!built || !provisioned)
        {
            Console.Error.WriteLine($"hil run: {(!built ? "building the suites" : "provisioning")} failed; see {Path.Combine(request.Results, "run.log")}");
            return 1;
        }

        using var slots = new SemaphoreSlim(Math.Min(request.Parallel, request.Boards.Count));
        var boardRuns = await Task.WhenAll(request.Boards.Select(async b =>
        {
            await slots.WaitAsync(ct);
            try { return await BoardAsync(b, leaseEnv, log, ct); }
            finally { slots.Release(); }
        }));
        foreach (var suite in request.Suites)
            RunResultFiles.Merge(request.Results, suite.Name, request.Boards.Select(b => b.Name), log);

        var rows = boardRuns.SelectMany(r => r.Rows).ToList();
        PrintTable(rows);
        PrintTimings(rows, log);
        PrintBoards(boardRuns, log);
        var passed = rows.Count(r => r.Outcome == "Passed");
        var failed = rows.Count(r => r.Outcome == "Failed");
        var flaky = rows.Count(r => r.PassedOnRetry);
        var other = rows.Count - passed - failed;
        var ok = rows.Count > 0 && failed == 0 && other == 0 && boardRuns.All(r => r.ExitCodes.All(c => c == 0));
        log.Information("hil run: {Passed} passed ({Flaky} on retry), {Failed} failed, {Other} not run, in {Seconds:0} s", passed, flaky, failed, other, clock.Elapsed.TotalSeconds);
        // The count of flaky tests is part of every run's verdict: a nightly job graphs it.
        Console.WriteLine($"flaky (passed on retry): {flaky}{(request.NoRetry ? " (retries off: --no-retry)" : "")}");
        Console.WriteLine($"{passed} passed, {failed} failed{(other > 0 ? $", {other} skipped or not run" : "")} in {clock.Elapsed.TotalMinutes:0.0} min");
        if (!ok && failed == 0 && rows.Count == 0) Console.WriteLine("no test results were read: see the run log");
        Console.WriteLine($"results: {request.Results}");
        return ok ? 0 : 1;
    }

    /// <summary>One board's suites, one after another (a board runs one thing at a time), each a `dotnet test` of its own.</summary>
    private async Task<BoardRun> BoardAsync(RunBoard board, IReadOnlyDictionary<string, string>? leaseEnv, ILogger log, CancellationToken ct)
    {
        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var codes = new List<int>();
        var rows = new List<TestRow>();
        foreach (var suite in request.Suites)
        {
            codes.Add(await TestAsync(suite, board, leaseEnv, log, ct));
            rows.AddRange(ReadRows(suite, board));
        }
        log.Information("board {Board}: all suites done in {Seconds:0.0} s", board.Name, clock.Elapsed.TotalSeconds);
        return new BoardRun(board.Name, started, clock.Elapsed, codes, rows);
    }

    /// <summary>The summary per board: what passed, and how long the board was busy (the boards' spans overlap when they ran at once).</summary>
    private void PrintBoards(IReadOnlyList<BoardRun> runs, ILogger log)
    {
        var first = runs.Min(r => r.Started);
        foreach (var r in runs)
        {
            var line = $"board {r.Board}: {r.Rows.Count(x => x.Outcome == "Passed")} passed ({r.Rows.Count(x => x.PassedOnRetry)} on retry), "
                + $"{r.Rows.Count(x => x.Outcome == "Failed")} failed, {r.Rows.Count(x => x.Outcome is not ("Passed" or "Failed"))} not run; "
                + $"busy from +{(r.Started - first).TotalSeconds:0} s for {r.Elapsed.TotalSeconds:0} s; results {Path.Combine(request.Results, r.Board)}";
            log.Information("{Line}", line);
            Console.WriteLine(line);
        }
    }

    private Serilog.Core.Logger Logger()
    {
        var cfg = new LoggerConfiguration().MinimumLevel.Information()
            .WriteTo.File(Path.Combine(request.Results, "run.log"), outputTemplate: "{Timestamp:yyyy-MM-dd HH:mm:ss.fff} {Level:u3} {Message:lj}{NewLine}{Exception}");
        // On a terminal the live displays speak; elsewhere (CI) the log lines are the progress.
        if (!_terminal) cfg = cfg.WriteTo.Console(outputTemplate: "{Timestamp:HH:mm:ss} {Message:lj}{NewLine}", standardErrorFromLevel: Serilog.Events.LogEventLevel.Verbose);
        return cfg.CreateLogger();
    }

    /// <summary>Provisions (or reuses) the image of every QEMU board; records cold/warm and the manifests in the results.</summary>
    private async Task<bool> ProvisionAsync(ILogger log, CancellationToken ct)
    {
        var recipes = request.Boards.Where(b => b.IsQemu)
            .Select(b => b.Spec.Power.Settings.TryGetValue(QemuBoards.ImageSetting, out var image) ? image : null)
            .Distinct().ToList();
        if (recipes.Count == 0) return true;
        var unknown = recipes.FirstOrDefault(r => r is null || BoardRecipe.All.All(x => x.Board != r));
        if (recipes.Contains(null) || unknown is not null)
        {
            log.Error("a QEMU board file names no known image in power.settings.{Setting} (known: {Known})", QemuBoards.ImageSetting,
                string.Join(", ", BoardRecipe.All.Select(r => r.Board)));
            return false;
        }
        var cache = HilCache.Default();
        try
        {
            var result = await new QemuProvisioner(cache, new ProvisionOptions(), log, ProvisionProgress.For(log))
                .ProvisionAsync(recipes.Select(r => BoardRecipe.All.First(x => x.Board == r)).ToList(), ct);
            var kind = result.DidWork ? "cold" : "warm";
            log.Information("provisioning {Kind}: {Seconds:0.0} s ({Images}; cache {Cache})", kind, result.Elapsed.TotalSeconds,
                string.Join(", ", result.Images.Select(i => Path.GetFileName(i.Directory))), cache.Root);
            AnsiConsole.WriteLine($"provisioning {kind}: {result.Elapsed.TotalSeconds:0.0} s (cache {cache.Root})");
            foreach (var b in request.Boards.Where(b => b.IsQemu))
            {
                var image = result.Images.First(i => i.Board == b.Spec.Power.Settings[QemuBoards.ImageSetting]);
                var dir = Path.Combine(request.Results, b.Name);
                Directory.CreateDirectory(dir);
                File.Copy(image.ManifestPath, Path.Combine(dir, Manifest.JsonName), overwrite: true);
                File.Copy(image.ManifestTablePath, Path.Combine(dir, Manifest.TableName), overwrite: true);
            }
            await File.WriteAllTextAsync(Path.Combine(request.Results, "provisioning.json"), JsonSerializer.Serialize(new
            {
                Kind = kind,
                Seconds = Math.Round(result.Elapsed.TotalSeconds, 1),
                Cache = cache.Root,
                Images = result.Images.Select(i => i.Directory),
                Steps = result.Steps.Select(s => new { s.Board, s.Name, Kind = s.Kind.ToString(), Seconds = Math.Round(s.Duration.TotalSeconds, 1) }),
            }, Json) + "\n", ct);
            return true;
        }
        catch (Exception ex) when (ex is ProvisioningException or ExternalToolException or HilException)
        {
            log.Error("provisioning failed: {Message}", ex.Message);
            return false;
        }
    }

    private async Task<bool> BuildAsync(ILogger log, CancellationToken ct)
    {
        foreach (var suite in request.Suites)
        {
            var logFile = Path.Combine(request.Results, $"build-{suite.Name}.log");
            var clock = Stopwatch.StartNew();
            var code = await DotnetAsync(["build", suite.Project, "-c", "Release", "-nologo", "-v", "quiet", "-clp:ErrorsOnly"], logFile, null, [], null, ct);
            if (code != 0)
            {
                log.Error("building {Project} failed (exit {Code}):\n{Tail}", suite.Project, code, ExternalTool.Tail(await File.ReadAllTextAsync(logFile, ct), 15));
                return false;
            }
            log.Information("built {Suite} in {Seconds:0.0} s", suite.Name, clock.Elapsed.TotalSeconds);
        }
        return true;
    }

    /// <summary>Runs one suite on one board with dotnet test; its per-test lines and board events are echoed as they come.</summary>
    private async Task<int> TestAsync(SuiteProject suite, RunBoard board, IReadOnlyDictionary<string, string>? leaseEnv, ILogger log, CancellationToken ct)
    {
        var dir = Path.Combine(request.Results, board.Name);
        Directory.CreateDirectory(dir);
        var env = new Dictionary<string, string>
        {
            ["HIL_BOARDS"] = board.File,
            // The suites write into RESULTS/BOARD/SUITE themselves: the root stays shared.
            ["HIL_RESULTS"] = request.Results,
            [RetryConvention.NoRetryVariable] = request.NoRetry ? "1" : "0",
        };
        // The leases this run holds: the child checks them instead of taking the board again (which would wait for us).
        foreach (var (k, v) in leaseEnv ?? new Dictionary<string, string>()) env[k] = v;
        string[] args =
        [
            "test", suite.Project, "-c", "Release", "--no-build", "-nologo",
            // Off-board checks of the suite library (category host) belong to run-tests, not to the per-board table.
            "--filter", "TestCategory!=host",
            "--logger", $"junit;LogFilePath={Path.Combine(dir, suite.Name + ".junit.xml")};MethodFormat=Class;FailureBodyFormat=Verbose",
            "--logger", $"nunit;LogFilePath={Path.Combine(dir, suite.Name + ".nunit.xml")}",
            "--logger", $"trx;LogFileName={suite.Name}.trx",
            "--logger", "console;verbosity=normal",
            "--results-directory", Path.Combine(dir, "trx"),
            // A test host stuck beyond any test's own budget is killed and reported rather than waited for.
            "--blame-hang-timeout", "30m", "--blame-hang-dump-type", "none",
        ];
        log.Information("running suite {Suite} on {Board}", suite.Name, board.Name);
        var clock = Stopwatch.StartNew();
        var code = await DotnetAsync(args, Path.Combine(dir, $"{suite.Name}.test.log"), env, Hil.Boards.Secrets.ChildEnvironment.VariablesOf(board.Spec), Echo, ct);
        log.Information("suite {Suite} on {Board} finished in {Seconds:0.0} s (dotnet test exit {Code})", suite.Name, board.Name, clock.Elapsed.TotalSeconds, code);
        return code;

        void Echo(string line)
        {
            // Board progress ("[board] …") and each test's verdict; the full output stays in the log file.
            var t = line.TrimStart();
            if (t.StartsWith('[') || t.StartsWith("Passed ", StringComparison.Ordinal) || t.StartsWith("Failed ", StringComparison.Ordinal)
                || t.StartsWith("Skipped ", StringComparison.Ordinal) || t.StartsWith("error", StringComparison.OrdinalIgnoreCase))
                Console.WriteLine($"  {board.Name} {suite.Name}: {t}");
        }
    }

    /// <summary>Runs dotnet with an argument vector (no shell), all output into <paramref name="logFile"/>.</summary>
    private static Task<int> DotnetAsync(IReadOnlyList<string> args, string logFile, IReadOnlyDictionary<string, string>? env,
        IReadOnlyList<string> secrets, Action<string>? onLine, CancellationToken ct) => DotnetProcess.RunAsync(args, logFile, env, secrets, onLine, ct);

    /// <summary>The suite's tests on one board from its NUnit XML; the board is the fixture's argument, the class leads the failure message.</summary>
    private IEnumerable<TestRow> ReadRows(SuiteProject suite, RunBoard runBoard)
    {
        var path = Path.Combine(request.Results, runBoard.Name, suite.Name + ".nunit.xml");
        if (!File.Exists(path)) return [new TestRow(suite.Name, runBoard.Name, "(no results: the suite did not run)", "Failed", "test", 0, null)];
        var doc = XDocument.Load(path);
        return doc.Descendants("test-case").Select(tc =>
        {
            var classname = (string?)tc.Attribute("classname") ?? "";
            var open = classname.IndexOf('(');
            var board = open >= 0 && classname.EndsWith(')') ? classname[(open + 1)..^1] : runBoard.Name;
            var message = tc.Element("failure")?.Element("message")?.Value;
            var cls = Regex.Match(message ?? "", @"^\s*(?:[A-Za-z]+: )?\[(infrastructure|product|test)\]") is { Success: true } m ? m.Groups[1].Value
                : message is null ? null : "unclassified";
            var seconds = double.TryParse((string?)tc.Attribute("duration"), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : 0;
            // A pass on retry says so in the test's output (see BoardSuite); the earlier attempt's failure follows the marker.
            var retry = tc.Value.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Contains(RetryConvention.PassedOnRetryMarker, StringComparison.Ordinal));
            return new TestRow(suite.Name, board, (string?)tc.Attribute("name") ?? "?", (string?)tc.Attribute("result") ?? "?", cls, seconds, message, retry);
        }).ToList();
    }

    private void PrintTable(IReadOnlyList<TestRow> rows)
    {
        var ordered = rows.OrderBy(r => r.Board, StringComparer.Ordinal).ThenBy(r => r.Suite, StringComparer.Ordinal).ToList();
        if (_terminal)
        {
            var t = new Table().Title("[bold]hil run[/]");
            t.AddColumns("board", "suite", "test", "outcome", "class", "duration");
            foreach (var r in ordered)
            {
                var outcome = r.PassedOnRetry ? "[yellow]passed on retry[/]" : r.Outcome == "Passed" ? "[green]passed[/]" : r.Outcome == "Failed" ? "[red]FAILED[/]" : $"[yellow]{Markup.Escape(r.Outcome)}[/]";
                t.AddRow(Markup.Escape(r.Board), Markup.Escape(r.Suite), Markup.Escape(r.Test), outcome, Markup.Escape(r.FailureClass ?? ""), $"{r.Seconds:0.0} s");
            }
            AnsiConsole.Write(t);
        }
        else
        {
            // CI logs: a plain table that survives any log viewer.
            string[] header = ["board", "suite", "test", "outcome", "class", "duration"];
            var cells = ordered.Select(r => new[] { r.Board, r.Suite, r.Test, r.Shown, r.FailureClass ?? (r.PassedOnRetry ? "infrastructure, retried" : ""), $"{r.Seconds:0.0} s" }).ToList();
            var widths = header.Select((h, i) => cells.Select(c => c[i].Length).Append(h.Length).Max()).ToArray();
            var sb = new StringBuilder();
            void Row(string[] c) => sb.Append(string.Join("  ", c.Select((x, i) => x.PadRight(widths[i]))).TrimEnd()).Append('\n');
            Row(header);
            Row(widths.Select(w => new string('-', w)).ToArray());
            foreach (var c in cells) Row(c);
            Console.Write(sb.ToString());
        }
        foreach (var r in ordered.Where(r => r.Outcome == "Failed"))
            Console.WriteLine($"FAILED {r.Board} {r.Suite} {r.Test}: {r.Message?.Split('\n')[0] ?? "(no message)"}");
        foreach (var r in ordered.Where(r => r.PassedOnRetry))
            Console.WriteLine($"PASSED ON RETRY {r.Board} {r.Suite} {r.Test}: {r.RetryNote}");
    }

    /// <summary>Per board: how long each boot took (QEMU start → shell, from the suites' session records) and each suite.</summary>
    private void PrintTimings(IReadOnlyList<TestRow> rows, ILogger log)
    {
        foreach (var b in request.Boards)
        {
            foreach (var s in request.Suites)
            {
                var sessions = Path.Combine(request.Results, b.Name, s.Name, "sessions.json");
                var boots = new List<string>();
                if (File.Exists(sessions))
                    foreach (var e in JsonDocument.Parse(File.ReadAllText(sessions)).RootElement.EnumerateArray())
                        boots.Add(e.GetProperty("boot_seconds").ValueKind == JsonValueKind.Number
                            ? $"{e.GetProperty("boot_seconds").GetDouble():0.0} s" : "failed");
                var mine = rows.Where(r => r.Board == b.Name && r.Suite == s.Name).ToList();
                var line = $"{b.Name} {s.Name}: {mine.Count} tests in {mine.Sum(r => r.Seconds):0.0} s; boots (power-on → shell through the harness): {(boots.Count > 0 ? string.Join(", ", boots) : "none")}";
                log.Information("{Line}", line);
                if (_terminal) AnsiConsole.WriteLine(line);
            }
        }
    }
}
