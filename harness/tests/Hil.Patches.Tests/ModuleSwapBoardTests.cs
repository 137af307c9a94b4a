using Hil.Kernel;
using Hil.Qemu.Board;
using Serilog;

namespace Hil.Patches.Tests;

/// <summary>
/// On the real QEMU board (qemu-optee, Debian 6.12): a patched driver and then the control are
/// swapped in without a reboot; each time the kernel must report the built module's build ID and
/// xtest must still pass. ~30 s with the builds cached.
/// </summary>
[Category("Board")]
[NonParallelizable]
public class ModuleSwapBoardTests
{
    private static readonly Serilog.Core.Logger Log = new LoggerConfiguration().WriteTo.Console().CreateLogger();

    [OneTimeTearDown]
    public void CloseLog() => Log.Dispose();

    [OneTimeSetUp]
    public Task Provision() => QemuOptee.EnsureProvisionedAsync(Log);

    [Test]
    public async Task A_patched_driver_and_the_control_swap_in_with_their_build_ids_and_serve_xtest()
    {
        var cache = HilCache.Default();
        var built = await new PatchBuildJob(cache, Log).RunAsync([Repo.Patch("bug-02-admission-off-by-one.patch")], "qemu-optee", CancellationToken.None);
        using var logs = new TempDir();
        await using var session = await QemuBoards.OpenAsync(Path.Combine(Repo.Root, "boards", "qemu-optee.yaml"), new QemuBoardOptions
        {
            LogDirectory = logs.Path, Cache = cache, Logger = Log, ProvisionIfMissing = false,
        });
        await session.Board.BootAsync();
        var stock = await session.Board.Ssh.RunCheckedAsync("od -An -tx1 -v /sys/module/optee/notes/.note.gnu.build-id | tr -d ' \\n'", TimeSpan.FromSeconds(30));

        foreach (var build in new[] { built.Patched, built.Control })
        {
            var swap = await ModuleSwap.SwapAsync(session.Board.Ssh, build.Modules, Log, CancellationToken.None);
            Assert.That(swap.LoadedBuildIds["optee"], Is.EqualTo(build.Module("optee").BuildId));
            Assert.That(swap.GuestSwap, Is.GreaterThan(TimeSpan.Zero).And.LessThan(TimeSpan.FromSeconds(10)));
            var xtest = await session.Board.Ssh.RunAsync("xtest -t regression 1001", TimeSpan.FromMinutes(3));
            Assert.That(xtest.ExitStatus, Is.Zero, xtest.Stdout + xtest.Stderr);
            TestContext.Progress.WriteLine($"{(build.Control ? "control" : "patched")}: swap {swap.GuestSwap.TotalSeconds:0.00} s in the guest, {swap.Total.TotalSeconds:0.0} s total");
        }
        // Debian's own module was a different build (signed, intree): the swap really replaced it.
        Assert.That(ModuleSwap.BuildIdOfNote(stock.Stdout.Trim()), Does.Match("^[0-9a-f]{40}$").And.Not.EqualTo(built.Control.Module("optee").BuildId));
        Assert.That(session.Board.Watcher.Since(0), Is.Empty, "no kernel or OP-TEE alarm on the console");
    }
}
