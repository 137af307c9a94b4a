using System.CommandLine;
using System.Diagnostics;
using Hil.Cli.Patches;
using Hil.Kernel;
using Hil.Patches;
using Hil.Qemu.Board;
using Hil.Qemu.Provisioning;
using Serilog;

namespace Hil.Cli.Commands;

/// <summary>
/// `hil patch build SERIES...` — builds a driver patch series for a board's kernel, and the
/// unpatched control the same way, and says where both modules are, their build IDs and times.
/// Bad input (an empty, binary or malformed patch, a path outside drivers/tee/, a hunk that does
/// not apply, a patch that does not build, a board without a module kit) is one line, exit 2.
/// </summary>
public static class PatchCommands
{
    public static Command Build()
    {
        UserErrors.Register<PatchRejectedException>(e => e.Message);
        UserErrors.Register<UsageException>(e => e.Message);
        var cmd = new Command("patch", "Validate an OP-TEE driver patch series against a board's kernel");
        cmd.Subcommands.Add(BuildCommand());
        cmd.Subcommands.Add(RunCommand());
        return cmd;
    }

    private static Command BuildCommand()
    {
        var series = new Argument<string[]>("SERIES")
        {
            Description = "the series, in order: git format-patch files, an mbox of a series, or plain unified diffs against the kernel's drivers/tee/",
            Arity = ArgumentArity.OneOrMore,
        };
        var board = new Option<string>("--board", "-b")
        {
            Description = $"board whose kernel the driver is built for: {string.Join(", ", BoardRecipe.All.Select(r => r.Board))}",
            DefaultValueFactory = _ => BoardRecipe.Mainline.Board,
        };
        var cmd = new Command("build", "Build the patched optee.ko (and tee.ko when the series touches it) and the unpatched control, out of tree, in the kernel's own Debian build root; check every ftrace patch site")
            { series, board };
        cmd.SetAction(async (pr, ct) =>
        {
            var cache = HilCache.Default();
            using var log = new LoggerConfiguration().MinimumLevel.Information()
                .WriteTo.Console(outputTemplate: "{Timestamp:HH:mm:ss} {Message:lj}{NewLine}", standardErrorFromLevel: Serilog.Events.LogEventLevel.Verbose)
                .CreateLogger();
            try
            {
                var r = await new PatchBuildJob(cache, log).RunAsync(pr.GetValue(series)!, pr.GetValue(board)!, ct);
                Print(r);
                return 0;
            }
            catch (PatchEnvironmentException ex)
            {
                // Not the patch's fault (network, debootstrap, the control): one line, a failed run.
                Console.Error.WriteLine($"hil: patch build: {ex.Message.Split('\n')[0]}");
                return 1;
            }
            catch (ExternalToolException ex)
            {
                Console.Error.WriteLine($"hil: patch build: {ex.Message.Split('\n')[0]}");
                return 1;
            }
        });
        return cmd;
    }

    private static Argument<string[]> SeriesArgument() => new("SERIES")
    {
        Description = "the series, in order: git format-patch files, an mbox of a series, or plain unified diffs against the kernel's drivers/tee/",
        Arity = ArgumentArity.OneOrMore,
    };

    private static Serilog.Core.Logger ConsoleLog() => new LoggerConfiguration().MinimumLevel.Information()
        .WriteTo.Console(outputTemplate: "{Timestamp:HH:mm:ss} {Message:lj}{NewLine}", standardErrorFromLevel: Serilog.Events.LogEventLevel.Verbose)
        .CreateLogger();

    /// <summary>
    /// `hil patch run`: builds the series (or, with --each, every file as a series of its own) and the
    /// control, then runs the call-queue tests on the board once per driver (one boot; each driver
    /// swapped in with its build ID checked on the board), judges every trace under every policy and
    /// gives a verdict per patch against the policy it claims. Exit 0: the verdict holds; 1: it does
    /// not (or the run failed); 2: bad input, nothing booted.
    /// </summary>
    private static Command RunCommand()
    {
        var series = SeriesArgument();
        var board = new Option<string>("--board", "-b")
        {
            Description = "QEMU board to boot: " + string.Join(", ", BoardRecipe.All.Select(r => r.Board)),
            DefaultValueFactory = _ => BoardRecipe.Mainline.Board,
        };
        var expect = new Option<string?>("--expect-policy")
        {
            Description = "the policy the patched driver must implement (default: what the series claims in a Claims-Policy: trailer, else the stock driver's)",
        };
        var each = new Option<bool>("--each")
        {
            Description = "every file is a series of its own (a corpus of alternative patches), all run against one control in one job; prints the mutation score of the known mutants (patches with a Breaks: line)",
        };
        var results = new Option<string?>("--results") { Description = "results folder (default: artifacts/patch-runs/STAMP-BOARD)" };
        var budget = new Option<int>("--test-budget")
        {
            Description = "seconds any one test may take on a driver before it fails (a driver that strands a caller must not cost a suite's budget)",
            DefaultValueFactory = _ => 120,
        };
        var instances = new Option<int>("--instances")
        {
            Description = "QEMU instances of the board to share the drivers out to (each boots once; the tests mostly wait on held calls, so 2 finish a corpus sooner even on 2 cores)",
            DefaultValueFactory = _ => 1,
        };
        var controlRuns = new Option<int>("--control-runs")
        {
            Description = "run the control this many times (each a full pass of the tests): the stock driver's false alarms are counted",
            DefaultValueFactory = _ => 1,
        };
        var cmd = new Command("run", "Build the series and the control, run the call-queue tests on the board for each driver, judge every trace under every policy, and say which policy each patch implements")
            { series, board, expect, each, results, budget, instances, controlRuns };
        cmd.SetAction(async (pr, ct) =>
        {
            var name = pr.GetValue(board)!;
            if (BoardRecipe.All.All(r => r.Board != name))
                throw new UsageException($"--board '{name}': patch runs build against a kernel source HilHarness fetches itself, today the QEMU boards' ({string.Join(", ", BoardRecipe.All.Select(r => r.Board))}); a kernel tree named in a board file is not supported yet");
            if (pr.GetValue(budget) is < 10 or > 3600) throw new UsageException("--test-budget: give 10 to 3600 seconds");
            if (pr.GetValue(instances) is < 1 or > 8) throw new UsageException("--instances: give 1 to 8");
            if (pr.GetValue(controlRuns) is < 1 or > 20) throw new UsageException("--control-runs: give 1 to 20");
            var dir = pr.GetValue(results) is { } r0 ? Path.GetFullPath(r0)
                : RepoPaths.File("artifacts", "patch-runs", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss") + "-" + name);
            using var log = ConsoleLog();
            try
            {
                var request = new PatchRunRequest(pr.GetValue(series)!, pr.GetValue(each), name, pr.GetValue(expect), dir, TimeSpan.FromSeconds(pr.GetValue(budget)), pr.GetValue(instances), pr.GetValue(controlRuns));
                return await new PatchRunJob(request, HilCache.Default(), log).RunAsync(ct);
            }
            catch (PatchEnvironmentException ex)
            {
                Console.Error.WriteLine($"hil: patch run: {ex.Message.Split('\n')[0]}");
                return 1;
            }
            catch (ExternalToolException ex)
            {
                Console.Error.WriteLine($"hil: patch run: {ex.Message.Split('\n')[0]}");
                return 1;
            }
        });
        return cmd;
    }

    private static void Print(PatchBuildResult r)
    {
        static string S(TimeSpan t) => $"{t.TotalSeconds:0.0} s";
        var src = r.Source;
        Console.WriteLine($"board:      {r.Kernel.Board}: kernel {r.Kernel.Release} (Debian linux {r.Kernel.PackageVersion}, {r.Kernel.KernelSuite})");
        Console.WriteLine($"source:     {src.Package} {src.Version} sha256 {src.Sha256[..16]}… drivers/tee at {Path.Combine(src.Tree, KernelSource.Subtree)} " +
                          (src.Reused ? "(cached)" : $"(downloaded in {S(src.Download!.Value)}, unpacked in {S(src.Unpack!.Value)})"));
        Console.WriteLine($"build root: {r.Root.Root} ({r.Root.Compiler}) {(r.Root.Reused ? "(cached)" : $"(made in {S(r.Root.Created!.Value)})")}");
        Console.WriteLine($"series:     {r.Series.Patches.Count} patch(es), {string.Join(", ", r.Series.TouchedFiles)}; applies cleanly ({S(r.CheckApply)})");
        foreach (var p in r.Series.Patches) Console.WriteLine($"            {p.Name}");
        foreach (var (what, b) in new[] { ("control", r.Control), ("patched", r.Patched) })
        {
            var how = b.Reused ? "cached" : $"built in {S(b.Total)}: apply {S(b.Apply)}, make {S(b.Make)}";
            foreach (var m in b.Modules)
                Console.WriteLine($"{what + ":",-11} {m.Path} build-id {m.BuildId} ({m.Size / 1024} KiB, {m.PatchSites} ftrace patch sites{(m.AlignmentChecked ? " 8-byte aligned" : "; this kernel needs no 8-byte alignment")}) [{how}]");
        }
        Console.WriteLine($"total:      {S(r.Total)}");
    }
}
