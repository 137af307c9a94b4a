using Hil.Kernel;
using Hil.Qemu.Provisioning;

namespace Hil.Qemu.Tests;

/// <summary>The self-check of each kernel's module kit: a trivial out-of-tree module builds and matches the kernel.</summary>
[TestFixture]
[NonParallelizable]
public class ModuleKitTests
{
    // Test-only module. Functions are 8-byte aligned because gcc-12 cannot apply the kernel's
    // -fmin-function-alignment=8 and ftrace on 6.12 needs it (kmod-facts: misaligned patch-site crash).
    private const string Source = """
        #include <linux/module.h>
        #include <linux/init.h>
        static int __init __aligned(8) hilkit_init(void) { pr_info("hilkit: loaded\n"); return 0; }
        static void __exit __aligned(8) hilkit_exit(void) { }
        module_init(hilkit_init);
        module_exit(hilkit_exit);
        MODULE_LICENSE("GPL");
        MODULE_DESCRIPTION("HilHarness module-kit self-check");
        """;

    [TestCase("qemu-optee")]
    [TestCase("qemu-optee-6.1")]
    public async Task TrivialModuleBuildsAgainstTheKit(string board)
    {
        var image = await TestEnv.ImageAsync(board);
        var kit = image.LoadModuleKit();
        var dir = TestEnv.TempDir("kmod-" + board);
        await File.WriteAllTextAsync(Path.Combine(dir, "hilkit.c"), Source);
        await File.WriteAllTextAsync(Path.Combine(dir, "Kbuild"), "obj-m := hilkit.o\n");
        var r = await ExternalTool.RunAsync("make", kit.MakeArguments(dir), check: false);
        Assert.That(r.ExitCode, Is.Zero, r.Stderr + r.Stdout);
        var ko = Path.Combine(dir, "hilkit.ko");
        var info = KernelModuleInfo.Read(ko);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(info["vermagic"], Does.StartWith(image.KernelRelease + " SMP"), "vermagic matches the board's kernel");
            Assert.That(info["name"], Is.EqualTo("hilkit"));
            // .plt and .text.ftrace_trampoline are 1-byte placeholders the arm64 module loader fills; not functions.
            Assert.That(info.CodeSectionAlignment.Where(kv => kv.Key is not (".plt" or ".init.plt" or ".text.ftrace_trampoline")).Select(kv => kv.Value),
                Is.All.GreaterThanOrEqualTo(8UL), "ftrace patch sites need 8-byte aligned functions");
            Assert.That(kit.KernelRelease, Is.EqualTo(image.KernelRelease));
        }
        Directory.Delete(dir, true);
    }
}
