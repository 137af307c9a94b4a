using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Hil.Qemu.Board;
using Hil.Qemu.Provisioning;
using Hil.Kernel;
using Serilog;
using Spectre.Console;

namespace Hil.Cli.Commands;

/// <summary>
/// `hil run [--board NAME|FILE]... [--suite smoke|system-threads|all] [--results DIR]` — the main
/// job: provision (or reuse) the QEMU boards, build the on-board suites, run them with
/// <c>dotnet test</c> (HIL_BOARDS / HIL_RESULTS set, JUnit + NUnit XML into the results folder),
/// print a board × test table with outcome, failure class and duration. Exit 0 only when every
/// test passed; 1 when something failed; 2 for bad input.
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
        var cmd = new Command("run", "Provision and boot the boards, run the on-board suites, write results (JUnit/NUnit XML, console logs, manifests)")
            { board, suite, results, noRetry };
        cmd.TreatUnmatchedTokensAsErrors = false;
        cmd.SetAction(async (pr, ct) =>
        {
            RunRequest request;
            try
            {
                request = RunRequest.From(pr, board, suite, results) with { NoRetry = pr.GetValue(noRetry) };
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

    private static readonly string[] KnownSuites = ["smoke", "system-threads", RunCommands.AllSuites];

    public static RunRequest From(ParseResult pr, Option<string[]> board, Option<string?> suite, Option<string?> results)
    {
        if (pr.UnmatchedTokens.Count > 0)
            throw new UsageException($"unexpected argument '{pr.UnmatchedTokens[0]}' (usage: hil run [--board NAME|FILE]... [--suite smoke|system-threads|all] [--results DIR] [--no-retry])");
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

        // Building needs no board and provisioning needs no build: do both at once.
        var build = BuildAsync(log, ct);
        var provisioned = await ProvisionAsync(log, ct);
        var built = await build;
        if (!built || !provisioned)
        {
            Console.Error.WriteLine($"hil run: {(!built ? "building the suites" : "provisioning")} failed; see {Path.Combine(request.Results, "run.log")}");
            return 1;
        }

        var exitCodes = new List<int>();
        foreach (var suite in request.Suites)
            exitCodes.Add(await TestAsync(suite, log, ct));

        var rows = request.Suites.SelectMany(s => ReadRows(s)).ToList();
        PrintTable(rows);
        PrintTimings(rows, log);
        var passed = rows.Count(r => r.Outcome == "Passed");
        var failed = rows.Count(r => r.Outcome == "Failed");
        var flaky = rows.Count(r => r.PassedOnRetry);
        var other = rows.Count - passed - failed;
        var ok = rows.Count > 0 && failed == 0 && other == 0 && exitCodes.All(c => c == 0);
        log.Information("hil run: {Passed} passed ({Flaky} on retry), {Failed} failed, {Other} not run, in {Seconds:0} s", passed, flaky, failed, other, clock.Elapsed.TotalSeconds);
        // The count of flaky tests is part of every run's verdict: a nightly job graphs it.
        Console.WriteLine($"flaky (passed on retry): {flaky}{(request.NoRetry ? " (retries off: --no-retry)" : "")}");
        Console.WriteLine($"{passed} passed, {failed} failed{(other > 0 ? $", {other} skipped or not run" : "")} in {clock.Elapsed.TotalMinutes:0.0} min");
        if (!ok && failed == 0 && rows.Count == 0) Console.WriteLine("no test results were read: see the run log");
        Console.WriteLine($"results: {request.Results}");
        return ok ? 0 : 1;
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
            var code = await DotnetAsync(["build", suite.Project, "-c", "Release", "-nologo", "-v", "quiet", "-clp:ErrorsOnly"], logFile, null, null, ct);
            if (code != 0)
            {
                log.Error("building {Project} failed (exit {Code}):\n{Tail}", suite.Project, code, ExternalTool.Tail(await File.ReadAllTextAsync(logFile, ct), 15));
                return false;
            }
            log.Information("built {Suite} in {Seconds:0.0} s", suite.Name, clock.Elapsed.TotalSeconds);
        }
        return true;
    }

    /// <summary>Runs one suite with dotnet test; its per-test lines and board events are echoed as they come.</summary>
    private async Task<int> TestAsync(SuiteProject suite, ILogger log, CancellationToken ct)
    {
        var env = new Dictionary<string, string>
        {
            ["HIL_BOARDS"] = string.Join(',', request.Boards.Select(b => b.File)),
            ["HIL_RESULTS"] = request.Results,
            [RetryConvention.NoRetryVariable] = request.NoRetry ? "1" : "0",
        };
        string[] args =
        [
            "test", suite.Project, "-c", "Release", "--no-build", "-nologo",
            // Off-board checks of the suite library (category host) belong to run-tests, not to the per-board table.
            "--filter", "TestCategory!=host",
            "--logger", $"junit;LogFilePath={Path.Combine(request.Results, suite.Name + ".junit.xml")};MethodFormat=Class;FailureBodyFormat=Verbose",
            "--logger", $"nunit;LogFilePath={Path.Combine(request.Results, suite.Name + ".nunit.xml")}",
            "--logger", $"trx;LogFileName={suite.Name}.trx",
            "--logger", "console;verbosity=normal",
            "--results-directory", Path.Combine(request.Results, "trx"),
            // A test host stuck beyond any test's own budget is killed and reported rather than waited for.
            "--blame-hang-timeout", "30m", "--blame-hang-dump-type", "none",
        ];
        log.Information("running suite {Suite} on {Boards}", suite.Name, string.Join(", ", request.Boards.Select(b => b.Name)));
        var clock = Stopwatch.StartNew();
        var code = await DotnetAsync(args, Path.Combine(request.Results, $"{suite.Name}.test.log"), env, Echo, ct);
        log.Information("suite {Suite} finished in {Seconds:0.0} s (dotnet test exit {Code})", suite.Name, clock.Elapsed.TotalSeconds, code);
        return code;

        void Echo(string line)
        {
            // Board progress ("[board] …") and each test's verdict; the full output stays in the log file.
            var t = line.TrimStart();
            if (t.StartsWith('[') || t.StartsWith("Passed ", StringComparison.Ordinal) || t.StartsWith("Failed ", StringComparison.Ordinal)
                || t.StartsWith("Skipped ", StringComparison.Ordinal) || t.StartsWith("error", StringComparison.OrdinalIgnoreCase))
                Console.WriteLine($"  {suite.Name}: {t}");
        }
    }

    /// <summary>Runs dotnet with an argument vector (no shell), all output into <paramref name="logFile"/>.</summary>
    private async Task<int> DotnetAsync(IReadOnlyList<string> args, string logFile, IReadOnlyDictionary<string, string>? env,
        Action<string>? onLine, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        // The suites log in to the boards of this run with their secrets; no other secret goes along,
        // and a build gets none at all.
        Hil.Boards.Secrets.ChildEnvironment.Scrub(psi, env is null ? [] : request.Boards.SelectMany(b => Hil.Boards.Secrets.ChildEnvironment.VariablesOf(b.Spec)));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["TESTINGPLATFORM_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        if (env is not null)
            foreach (var (k, v) in env) psi.Environment[k] = v;
        await using var file = new StreamWriter(logFile, append: false) { AutoFlush = true };
        await file.WriteLineAsync("$ " + ExternalTool.Describe("dotnet", args));
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start dotnet");
        p.StandardInput.Close();
        var gate = new SemaphoreSlim(1, 1);
        async Task Pump(StreamReader from)
        {
            while (await from.ReadLineAsync(ct) is { } line)
            {
                await gate.WaitAsync(ct);
                try { await file.WriteLineAsync(line); }
                finally { gate.Release(); }
                onLine?.Invoke(line);
            }
        }
        try
        {
            await Task.WhenAll(Pump(p.StandardOutput), Pump(p.StandardError));
            await p.WaitForExitAsync(ct);
        }
        catch (OperationCanceledException)
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw;
        }
        return p.ExitCode;
    }

    /// <summary>The suite's tests from its NUnit XML; the board is the fixture's argument, the class leads the failure message.</summary>
    private IEnumerable<TestRow> ReadRows(SuiteProject suite)
    {
        var path = Path.Combine(request.Results, suite.Name + ".nunit.xml");
        if (!File.Exists(path)) return [new TestRow(suite.Name, "-", "(no results: the suite did not run)", "Failed", "test", 0, null)];
        var doc = XDocument.Load(path);
        return doc.Descendants("test-case").Select(tc =>
        {
            var classname = (string?)tc.Attribute("classname") ?? "";
            var open = classname.IndexOf('(');
            var board = open >= 0 && classname.EndsWith(')') ? classname[(open + 1)..^1] : "-";
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
