using Hil.Boards.Failures;
using Hil.Kernel;
using Hil.Workloads;
using Hil.Workloads.Kmod;
using Serilog;

namespace Hil.Suites.Common;

/// <summary>
/// hil_cq built for a booted session's kernel and loaded on it, once per session: the facts reader
/// needs it right after the boot (the firmware file) and the suites' workloads use the same copy.
/// </summary>
public static class SessionModule
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static readonly Dictionary<(string Board, int Session), KmodDriver> Loaded = [];

    /// <summary>The session's module, loaded (again, if something unloaded it).</summary>
    public static async Task<KmodDriver> GetAsync(LiveBoard live, ILogger log, CancellationToken ct)
    {
        var key = (live.Target.Name, live.Session);
        await Gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (Loaded.TryGetValue(key, out var module))
            {
                if (!module.IsLoaded) await module.InsertAsync(ct).ConfigureAwait(false);
                return module;
            }
            var built = await new KmodBuilder(BuildCache.In(HilCache.Default()), log).BuildAsync(Kit(live), ct: ct).ConfigureAwait(false);
            module = await KmodDriver.LoadAsync(live.Board.Ssh, built, log, ct).ConfigureAwait(false);
            Loaded[key] = module;
            return module;
        }
        finally
        {
            Gate.Release();
        }
    }

    // A real board names where its kernel's module kit is (made by the same provisioning code for its
    // Debian kernel, or by hand following kit.json's format).
    private static ModuleKit Kit(LiveBoard live) =>
        live.Qemu is { } q ? q.Image.LoadModuleKit()
        : live.Board.Spec.Facts.TryGetValue("module_kit", out var dir) ? ModuleKit.Load(dir)
        : throw new TestErrorException($"{live.Board.Spec.SourceFile}: facts.module_kit (a folder with kit.json for the board's kernel) is needed to build hil_cq");
}
