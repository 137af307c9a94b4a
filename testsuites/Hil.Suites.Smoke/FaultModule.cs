using Hil.Boards.Shell;
using Hil.Suites.Common;
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

    /// <summary>The session's hil_cq (loaded after the boot, see <see cref="SessionModule"/>) with its fault knob armed.</summary>
    public static async Task<KmodDriver> ArmAsync(BoardTestContext t, ILogger log)
    {
        var module = await SessionModule.GetAsync(t.Live, log, t.Token);
        await t.Board.Ssh.RunCheckedAsync($"echo 1 > /sys/module/{KmodBuilder.ModuleName}/parameters/faults", Short, t.Token);
        return module;
    }

    /// <summary>The command that injects <paramref name="fault"/> ("oops" or "warn") when run on the board.</summary>
    public static string Inject(string fault) => $"echo {ShellQuote.Quote(fault)} > {KmodDriver.DebugfsDirectory}/fault";
}
