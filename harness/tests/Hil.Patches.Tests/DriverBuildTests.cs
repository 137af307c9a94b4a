using Hil.Kernel;
using Serilog;

namespace Hil.Patches.Tests;

/// <summary>
/// Real builds: Debian's linux-source of the qemu-optee kernel, the trixie build root with gcc-14,
/// the control and bug patches built out of tree and checked for alignment. Uses the shared cache
/// (the board must be provisioned: tools/hil provision --board qemu-optee); the first run fetches
/// the source and makes the build root (~2 min), later ones build in ~20 s per module.
/// </summary>
[Category("Build")]
[NonParallelizable]
public class DriverBuildTests
{
    private const string Board = "qemu-optee";
    private static readonly HilCache Cache = HilCache.Default();
    private static readonly Serilog.Core.Logger Log = new LoggerConfiguration().WriteTo.Console().CreateLogger();

    [OneTimeTearDown]
    public void CloseLog() => Log.Dispose();

    [OneTimeSetUp]
    public Task Provision() => QemuOptee.EnsureProvisionedAsync(Log);

    private static string BuildsFolder => Path.Combine(Cache.Root, "patches", "builds");

    [Test]
    public async Task The_control_and_a_bug_patch_build_with_aligned_patch_sites_and_their_own_build_ids()
    {
        // Builds go to a fresh folder so that both really compile here (source and build root stay shared).
        using var builds = new TempDir();
        var job = new PatchBuildJob(Cache, Log) { Builds = new Hil.Workloads.BuildCache(builds.Path) };
        var r = await job.RunAsync([Repo.Patch("bug-02-admission-off-by-one.patch")], Board, CancellationToken.None);
        Assert.That(r.Control.Reused || r.Patched.Reused, Is.False, "both built in this test");
        Assert.That(r.Control.Make + r.Patched.Make, Is.GreaterThan(TimeSpan.FromSeconds(2)), "make really compiled");
        TestContext.Progress.WriteLine($"control: make {r.Control.Make.TotalSeconds:0.0} s, patched: make {r.Patched.Make.TotalSeconds:0.0} s");

        Assert.That(r.Kernel.Release, Does.StartWith("6.12."));
        Assert.That(r.Source.Package, Is.EqualTo("linux-source-6.12"));
        Assert.That(r.Source.Version, Is.EqualTo(r.Kernel.PackageVersion));
        Assert.That(r.Root.Compiler, Does.StartWith("aarch64-linux-gnu-gcc-14 "));
        foreach (var b in new[] { r.Control, r.Patched })
        {
            var m = b.Modules.Single();
            Assert.That(m.Name, Is.EqualTo("optee"));
            Assert.That(File.Exists(m.Path), m.Path);
            Assert.That(m.BuildId, Does.Match("^[0-9a-f]{40}$"));
            Assert.That(m.VerMagic, Does.StartWith(r.Kernel.Release + " "));
            // Every ftrace patch site of the driver, each checked 8-byte aligned (88 in the stock driver).
            Assert.That(m.PatchSites, Is.GreaterThan(80));
            // Stripped: the 2 MB of debug info never goes to a board.
            Assert.That(m.Size, Is.LessThan(200 * 1024));
        }
        Assert.That(r.Patched.Module("optee").BuildId, Is.Not.EqualTo(r.Control.Module("optee").BuildId));
        Assert.That(r.Control.Control, Is.True);
        Assert.That(r.Patched.Control, Is.False);

        // A second run is served from the cache by content key, with the same build IDs.
        var again = await job.RunAsync([Repo.Patch("bug-02-admission-off-by-one.patch")], Board, CancellationToken.None);
        Assert.That(again.Source.Reused && again.Root.Reused && again.Control.Reused && again.Patched.Reused, Is.True);
        Assert.That(again.Patched.Module("optee").BuildId, Is.EqualTo(r.Patched.Module("optee").BuildId));
        Assert.That(again.Control.Module("optee").BuildId, Is.EqualTo(r.Control.Module("optee").BuildId));
    }

    [Test]
    public async Task A_patch_that_does_not_compile_is_refused_with_the_first_compiler_error()
    {
        var kernel = BoardKernel.ForQemuBoard(Cache, Board);
        var source = await KernelSource.EnsureAsync(Cache, kernel, Log, CancellationToken.None);
        var lines = File.ReadAllLines(Path.Combine(source.Tree, "drivers/tee/optee/call.c"));
        var at = Array.FindIndex(lines, l => l == "\tcq->free_thread_count++;");
        Assert.That(at, Is.GreaterThan(0), "the stock call.c has its wait_final increment");
        // A typo a reviewer could send: the statement no longer parses.
        var diff = $"--- a/drivers/tee/optee/call.c\n+++ b/drivers/tee/optee/call.c\n@@ -{at},3 +{at},3 @@\n" +
                   $" {lines[at - 1]}\n-{lines[at]}\n+\tcq->free_thread_count++ +;\n {lines[at + 1]}\n";
        using var dir = new TempDir();
        var file = dir.Write("typo.diff", diff);

        var ex = (await Assert.ThrowsAsync<PatchRejectedException>(() => new PatchBuildJob(Cache, Log).RunAsync([file], Board, CancellationToken.None)))!;
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.DoesNotBuild));
        Assert.That(ex.Message, Does.StartWith($"the patch does not build: drivers/tee/optee/call.c:{at + 1}:"));
        Assert.That(ex.Message, Does.Contain("error:"));
        Assert.That(ex.Message, Does.Not.Contain("\n"));
        Assert.That(ex.Details, Is.Not.Empty);
    }

    [Test]
    public async Task A_series_that_does_not_apply_to_the_kernel_is_refused_before_anything_is_built()
    {
        var before = Directory.Exists(BuildsFolder) ? Directory.GetDirectories(BuildsFolder).Length : 0;
        var stale = File.ReadAllText(Repo.Patch("bug-01-lost-forward-wakeup.patch"))
            .Replace("-	 * If we're completed we've got a completion from another task that", "-	 * If we are completed we got a completion from another task that");
        using var dir = new TempDir();
        var file = dir.Write("0001-stale.patch", stale);

        var ex = (await Assert.ThrowsAsync<PatchRejectedException>(() => new PatchBuildJob(Cache, Log).RunAsync([file], Board, CancellationToken.None)))!;
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.DoesNotApply));
        Assert.That(ex.Message, Does.StartWith("0001-stale.patch (\"[PATCH] optee: simplify optee_cq_wait_final()\"): drivers/tee/optee/call.c: hunk #1 (@@ -167,15 +167,6 @@"));
        Assert.That(ex.Message, Does.EndWith("does not apply to linux 6.12.118-1").Or.Contain("does not apply to linux "));
        Assert.That(Directory.Exists(BuildsFolder) ? Directory.GetDirectories(BuildsFolder).Length : 0, Is.EqualTo(before));
    }

    [Test]
    public async Task An_unknown_board_is_refused_as_bad_input()
    {
        var ex = (await Assert.ThrowsAsync<PatchRejectedException>(() =>
            new PatchBuildJob(Cache, Log).RunAsync([Repo.Patch("bug-01-lost-forward-wakeup.patch")], "no-such-board", CancellationToken.None)))!;
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.Board));
        Assert.That(ex.Message, Does.Contain("no-such-board"));
    }
}
