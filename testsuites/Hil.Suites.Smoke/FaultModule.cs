using Hil.Boards.Failures;
using Hil.Boards.Shell;
using Hil.Qemu.Provisioning;
using Hil.Suites.Common;
using Hil.Workloads;
using Hil.Workloads.Kmod;
using Serilog;

namespace Hil.Suites.Smoke;

/// <summary>
/// Kernel faults on demand, through our own module: hil_cq's debugfs <c>fault</c> file makes the
/// writing task Oops or the kernel WARN. The knob is off until the module parameter <c>faults</c>
/// is set, so a module loaded for workloads can never be made to fault by mistake.
/// </summary>
internal static class FaultModule
{
    private static readonly TimeSpan Short = TimeSpan.FromSeconds(30);

    /// <summary>Builds hil_cq for the board's kernel, loads it and arms its fault knob.</summary>
    public static async Task<KmodDriver> ArmAsync(BoardTestContext t, ILogger log)
    {
        var kit = t.Qemu is { } q ? q.Image.LoadModuleKit()
            : t.Board.Spec.Facts.TryGetValue("module_kit", out var dir) ? ModuleKit.Load(dir)
            : throw new TestErrorException($"{t.Board.Spec.SourceFile}: facts.module_kit (a folder with kit.json for the board's kernel) is needed to build hil_cq for fault injection");
        var built = await new KmodBuilder(BuildCache.In(HilCache.Default()), log).BuildAsync(kit, ct: t.Token);
        var module = await KmodDriver.LoadAsync(t.Board.Ssh, built, log, t.Token);
        await t.Board.Ssh.RunCheckedAsync($"echo 1 > /sys/module/{KmodBuilder.ModuleName}/parameters/faults", Short, t.Token);
        return module;
    }

    /// <summary>The command that injects <paramref name="fault"/> ("oops" or "warn") when run on the board.</summary>
    public static string Inject(string fault) => $"echo {ShellQuote.Quote(fault)} > {KmodDriver.DebugfsDirectory}/fault";
}
