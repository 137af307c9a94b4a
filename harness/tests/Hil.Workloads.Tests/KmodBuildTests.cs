using Hil.Workloads.Kmod;

namespace Hil.Workloads.Tests.OnBoard;

/// <summary>
/// The module builder with the real module kits (provisioned, no board needed): hil_cq builds for
/// both kernels, and a module that would crash 6.12 at insmod is refused before it can be deployed.
/// </summary>
[NonParallelizable]
public class KmodBuildTests
{
    [TestCase("qemu-optee", true)]
    [TestCase("qemu-optee-6.1", false)]
    public async Task HilCqBuildsAlignedWithSystemSessionsDetectedFromTheHeaders(string board, bool systemSessions)
    {
        var image = await KmodBoards.ImageAsync(board);
        var cache = new BuildCache(KmodTestSupport.TempDir("kmod-cache"));
        var builder = new KmodBuilder(cache, KmodTestSupport.Log);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var built = await builder.BuildAsync(image.LoadModuleKit());
        var buildTime = clock.Elapsed;
        var again = await builder.BuildAsync(image.LoadModuleKit());
        TestContext.Progress.WriteLine($"{board}: hil_cq built in {buildTime.TotalSeconds:0.0} s, reused in {(clock.Elapsed - buildTime).TotalSeconds:0.00} s");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(built.Reused, Is.False);
            Assert.That(again.Reused, Is.True);
            Assert.That(again.Path, Is.EqualTo(built.Path));
            Assert.That(built.KernelRelease, Is.EqualTo(image.KernelRelease));
            Assert.That(built.SystemSessionsCompiled, Is.EqualTo(systemSessions));
            Assert.That(built.VerMagic, Does.StartWith(image.KernelRelease + " SMP"));
        }
        Directory.Delete(cache.Root, recursive: true);
    }

    [Test]
    public async Task AModuleWithAnUnalignedColdFunctionIsRefusedAndNeverCached()
    {
        var image = await KmodBoards.ImageAsync("qemu-optee");
        var src = KmodTestSupport.TempDir("cold-src");
        // An ordinary-looking module: a __cold helper without __aligned(8), as gcc-12 lays it out.
        await File.WriteAllTextAsync(Path.Combine(src, "hil_cq.c"), """
            // SPDX-License-Identifier: GPL-2.0
            #include <linux/module.h>
            static noinline __cold int rarely(int x) { pr_info("rare %d\n", x); return x + 1; }
            static int __init cold_init(void) { return rarely(0) - 1; }
            module_init(cold_init);
            MODULE_LICENSE("GPL");
            """);
        await File.WriteAllTextAsync(Path.Combine(src, "Kbuild"), "obj-m := hil_cq.o\n");
        await File.WriteAllTextAsync(Path.Combine(src, "Makefile"), "# kbuild reads Kbuild\n");
        var cache = new BuildCache(KmodTestSupport.TempDir("cold-cache"));
        var ex = await Assert.ThrowsAsync<ModuleAlignmentException>(() =>
            new KmodBuilder(cache, KmodTestSupport.Log).BuildAsync(image.LoadModuleKit(), new SourceSet(src, KmodBuilder.SourceFiles)));
        TestContext.Progress.WriteLine($"refused: {ex!.Message}");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex.Problems, Has.Some.StartsWith("code section .text.unlikely is aligned to 4"));
            Assert.That(ex.Problems, Has.Some.StartsWith("code section .init.text is aligned to 4"));
            Assert.That(Directory.EnumerateFileSystemEntries(Path.Combine(cache.Root, "kmod")), Is.Empty, "nothing left in the cache");
        }
        Directory.Delete(cache.Root, recursive: true);
        Directory.Delete(src, recursive: true);
    }
}
