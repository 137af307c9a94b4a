using System.Diagnostics;
using Hil.Boards.Failures;
using Hil.Qemu.Board;

namespace Hil.Qemu.Tests;

/// <summary>
/// Both kernels boot the same firmware and user space to a shell through the board-access layer
/// (Hil.Boards: console shell over the QEMU console socket, SSH pinned to the image's host key).
/// </summary>
[TestFixture]
[NonParallelizable]
public class BootTests
{
    [TestCase("qemu-optee", 2)]
    [TestCase("qemu-optee-6.1", null)]
    public async Task BootsToAShellWithTeeAndReportsItsThreadCount(string board, int? observableThreads)
    {
        await TestEnv.ImageAsync(board);
        var logs = TestEnv.TempDir("boot-" + board);
        await using var session = await QemuBoards.OpenAsync(TestEnv.BoardFile(board), new QemuBoardOptions
        {
            LogDirectory = logs, Cache = TestEnv.Cache, Logger = TestEnv.Log,
        });
        var clock = Stopwatch.StartNew();
        await session.Board.BootAsync();
        TestContext.Progress.WriteLine($"{board}: power-on to shell through the harness: {clock.Elapsed.TotalSeconds:0.00} s");

        var tee = await session.Board.Shell.RunAsync("test -c /dev/tee0 && test -c /dev/teepriv0 && uname -r");
        var threads = await session.CheckThreadCountAsync();
        var cqInit = await session.Board.Shell.RunAsync("grep -c ' optee_cq_init' /proc/kallsyms");
        var ssh = await session.Board.Ssh.RunAsync("cat /run/hil/optee_thread_count; pidof tee-supplicant", TimeSpan.FromSeconds(30));
        var secure = File.ReadAllText(session.Launch.SecureLogPath);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(tee.ExitCode, Is.Zero, tee.Output);
            Assert.That(tee.Output.Trim(), Is.EqualTo(session.Image.KernelRelease));
            Assert.That(threads.Observed, Is.EqualTo(observableThreads), threads.ToString());
            Assert.That(threads.Mismatch, Is.False, threads.ToString());
            Assert.That(threads.Expected, Is.EqualTo(2), "board file fact");
            // The 6.1 driver has no thread counting at all: that is why nothing is observable there.
            Assert.That(cqInit.Output.Trim(), Is.EqualTo(observableThreads is null ? "0" : "1"));
            Assert.That(ssh.ExitStatus, Is.Zero, ssh.Stderr);
            Assert.That(ssh.Stdout.Split('\n')[0].Trim(), Is.EqualTo(threads.Raw));
            Assert.That(secure, Does.Contain("OP-TEE version"), "secure console captured to its own log");
            Assert.That(secure, Does.Not.Contain("Panic at"));
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(90)));
        }
    }

    [Test]
    public async Task KillingQemuIsInfrastructureAndTheNextSessionBootsFresh()
    {
        await TestEnv.ImageAsync("qemu-optee");
        var logs = TestEnv.TempDir("kill");
        var options = new QemuBoardOptions { LogDirectory = logs, Cache = TestEnv.Cache, Logger = TestEnv.Log };
        await using (var session = await QemuBoards.OpenAsync(TestEnv.BoardFile("qemu-optee"), options))
        {
            await session.Board.BootAsync();
            await session.Power.KillAsync();
            Assert.That(await session.Power.IsAliveAsync(CancellationToken.None), Is.False);
            var ex = await Assert.CatchAsync<HilException>(() => session.Board.Shell.RunAsync("uptime", TimeSpan.FromSeconds(10)));
            Assert.That(ex!.Class, Is.EqualTo(FailureClass.Infrastructure), ex.Message);
        }
        await using var fresh = await QemuBoards.OpenAsync(TestEnv.BoardFile("qemu-optee"), options with { LogDirectory = TestEnv.TempDir("fresh") });
        await fresh.Board.BootAsync();
        var up = await fresh.Board.Shell.RunCheckedAsync("cut -d. -f1 /proc/uptime");
        Assert.That(int.Parse(up.Output.Trim()), Is.LessThan(60), "a freshly booted board");
    }

    /// <summary>
    /// Fault injection beside the real path: QEMU exits right after its console client connects (a
    /// missing NIC ROM, as on a machine without ipxe-qemu). The boot must end within a second of the
    /// exit as infrastructure, naming the board, what the boot waited for, the exit code and QEMU's
    /// own error line, instead of waiting out the firmware stage's timeout.
    /// </summary>
    [TestCase("qemu-optee")]
    [TestCase("qemu-optee-6.1")]
    public async Task QemuExitingAtStart_EndsTheBootWithinASecond_AsInfrastructure_WithItsStderr(string board)
    {
        await TestEnv.ImageAsync(board);
        const string missing = "/nonexistent/hil-missing-efi-virtio.rom";
        await using var session = await QemuBoards.OpenAsync(TestEnv.BoardFile(board), new QemuBoardOptions
        {
            LogDirectory = TestEnv.TempDir("romfile-" + board), Cache = TestEnv.Cache, Logger = TestEnv.Log,
            AdjustLaunch = o => o with { NicRomFile = missing },
        });
        var clock = Stopwatch.StartNew();
        var ex = await Assert.CatchAsync<HilException>(() => session.Board.BootAsync());
        var caught = DateTimeOffset.UtcNow;
        var exited = session.Power.Instance?.ExitedAtUtc;
        TestContext.Progress.WriteLine($"{board}: boot failed after {clock.Elapsed.TotalSeconds:0.00} s: {ex!.Message}");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex.Class, Is.EqualTo(FailureClass.Infrastructure), ex.Message);
            Assert.That(ex.Message, Does.Contain($"board {board}"));
            Assert.That(ex.Message, Does.Contain("boot stage").Or.Contain("switching power"), "names where the boot was");
            Assert.That(ex.Message, Does.Contain("exited with code 1"));
            Assert.That(ex.Message, Does.Contain(missing), "QEMU's own error line");
            Assert.That(ex.Message, Does.Not.Contain("\n"), "one line");
            Assert.That(exited, Is.Not.Null, "QEMU exited");
            Assert.That(caught - exited!.Value, Is.LessThan(TimeSpan.FromSeconds(1)), "seen within a second of the exit");
        }
    }

    [Test]
    public async Task TwoBoardsRunSideBySideWithoutColliding()
    {
        await TestEnv.ProvisionedAsync();
        var o = new QemuBoardOptions { LogDirectory = TestEnv.TempDir("par"), Cache = TestEnv.Cache, Logger = TestEnv.Log };
        await using var a = await QemuBoards.OpenAsync(TestEnv.BoardFile("qemu-optee"), o with { LogDirectory = TestEnv.TempDir("par-a") });
        await using var b = await QemuBoards.OpenAsync(TestEnv.BoardFile("qemu-optee-6.1"), o with { LogDirectory = TestEnv.TempDir("par-b") });
        Assert.That(a.Launch.SshPort, Is.Not.EqualTo(b.Launch.SshPort));
        Assert.That(a.Launch.RunDirectory, Is.Not.EqualTo(b.Launch.RunDirectory));
        // Booted one after the other (both then run at once): concurrent console logins are Hil.Boards' business.
        await a.Board.BootAsync();
        await b.Board.BootAsync();
        var ra = await a.Board.Ssh.RunAsync("uname -r", TimeSpan.FromSeconds(30));
        var rb = await b.Board.Ssh.RunAsync("uname -r", TimeSpan.FromSeconds(30));
        Assert.That(ra.Stdout.Trim(), Is.EqualTo(a.Image.KernelRelease));
        Assert.That(rb.Stdout.Trim(), Is.EqualTo(b.Image.KernelRelease));
    }
}
