using Hil.Boards.Ssh;
using Hil.Kernel;
using Hil.Qemu.Board;
using Hil.Qemu.Provisioning;
using Hil.Workloads.Holder;
using Hil.Workloads.Kmod;

namespace Hil.Workloads.Tests.OnBoard;

/// <summary>
/// A booted QEMU board shared by the Kmod*, Holder* and Xtest* board tests, with the workloads
/// built for its kernel. Booted once per kernel for the whole test run (not once per fixture):
/// boots are the slow part under emulation.
/// </summary>
public sealed class WorkloadBoard(string name, QemuBoardSession session) : IAsyncDisposable
{
    private KmodDriver? _module;
    private HolderRunner? _holder;

    public string Name { get; } = name;
    public QemuBoardSession Session { get; } = session;
    public ProvisionedImage Image => Session.Image;
    public SshLink Ssh => Session.Board.Ssh;
    /// <summary>Linux 6.8+ (the mainline call queue, with system sessions).</summary>
    public bool HasSystemSessions => Image.KernelPolicy == "mainline";
    public bool IsUsable => !Session.Board.IsBroken && Session.Power.Instance is { IsAlive: true };

    /// <summary>hil_cq built for this kernel (alignment-checked) and loaded; reloaded if a test unloaded it.</summary>
    public async Task<KmodDriver> ModuleAsync()
    {
        if (_module is null)
        {
            var built = await new KmodBuilder(BuildCache.In(KmodBoards.Cache), KmodTestSupport.Log).BuildAsync(Image.LoadModuleKit());
            _module = await KmodDriver.LoadAsync(Ssh, built, KmodTestSupport.Log);
        }
        else if (!_module.IsLoaded)
            await _module.InsertAsync();
        return _module;
    }

    public async Task<HolderRunner> HolderAsync()
    {
        if (_holder is null)
        {
            var built = await new HolderBuilder(BuildCache.In(KmodBoards.Cache), KmodTestSupport.Log).BuildAsync(Image.Libteec);
            _holder = await HolderRunner.DeployAsync(Ssh, built, KmodTestSupport.Log);
        }
        return _holder;
    }

    public ValueTask DisposeAsync() => Session.DisposeAsync();
}

/// <summary>
/// The boards of this test run: provisioned into the default cache if it has none ($HIL_CACHE or
/// ~/.cache/hil: CI starts from nothing), opened through Hil.Qemu and booted through Hil.Boards.
/// </summary>
public static class KmodBoards
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static readonly Dictionary<string, WorkloadBoard> Boards = [];

    public static HilCache Cache { get; } = HilCache.Default();

    /// <summary>A board's provisioned image (provisioning it if the cache has none) without booting it.</summary>
    public static async Task<ProvisionedImage> ImageAsync(string board)
    {
        var recipe = BoardRecipe.Find(board);
        if (QemuProvisioner.Current(Cache, recipe) is { } image) return image;
        var log = KmodTestSupport.Log;
        var result = await new QemuProvisioner(Cache, new ProvisionOptions(), log, new LogProvisionProgress(log)).ProvisionAsync([recipe], CancellationToken.None);
        return result.Images.Single();
    }

    public static async Task<WorkloadBoard> GetAsync(string board)
    {
        await Gate.WaitAsync();
        try
        {
            if (Boards.TryGetValue(board, out var b) && b.IsUsable) return b;
            if (b is not null)
            {
                TestContext.Progress.WriteLine($"{board}: previous session unusable ({b.Session.Board.BrokenReason ?? "QEMU gone"}); booting a fresh one");
                await b.DisposeAsync();
            }
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var session = await QemuBoards.OpenAsync(Path.Combine(KmodTestSupport.RepoRoot, "boards", board + ".yaml"), new QemuBoardOptions
            {
                LogDirectory = KmodTestSupport.TempDir("logs-" + board),
                Cache = Cache,
                Logger = KmodTestSupport.Log,
            });
            var provisioned = clock.Elapsed;
            await session.Board.BootAsync();
            TestContext.Progress.WriteLine($"{board}: image {session.Image.KernelRelease} ready in {provisioned.TotalSeconds:0.0} s, booted in {(clock.Elapsed - provisioned).TotalSeconds:0.0} s");
            b = new WorkloadBoard(board, session);
            Boards[board] = b;
            return b;
        }
        finally
        {
            Gate.Release();
        }
    }

    public static async Task DisposeAllAsync()
    {
        foreach (var b in Boards.Values) await b.DisposeAsync();
        Boards.Clear();
    }
}

/// <summary>Powers the shared boards off once every board test of this namespace has run.</summary>
[SetUpFixture]
public sealed class KmodBoardsLifetime
{
    [OneTimeTearDown]
    public Task PowerOffAsync() => KmodBoards.DisposeAllAsync();
}
