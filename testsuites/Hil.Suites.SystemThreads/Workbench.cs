using Hil.Boards.Failures;
using Hil.Qemu.Provisioning;
using Hil.Suites.Common;
using Hil.Workloads;
using Hil.Workloads.Holder;
using Hil.Workloads.Kmod;
using Hil.Workloads.Tracing;
using Serilog;

namespace Hil.Suites.SystemThreads;

/// <summary>
/// What the suite deploys on one booted session of a board: the hil_cq module built for its
/// kernel and loaded, the teeholder client, and the call-queue tracer. Rebuilt for every fresh
/// boot (a session is never repaired in place).
/// </summary>
public sealed class Workbench
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static readonly Dictionary<(string Board, int Session), Workbench> Benches = [];

    private Workbench(KmodDriver module, HolderRunner holder, CallQueueTracing tracing)
    {
        Module = module;
        Holder = holder;
        Tracing = tracing;
    }

    public KmodDriver Module { get; }
    public HolderRunner Holder { get; }
    public CallQueueTracing Tracing { get; }

    public static async Task<Workbench> ForAsync(BoardTestContext t, ILogger log)
    {
        var key = (t.Live.Target.Name, t.Live.Session);
        await Gate.WaitAsync(t.Token);
        try
        {
            if (Benches.TryGetValue(key, out var b))
            {
                if (!b.Module.IsLoaded) await b.Module.InsertAsync(t.Token);
                return b;
            }
            var cache = BuildCache.In(HilCache.Default());
            var (kit, libteec) = t.Qemu is { } q
                ? (q.Image.LoadModuleKit(), q.Image.Libteec)
                : (RealBoardKit(t), RealBoardLibteec(t));
            var module = await KmodDriver.LoadAsync(t.Board.Ssh, await new KmodBuilder(cache, log).BuildAsync(kit, ct: t.Token), log, t.Token);
            var holder = await HolderRunner.DeployAsync(t.Board.Ssh, await new HolderBuilder(cache, log).BuildAsync(libteec, ct: t.Token), log, t.Token);
            var tracing = t.Qemu is { } qq ? CallQueueTracing.ForQemu(qq, log) : new CallQueueTracing(t.Board, log);
            b = new Workbench(module, holder, tracing);
            Benches[key] = b;
            return b;
        }
        finally
        {
            Gate.Release();
        }
    }

    // A real board names where its kernel's module kit and its libteec sysroot are (made by the
    // same provisioning code for its Debian kernel, or by hand following kit.json's format).
    private static ModuleKit RealBoardKit(BoardTestContext t) =>
        t.Board.Spec.Facts.TryGetValue("module_kit", out var dir) ? ModuleKit.Load(dir)
            : throw new TestErrorException($"{t.Board.Spec.SourceFile}: facts.module_kit (a folder with kit.json for the board's kernel) is needed to build hil_cq");

    private static LibteecSysroot RealBoardLibteec(BoardTestContext t) =>
        t.Board.Spec.Facts.TryGetValue("libteec_sysroot", out var dir)
            ? new LibteecSysroot(dir, Path.Combine(dir, "usr/include"), Path.Combine(dir, "usr/lib/aarch64-linux-gnu"), "board")
            : throw new TestErrorException($"{t.Board.Spec.SourceFile}: facts.libteec_sysroot (arm64 libteec headers and library) is needed to build teeholder");
}
