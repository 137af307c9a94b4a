using System.Net;
using System.Net.Sockets;
using Hil.Boards.Failures;
using Hil.Qemu.Board;
using Hil.Qemu.Launch;

namespace Hil.Qemu.Tests;

[TestFixture]
[NonParallelizable]
public class LauncherTests
{
    [Test]
    public async Task CommandLineFollowsTheBoardAndIsolatesEachInstance()
    {
        var image = await TestEnv.ImageAsync("qemu-optee");
        var a = QemuLaunchOptions.For(image);
        var b = QemuLaunchOptions.For(image);
        var args = a.Arguments();
        string After(string flag) => args[args.ToList().IndexOf(flag) + 1];
        using (Assert.EnterMultipleScope())
        {
            Assert.That(After("-machine"), Does.Contain("secure=on").And.Contain("virt"));
            Assert.That(After("-cpu"), Is.EqualTo("cortex-a57"));
            Assert.That(After("-smp"), Is.EqualTo("2"));
            Assert.That(After("-m"), Is.EqualTo("2048"));
            Assert.That(After("-bios"), Is.EqualTo(Path.Combine(image.Directory, "bl1.bin")));
            Assert.That(After("-kernel"), Is.EqualTo(image.KernelImage));
            Assert.That(After("-initrd"), Is.EqualTo(image.Initrd));
            Assert.That(After("-semihosting-config"), Does.Contain("enable=on"));
            Assert.That(After("-netdev"), Does.Contain($"hostfwd=tcp:127.0.0.1:{a.SshPort}-:22"));
            Assert.That(args, Does.Contain("-no-reboot"));
            Assert.That(args.Count(x => x == "-serial"), Is.EqualTo(2), "console, then the secure world's UART");
            Assert.That(args, Has.Some.Contains($"path={a.ConsoleSocketPath},server=on"));
            Assert.That(args, Has.Some.Contains($"path={a.SecureLogPath}"));
            Assert.That(b.SshPort, Is.Not.EqualTo(a.SshPort));
            Assert.That(b.RunDirectory, Is.Not.EqualTo(a.RunDirectory));
        }
    }

    [Test]
    public async Task ATakenPortIsReportedNotIgnored()
    {
        var image = await TestEnv.ImageAsync("qemu-optee");
        using var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        var port = ((IPEndPoint)squatter.LocalEndpoint).Port;
        var options = QemuLaunchOptions.For(image) with { SshPort = port };
        var ex = await Assert.ThrowsAsync<QemuLaunchException>(() => QemuInstance.StartAsync(options, CancellationToken.None));
        Assert.That(ex!.Message, Does.Contain(port.ToString()));
    }

    [Test]
    public async Task PowerIsTheProcess()
    {
        var image = await TestEnv.ImageAsync("qemu-optee");
        var power = new QemuPowerDriver(QemuLaunchOptions.For(image) with { WaitForConsoleClient = false }, TestEnv.Log);
        Assert.That(await power.IsAliveAsync(CancellationToken.None), Is.False);
        await power.OnAsync(CancellationToken.None);
        var first = power.Instance!.ProcessId;
        Assert.That(await power.IsAliveAsync(CancellationToken.None), Is.True);
        await power.CycleAsync(CancellationToken.None);
        Assert.That(power.Instance!.ProcessId, Is.Not.EqualTo(first), "a cycle is a fresh process");
        await Task.Delay(3000);
        Assert.That(File.ReadAllText(power.Instance.ConsoleLogPath), Does.Contain("Booting Trusted Firmware"), "QEMU logs the console even with no client");
        await power.OffAsync(CancellationToken.None);
        Assert.That(await power.IsAliveAsync(CancellationToken.None), Is.False);
    }

    [Test]
    public async Task BoardFileMistakesNameFileAndField()
    {
        await TestEnv.ProvisionedAsync();
        var dir = TestEnv.TempDir("bf");
        var text = File.ReadAllText(TestEnv.BoardFile("qemu-optee"));
        var badImage = Path.Combine(dir, "bad-image.yaml");
        File.WriteAllText(badImage, text.Replace("image: qemu-optee ", "image: qemu-nope "));
        var o = new QemuBoardOptions { LogDirectory = dir, Cache = TestEnv.Cache, Logger = TestEnv.Log, ProvisionIfMissing = false };
        var e1 = await Assert.ThrowsAsync<TestErrorException>(() => QemuBoards.OpenAsync(badImage, o));
        Assert.That(e1!.Message, Does.Contain(badImage).And.Contain("power.settings.image").And.Contain("qemu-nope"));
        // facts.kernel_policy is an expectation the suites check against the booted board's driver
        // (Hil.Suites.Common's facts), not against the image's recipe.
    }
}
