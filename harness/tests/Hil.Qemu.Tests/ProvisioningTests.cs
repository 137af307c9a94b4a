using System.Text;
using Hil.Kernel;
using Hil.Qemu.Provisioning;

namespace Hil.Qemu.Tests;

[TestFixture]
[NonParallelizable]
public class ProvisioningTests
{
    [Test]
    public async Task BothBoardsAreProvisionedWithTheirOwnKernelAndSharedFirmware()
    {
        var result = await TestEnv.ProvisionedAsync();
        var mainline = result.Images.Single(i => i.Board == "qemu-optee");
        var legacy = result.Images.Single(i => i.Board == "qemu-optee-6.1");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(mainline.KernelRelease, Does.Match(@"^6\.12\.\d+\+deb13-arm64$"));
            Assert.That(mainline.KernelPolicy, Is.EqualTo("mainline"));
            Assert.That(legacy.KernelRelease, Does.Match(@"^6\.1\.0-\d+-arm64$"), "bookworm's ABI is resolved, not pinned");
            Assert.That(legacy.KernelPolicy, Is.EqualTo("legacy"));
            Assert.That(mainline.OpteeVersion, Does.StartWith("4.5"));
            foreach (var image in result.Images)
            {
                Assert.That(image.Soc, Is.EqualTo("qemu-virt"));
                Assert.That(image.ExpectedThreadCount, Is.EqualTo(2));
                foreach (var f in image.FirmwareFiles.Append("Image").Append("rootfs.cpio.gz"))
                    Assert.That(File.Exists(Path.Combine(image.Directory, f)), Is.True, $"{image.Board}: {f}");
            }
            // Same firmware for both kernels: byte-identical BL1..BL33.
            foreach (var f in mainline.FirmwareFiles)
                Assert.That(HilCache.Sha256OfFile(Path.Combine(legacy.Directory, f)), Is.EqualTo(HilCache.Sha256OfFile(Path.Combine(mainline.Directory, f))), f);
        }
    }

    [TestCase("qemu-optee")]
    [TestCase("qemu-optee-6.1")]
    public async Task ManifestHashesMatchEveryFileAndPackage(string board)
    {
        var image = await TestEnv.ImageAsync(board);
        var m = Manifest.Load(image.Directory);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(m.Verify(image.Directory, hashes: true), Is.Empty, "image files changed since provisioning");
            Assert.That(m.Files.Select(f => f.Path), Does.Contain("rootfs.cpio.gz").And.Contain("bl1.bin").And.Contain("Image"));
            foreach (var p in m.Packages)
            {
                var path = Path.Combine(TestEnv.Cache.Root, p.File);
                Assert.That(File.Exists(path), Is.True, p.File);
                Assert.That(HilCache.Sha256OfFile(path), Is.EqualTo(p.Sha256), $"{p.Package} {p.Version}");
                Assert.That(p.Suite, Is.Not.Empty, p.Package);
                if (p.Role is "user space" or "firmware" or "libteec" or "firmware (built)")
                    Assert.That(p.Suite, Does.StartWith("trixie"), p.Package);
                if (p.Role == "kernel")
                    Assert.That(p.Suite, Does.StartWith(board == "qemu-optee" ? "trixie" : "bookworm"), p.Package);
            }
            var names = m.Packages.Select(p => p.Package).ToHashSet();
            foreach (var required in BoardRecipe.UserSpacePackages.Concat(BoardRecipe.FirmwarePackages).Append("arm-trusted-firmware").Append("optee-client-dev"))
                Assert.That(names, Does.Contain(required));
            Assert.That(m.Packages.Count(p => p.Role == "kernel"), Is.EqualTo(1));
            // The human table carries the same rows.
            var table = File.ReadAllText(image.ManifestTablePath);
            foreach (var p in m.Packages) Assert.That(table, Does.Contain(p.Sha256));
            // No secret is listed: only the public halves of the keys.
            Assert.That(m.Files.Select(f => f.Path), Has.None.EqualTo("keys/root_ed25519").And.None.EqualTo("keys/host_ed25519"));
        }
    }

    [Test]
    public async Task SecondRunReusesTheCacheWithoutNetworkOrBuild()
    {
        var first = await TestEnv.ProvisionedAsync();
        // An unreachable mirror: any apt access would fail the run.
        var offline = new ProvisionOptions
        {
            Mirror = "http://127.0.0.1:9/debian", SecurityMirror = "http://127.0.0.1:9/debian-security", EnsureHostPackages = false,
        };
        var second = await new QemuProvisioner(TestEnv.Cache, offline, TestEnv.Log, new LogProvisionProgress(TestEnv.Log))
            .ProvisionAsync(BoardRecipe.All, CancellationToken.None);
        TestContext.Progress.WriteLine($"warm provisioning: {second.Elapsed.TotalSeconds:0.00} s");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(second.DidWork, Is.False, string.Join("; ", second.Steps.Select(s => $"{s.Name}:{s.Kind}")));
            Assert.That(second.Steps.Select(s => s.Kind), Is.All.EqualTo(StepKind.Reuse));
            Assert.That(second.Images.Select(i => i.Directory), Is.EqualTo(first.Images.Select(i => i.Directory)));
            Assert.That(second.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
        }
    }

    [Test]
    public async Task ASecondProvisioningWaitsForTheLock()
    {
        await TestEnv.ProvisionedAsync();
        using var held = await ProvisionLock.AcquireAsync(TestEnv.Cache, TestEnv.Log, TimeSpan.FromSeconds(5), CancellationToken.None);
        var other = new QemuProvisioner(TestEnv.Cache, new ProvisionOptions { EnsureHostPackages = false, LockTimeout = TimeSpan.FromSeconds(1) },
            TestEnv.Log, new LogProvisionProgress(TestEnv.Log));
        var ex = await Assert.ThrowsAsync<ProvisioningException>(() => other.ProvisionAsync(BoardRecipe.All, CancellationToken.None));
        Assert.That(ex!.Message, Does.Contain("another provisioning").And.Contain(TestEnv.Cache.LockFile));
    }

    [Test]
    public async Task AnInterruptedPieceIsRemovedAndNeverUsed()
    {
        await TestEnv.ProvisionedAsync();
        var cache = new HilCache(TestEnv.TempDir("partial"));
        var final = Path.Combine(cache.Root, "firmware", "x");
        await Assert.ThrowsAsync<IOException>(() => HilCache.BuildAtomicallyAsync(final, t =>
        {
            File.WriteAllText(Path.Combine(t, "half"), "");
            throw new IOException("simulated crash");
        }));
        Assert.That(Directory.Exists(final), Is.False, "a failed build must not appear complete");
        Assert.That(Directory.GetDirectories(Path.Combine(cache.Root, "firmware")), Has.Length.EqualTo(1));
        cache.RemovePartials();
        Assert.That(Directory.GetDirectories(Path.Combine(cache.Root, "firmware")), Is.Empty);
        var built = await HilCache.BuildAtomicallyAsync(final, t => { File.WriteAllText(Path.Combine(t, "ok"), "1"); return Task.CompletedTask; });
        Assert.That(built && File.Exists(Path.Combine(final, "ok")), Is.True);
        Directory.Delete(cache.Root, true);
    }

    [TestCase("qemu-optee")]
    [TestCase("qemu-optee-6.1")]
    public async Task KeysAreFreshPinnedAndKeyOnly(string board)
    {
        var image = await TestEnv.ImageAsync(board);
        var keyMode = File.GetUnixFileMode(image.Ssh.PrivateKeyPath);
        var fs = InitramfsReader.Read(image.Initrd);
        var authorized = Encoding.UTF8.GetString(fs["root/.ssh/authorized_keys"].Data).Trim();
        var init = Encoding.UTF8.GetString(fs["init"].Data);
        var shadow = Encoding.UTF8.GetString(fs["etc/shadow"].Data);
        var listed = (await ExternalTool.RunAsync("ssh-keygen", ["-lf", image.Ssh.PrivateKeyPath.Replace("root_ed25519", "host_ed25519.pub")])).Stdout;
        using (Assert.EnterMultipleScope())
        {
            Assert.That(keyMode, Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite), "root private key must be 0600");
            Assert.That(File.GetUnixFileMode(image.Initrd) & (UnixFileMode.OtherRead | UnixFileMode.GroupRead), Is.EqualTo(UnixFileMode.None),
                "the initramfs holds the host private key");
            Assert.That(authorized, Is.EqualTo(File.ReadAllText(image.Ssh.PrivateKeyPath + ".pub").Trim()));
            Assert.That(listed, Does.Contain(image.Ssh.HostKeyFingerprint), "pinned fingerprint = ssh-keygen's");
            Assert.That(fs["etc/dropbear/dropbear_ed25519_host_key"].Mode & 0x3F, Is.Zero, "host key 0600 in the image");
            Assert.That(init, Does.Match(@"dropbear -s "), "dropbear refuses every password");
            Assert.That(init, Does.Not.Contain("-B"), "never allow blank passwords");
            Assert.That(shadow.Split(':')[1], Is.Not.Empty, "root has no empty password");
            Assert.That(fs.ContainsKey("dev/console"), Is.True);
        }
        // Per image: the two boards never share keys.
        var other = await TestEnv.ImageAsync(board == "qemu-optee" ? "qemu-optee-6.1" : "qemu-optee");
        Assert.That(other.Ssh.HostKeyFingerprint, Is.Not.EqualTo(image.Ssh.HostKeyFingerprint));
    }

    [TestCase("qemu-optee", true)]
    [TestCase("qemu-optee-6.1", false)]
    public async Task InitramfsCarriesPlainModulesInDependencyOrder(string board, bool fromXz)
    {
        var image = await TestEnv.ImageAsync(board);
        var fs = InitramfsReader.Read(image.Initrd);
        var init = Encoding.UTF8.GetString(fs["init"].Data);
        var modules = fs.Keys.Where(k => k.StartsWith($"usr/lib/modules/{image.KernelRelease}/hil/", StringComparison.Ordinal) && k.EndsWith(".ko", StringComparison.Ordinal)).ToList();
        var order = System.Text.RegularExpressions.Regex.Match(init, @"for m in ([^;]+);").Groups[1].Value.Split(' ');
        using (Assert.EnterMultipleScope())
        {
            Assert.That(modules.Select(Path.GetFileNameWithoutExtension), Is.SupersetOf(new[] { "tee", "optee", "virtio_net", "net_failover", "failover" }));
            foreach (var m in modules)
            {
                var info = KernelModuleInfo.Parse(fs[m].Data, m);
                Assert.That(info["vermagic"], Does.StartWith(image.KernelRelease + " "), m);
            }
            Assert.That(Array.IndexOf(order, "tee"), Is.LessThan(Array.IndexOf(order, "optee")));
            Assert.That(Array.IndexOf(order, "failover"), Is.LessThan(Array.IndexOf(order, "net_failover")));
            Assert.That(Array.IndexOf(order, "net_failover"), Is.LessThan(Array.IndexOf(order, "virtio_net")));
            Assert.That(init, Does.Contain("optee:optee_cq_init"), "the thread-count kprobe is registered before optee.ko loads");
            Assert.That(init.IndexOf("kprobe_events", StringComparison.Ordinal), Is.LessThan(init.IndexOf("insmod", StringComparison.Ordinal)));
        }
        var kernelPkg = Manifest.Load(image.Directory).Packages.Single(p => p.Role == "kernel");
        var listing = (await ExternalTool.RunAsync("dpkg-deb", ["-c", Path.Combine(TestEnv.Cache.Root, kernelPkg.File)])).Stdout;
        Assert.That(listing, fromXz ? Does.Contain("optee.ko.xz") : Does.Contain("optee.ko").And.Not.Contain("optee.ko.xz"));
    }

    [Test]
    public async Task LibteecClientCrossBuildsForArm64()
    {
        var image = await TestEnv.ImageAsync("qemu-optee");
        var dir = TestEnv.TempDir("teec");
        File.WriteAllText(Path.Combine(dir, "c.c"),
            "#include <tee_client_api.h>\nint main(void){TEEC_Context c; TEEC_Result r=TEEC_InitializeContext(NULL,&c); if(r==TEEC_SUCCESS) TEEC_FinalizeContext(&c); return (int)r;}\n");
        await ExternalTool.RunAsync("aarch64-linux-gnu-gcc", ["-I", image.Libteec.IncludeDirectory, "-L", image.Libteec.LibraryDirectory,
            "-o", Path.Combine(dir, "c"), Path.Combine(dir, "c.c"), "-lteec"]);
        var elf = File.ReadAllBytes(Path.Combine(dir, "c"));
        Assert.That(BitConverter.ToUInt16(elf, 0x12), Is.EqualTo(183), "e_machine = EM_AARCH64");
        Directory.Delete(dir, true);
    }
}
