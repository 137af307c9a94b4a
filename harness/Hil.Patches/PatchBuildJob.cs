using System.Diagnostics;
using Hil.Kernel;
using Hil.Qemu.Provisioning;
using Serilog;

namespace Hil.Patches;

/// <summary>What `hil patch build` produced: the control and the patched driver, and where the time went.</summary>
public sealed record PatchBuildResult(
    BoardKernel Kernel,
    PatchSeries Series,
    KernelSource Source,
    BuildRoot Root,
    DriverBuild Control,
    DriverBuild Patched,
    TimeSpan CheckApply,
    TimeSpan Total);

/// <summary>
/// One patch build from files to modules, in the order that keeps bad input cheap: parse the
/// series (refusals), find the board's kernel, fetch its source, check the series applies (a
/// refusal here builds nothing), then make sure the build root exists and build the control and
/// the patched driver.
/// </summary>
public sealed class PatchBuildJob(HilCache cache, ILogger log)
{
    public string Mirror { get; init; } = new ProvisionOptions().Mirror;
    public string SecurityMirror { get; init; } = new ProvisionOptions().SecurityMirror;
    /// <summary>Where driver builds are kept (default: the cache's patches/builds); a test points it at a fresh folder to force real builds.</summary>
    public Hil.Workloads.BuildCache? Builds { get; init; }

    public async Task<PatchBuildResult> RunAsync(IReadOnlyList<string> seriesFiles, string board, CancellationToken ct)
    {
        var total = Stopwatch.StartNew();
        var series = PatchSeries.Load(seriesFiles);
        var kernel = BoardKernel.ForQemuBoard(cache, board);
        var kit = kernel.Image.LoadModuleKit();
        var source = await KernelSource.EnsureAsync(cache, kernel, log, ct);

        var sw = Stopwatch.StartNew();
        await CheckAppliesAsync(series, source, ct);
        var checkApply = sw.Elapsed;

        var root = await BuildRoot.EnsureAsync(cache, kernel, Mirror, SecurityMirror, log, ct);
        var builder = new DriverBuilder(cache, root, source, kit, log, Builds);
        var control = await builder.BuildControlAsync(ct);
        var patched = await builder.BuildAsync(series, ct);
        return new PatchBuildResult(kernel, series, source, root, control, patched, checkApply, total.Elapsed);
    }

    /// <summary>Applies the series to a scratch copy of drivers/tee/ (removed afterwards): refusal before any build.</summary>
    public static async Task CheckAppliesAsync(PatchSeries series, KernelSource source, CancellationToken ct)
    {
        var scratch = Path.Combine(Path.GetTempPath(), $"hil-apply-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            source.CopyTreeTo(scratch);
            await SeriesApplier.ApplyAsync(series, scratch, source.Name, ct);
        }
        finally
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }
}
