using System.Diagnostics;
using Hil.Boards.BoardFiles;
using Hil.Qemu.Board;

namespace Hil.Cli.Tests;

/// <summary>
/// Board leases as `hil` processes meet them: `hil lease hold` (the path `hil run` takes: LeaseSet
/// with hil run's ttl) racing, killed with SIGKILL, against a tampered lease file; `hil run` itself
/// against a held board and an unwritable lease folder. Each test has its own lease folder. The
/// lease protocol's finer cases (pid reuse, reboot, renewal, a holder on another host expiring)
/// are in Hil.Boards.Tests/LeaseTests, with sub-second ttls.
/// </summary>
[NonParallelizable]
public sealed class LeaseCliTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);
    private string _dir = "";

    [SetUp]
    public void MakeFolder() => _dir = Directory.CreateTempSubdirectory("hil-lease-cli-").FullName;

    [TearDown]
    public void RemoveFolder() => Directory.Delete(_dir, recursive: true);

    private string Leases => Path.Combine(_dir, "leases");

    private static string Board() => $"lab-{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>A lab board's file (not QEMU: leased) whose console refuses at once: what runs on it fails fast, as infrastructure.</summary>
    internal static string LabBoardFile(string dir, string name)
    {
        var file = Path.Combine(dir, name + ".yaml");
        File.WriteAllText(file, $"""
            name: {name}
            description: a lab board whose console port refuses (hil run lease tests)
            console:
              device: tcp://127.0.0.1:{ClosedPort()}
              reconnect_timeout: 1s
            power:
              driver: none
            """);
        return file;
    }

    private static int ClosedPort()
    {
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        var port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    [Test]
    public async Task TwoHilProcessesRacingForOneBoard_OneHoldsIt_TheOtherWaitsAndTakesItOnlyAfterwards()
    {
        var board = Board();
        using var a = HilProcess.Start(Leases, "lease", "hold", board, "--for", "3", "--wait", "60");
        using var b = HilProcess.Start(Leases, "lease", "hold", board, "--for", "3", "--wait", "60");
        var ta = await a.LineAsync("holding", Long);
        var tb = await b.LineAsync("holding", Long);
        var (first, second, gap) = ta < tb ? (a, b, tb - ta) : (b, a, ta - tb);
        // The first holds for 3 s: the second gets the board no sooner (less a little for when the lines were read).
        Assert.That(gap, Is.GreaterThan(TimeSpan.FromSeconds(2.5)), $"{a.All}\n{b.All}");
        Assert.That(second.Err, Has.Some.Contains($"is leased by").And.Some.Contains($"pid {first.Pid} until").And.Some.Contains("waiting up to"), second.All);
        Assert.That(await a.ExitAsync(Long), Is.EqualTo(0), a.All);
        Assert.That(await b.ExitAsync(Long), Is.EqualTo(0), b.All);
        Assert.That(Directory.EnumerateFiles(Leases, "*.lease"), Is.Empty, "both released");
    }

    [Test]
    public async Task HilRunOnAHeldBoard_GivesUpAfterItsWait_InOneLineNamingTheHolder()
    {
        var board = Board();
        var file = LabBoardFile(_dir, board);
        using var holder = HilProcess.Start(Leases, "lease", "hold", board, "--wait", "0");
        await holder.LineAsync("holding", Long);
        var clock = Stopwatch.StartNew();
        using var run = HilProcess.Start(Leases, "run", "--board", file, "--suite", "smoke", "--lease-wait", "2", "--results", Path.Combine(_dir, "results"));
        Assert.That(await run.ExitAsync(Long), Is.EqualTo(1), run.All);
        var last = run.Err.Last();
        Assert.That(last, Does.StartWith($"hil run: [infrastructure] board {board} is leased by ").And.Contains($"@{Environment.MachineName} pid {holder.Pid} until")
            .And.EndsWith("gave up after waiting 2 s"), run.All);
        Assert.That(run.Err, Has.None.Contains("   at "), run.All);
        // It gave up without building or running anything.
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)), run.All);
        Assert.That(Directory.EnumerateFiles(Path.Combine(_dir, "results"), "build-*.log"), Is.Empty);
        // A second holder likewise, and the board is still the first holder's.
        using var second = HilProcess.Start(Leases, "lease", "hold", board, "--wait", "1");
        Assert.That(await second.ExitAsync(Long), Is.EqualTo(1), second.All);
        Assert.That(second.Err.Last(), Does.StartWith($"hil lease hold: [infrastructure] board {board} is leased by "), second.All);
        Assert.That(File.ReadAllText(Path.Combine(Leases, board + ".lease")), Does.Contain($"\"pid\": {holder.Pid},"));
    }

    [Test]
    public async Task HolderKilledWithSigkill_IsTakenOver_WithALogLineNamingTheDeadHolder()
    {
        var board = Board();
        using var victim = HilProcess.Start(Leases, "lease", "hold", board, "--wait", "0");
        await victim.LineAsync("holding", Long);
        victim.KillHard();
        await victim.ExitAsync(Long);
        // The file is still there, naming a holder that will never renew or release it.
        using var list = HilProcess.Start(Leases, "lease", "list");
        Assert.That(await list.ExitAsync(Long), Is.EqualTo(0), list.All);
        Assert.That(list.Out, Has.Some.StartsWith($"{board}: ").And.Some.Contains($"pid {victim.Pid} since").And.Some.Contains($"(holder gone: pid {victim.Pid} is no longer running)"), list.All);

        var clock = Stopwatch.StartNew();
        using var next = HilProcess.Start(Leases, "lease", "hold", board, "--for", "0", "--wait", "60");
        await next.LineAsync("holding", Long);
        // On the same host a dead pid is proof: no need to wait out the 30 s ttl (a holder on another
        // host is trusted until its lease expires: LeaseTests.HolderElsewhereThatDied_…).
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)), next.All);
        Assert.That(next.Err, Has.Some.Contains($"taking over the lease of {Hil.Boards.Leases.BoardLease.DefaultOwner}@{Environment.MachineName} pid {victim.Pid}")
            .And.Some.Contains($"pid {victim.Pid} is no longer running"), next.All);
        Assert.That(await next.ExitAsync(Long), Is.EqualTo(0), next.All);
    }

    [Test]
    public async Task TamperedLeaseFile_BlocksTheBoardForOneTtl_ThenIsTakenOverWithAWarning()
    {
        // Treated safely rather than as a permanent error: a file no holder wrote (holders rename
        // complete files into place) blocks the board while it is fresh, since someone may be
        // mid-way through something we cannot read; once unchanged for the ttl (a live holder
        // would have rewritten it at ttl/3) it is taken over, so tampering cannot block a board for good.
        var board = Board();
        var file = LabBoardFile(_dir, board);
        Directory.CreateDirectory(Leases);
        var lease = Path.Combine(Leases, board + ".lease");
        File.WriteAllText(lease, "{\"board\": \"" + board + "\", \"owner\": \"mallory\", \"pid\": \"not a pid\"}");

        using var run = HilProcess.Start(Leases, "run", "--board", file, "--suite", "smoke", "--lease-wait", "1", "--results", Path.Combine(_dir, "results"));
        Assert.That(await run.ExitAsync(Long), Is.EqualTo(1), run.All);
        Assert.That(run.Err.Last(), Does.StartWith($"hil run: [infrastructure] lease file {lease} is corrupt: ").And.Contains("taken over only once unchanged for the ttl, 30 s"), run.All);
        Assert.That(run.Err, Has.None.Contains("   at "), run.All);

        File.SetLastWriteTimeUtc(lease, DateTime.UtcNow.AddSeconds(-31));
        using var hold = HilProcess.Start(Leases, "lease", "hold", board, "--for", "0", "--wait", "0");
        Assert.That(await hold.ExitAsync(Long), Is.EqualTo(0), hold.All);
        Assert.That(hold.Err, Has.Some.Contains($"taking over lease file {lease} is corrupt").And.Some.Contains("longer than the ttl (30 s)"), hold.All);
        Assert.That(File.Exists(lease), Is.False, "taken over, then released");
    }

    [TestCase("/proc/hil-lease-cli-test")]
    [TestCase("FILE/leases")]
    public async Task UnwritableLeaseFolder_IsOneLine_NeverAHang(string folder)
    {
        var board = Board();
        var file = LabBoardFile(_dir, board);
        // A folder under a regular file cannot be made either, root or not.
        if (folder.StartsWith("FILE", StringComparison.Ordinal)) folder = folder.Replace("FILE", file);
        foreach (var args in new[] { new[] { "run", "--board", file, "--suite", "smoke", "--results", Path.Combine(_dir, "results") }, ["lease", "hold", board] })
        {
            var clock = Stopwatch.StartNew();
            using var p = HilProcess.Start(folder, args);
            Assert.That(await p.ExitAsync(Long), Is.EqualTo(2), p.All);
            // hil run's progress log lines (timestamped, on stderr outside a terminal) may come first; the verdict is one line, the last.
            Assert.That(p.Err.Last(), Does.StartWith($"hil {args[0]}").And.Contains($"lease folder {folder} is not writable").And.EndsWith("(set HIL_LEASES to a writable folder)"), p.All);
            Assert.That(p.Err.Count(l => l.StartsWith("hil ", StringComparison.Ordinal)), Is.EqualTo(1), p.All);
            Assert.That(p.Err, Has.None.Contains("   at "), p.All);
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)), p.All);
        }
    }

    [Test]
    public void QemuBoardsAreNotLeased_EveryOtherBoardIs()
    {
        QemuBoards.Register();
        // Opened by the suites and hil run, a QEMU board is a private emulator per session (own socket, own port).
        Assert.That(BoardLeasing.NeedsLease(BoardFileLoader.Load(CliHarness.Repo("boards", "qemu-optee.yaml"))), Is.False);
        Assert.That(BoardLeasing.NeedsLease(BoardFileLoader.Load(CliHarness.Repo("boards", "qemu-optee-6.1.yaml"))), Is.False);
        Assert.That(BoardLeasing.NeedsLease(BoardFileLoader.Load(LabBoardFile(_dir, "lab-x"))), Is.True);
    }
}
