using System.CommandLine;
using System.Diagnostics;
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
    /// `hil patch run`: builds as `patch build`, boots the QEMU board once, and for the control then
    /// the patched driver swaps the module in (build ID checked on the board) and runs xtest 1001 as
    /// a smoke. The suites proper are wired elsewhere; this proves the module loads and serves.
    /// </summary>
    private static Command RunCommand()
    {
        var series = SeriesArgument();
        var board = new Option<string>("--board", "-b")
        {
            Description = "QEMU board to boot: " + string.Join(", ", BoardRecipe.All.Select(r => r.Board)),
            DefaultValueFactory = _ => BoardRecipe.Mainline.Board,
        };
        var cmd = new Command("run", "Build the series and the control, boot the QEMU board, swap each driver in (build ID checked on the board) and run xtest -t regression 1001 on it")
            { series, board };
        cmd.SetAction(async (pr, ct) =>
        {
            var cache = HilCache.Default();
            var name = pr.GetValue(board)!;
            using var log = ConsoleLog();
            try
            {
                var clock = Stopwatch.StartNew();
                var r = await new PatchBuildJob(cache, log).RunAsync(pr.GetValue(series)!, name, ct);
                Print(r);
                var boardFile = RepoPaths.File("boards", name + ".yaml");
                var logs = RepoPaths.File("artifacts", "patch-runs", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss") + "-" + name);
                Directory.CreateDirectory(logs);
                await using var session = await QemuBoards.OpenAsync(boardFile, new QemuBoardOptions
                {
                    LogDirectory = logs, Cache = cache, Logger = log, ProvisionIfMissing = false,
                }, ct);
                var boot = Stopwatch.StartNew();
                await session.Board.BootAsync(ct);
                Console.WriteLine($"boot:       {name} up in {boot.Elapsed.TotalSeconds:0.0} s (logs {logs})");
                var failed = false;
                foreach (var (what, build) in new[] { ("control", r.Control), ("patched", r.Patched) })
                {
                    var swap = await ModuleSwap.SwapAsync(session.Board.Ssh, build.Modules, log, ct);
                    Console.WriteLine($"{what + ":",-11} loaded {string.Join(", ", swap.LoadedBuildIds.Select(kv => $"{kv.Key} {kv.Value}"))} " +
                                      $"(build ID matches; swap {swap.GuestSwap.TotalSeconds:0.00} s in the guest, {swap.Total.TotalSeconds:0.0} s with upload)");
                    var x = Stopwatch.StartNew();
                    var xt = await session.Board.Ssh.RunAsync("xtest -t regression 1001", TimeSpan.FromMinutes(3), ct);
                    var summary = xt.Stdout.Split('\n').LastOrDefault(l => l.Contains("subtests of which", StringComparison.Ordinal))?.Trim() ?? "";
                    Console.WriteLine($"{"",-11} xtest -t regression 1001: {(xt.ExitStatus == 0 ? "passed" : $"FAILED (exit {xt.ExitStatus})")} in {x.Elapsed.TotalSeconds:0.0} s {summary}");
                    failed |= xt.ExitStatus != 0;
                }
                var events = session.Board.Watcher.Since(0);
                foreach (var e in events) Console.WriteLine($"console:    {e}");
                failed |= events.Count > 0;
                Console.WriteLine($"total:      {clock.Elapsed.TotalSeconds:0.0} s");
                return failed ? 1 : 0;
            }
            catch (PatchEnvironmentException ex)
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
