using Hil.Boards.Failures;
using Hil.Kernel;
using Hil.Suites.Common;
using Hil.Workloads;
using Hil.Workloads.Holder;
using Hil.Workloads.Kmod;
using Hil.Workloads.Tracing;
using Hil.Workloads.Tracing.Module;
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
        _boardTracing = tracing;
        Tracing = tracing;
    }

    private readonly CallQueueTracing _boardTracing;

    public KmodDriver Module { get; }
    public HolderRunner Holder { get; }
    /// <summary>The tracer for the driver the current test runs on (a patch run's driver under test, else the booted one).</summary>
    public CallQueueTracing Tracing { get; private set; }

    /// <summary>
    /// A patch run's driver is traced from its own optee.ko (probes planned from its code, the file
    /// checked against the loaded module by build ID) and judged by the policy it claims.
    /// </summary>
    private Workbench For(BoardTestContext t)
    {
        Tracing = t.Driver is { } d
            ? _boardTracing with
            {
                ModuleSource = (_, _) => Task.FromResult(OpteeModuleFile.FromHostFile(d.Driver.Optee.Path)),
                Policy = t.Facts.RequirePolicy(),
            }
            : _boardTracing;
        return this;
    }

    public static async Task<Workbench> ForAsync(BoardTestContext t, ILogger log)
    {
        var key = (t.Live.Target.Name, t.Live.Session);
        await Gate.WaitAsync(t.Token);
        try
        {
            if (Benches.TryGetValue(key, out var b))
            {
                if (!b.Module.IsLoaded) await b.Module.InsertAsync(t.Token);
                return b.For(t);
            }
            var cache = BuildCache.In(HilCache.Default());
            var libteec = t.Qemu is { } q ? q.Image.Libteec : RealBoardLibteec(t);
            // The copy the facts reader loaded at boot (it asked the firmware for the thread count through it).
            var module = await SessionModule.GetAsync(t.Live, log, t.Token);
            var holder = await HolderRunner.DeployAsync(t.Board.Ssh, await new HolderBuilder(cache, log).BuildAsync(libteec, ct: t.Token), log, t.Token);
            // Traces are judged by the thread count measured on this boot, not the board file's.
            var tracing = (t.Qemu is { } qq ? CallQueueTracing.ForQemu(qq, log) : new CallQueueTracing(t.Board, log)) with { Threads = t.Facts.RequireThreads() };
            b = new Workbench(module, holder, tracing);
            Benches[key] = b;
            return b.For(t);
        }
        finally
        {
            Gate.Release();
        }
    }

    // A real board names where its libteec sysroot is.
    private static LibteecSysroot RealBoardLibteec(BoardTestContext t) =>
        t.Board.Spec.Facts.TryGetValue("libteec_sysroot", out var dir)
            ? new LibteecSysroot(dir, Path.Combine(dir, "usr/include"), Path.Combine(dir, "usr/lib/aarch64-linux-gnu"), "board")
            : throw new TestErrorException($"{t.Board.Spec.SourceFile}: facts.libteec_sysroot (arm64 libteec headers and library) is needed to build teeholder");
}
