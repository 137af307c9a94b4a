using System.Diagnostics;
using System.Text.Json.Nodes;
using Hil.Boards.Failures;
using Hil.Boards.Leases;

namespace Hil.Boards.Tests;

/// <summary>
/// Board leases with real processes (tests/Hil.LeaseHolder): two racing, one killed with SIGKILL,
/// a long holder renewing, tampered lease files, unwritable folders. ttl of a second or two.
/// </summary>
[NonParallelizable]
public sealed class LeaseTests : BoardTest
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    private static string Folder(Workspace ws) => Path.Combine(ws.Dir, "leases");

    private static async Task<BoardLease> TakeAsync(string folder, LogLines log, string board = "b1", int ttlMs = 1000, int waitMs = 0) =>
        await BoardLease.TakeAsync(board, folder, "tester", TimeSpan.FromMilliseconds(ttlMs), TimeSpan.FromMilliseconds(waitMs), log.Logger(), CancellationToken.None);

    private static JsonObject ValidRecord(string board, string host, int pid, DateTimeOffset expires, double ttlSeconds = 2)
    {
        var now = DateTimeOffset.UtcNow;
        var r = new LeaseRecord(board, new LeaseHolder("alice", host, "some-boot", pid, 12345), "cafe", now, now, expires, TimeSpan.FromSeconds(ttlSeconds));
        return JsonNode.Parse(r.ToJson())!.AsObject();
    }

    [Test]
    public async Task TwoProcessesRacing_ExactlyOneWins_TheOtherFailsNamingTheWinner()
    {
        using var ws = new Workspace();
        var folder = Folder(ws);
        // Several rounds: a lost race between read and write would show up as two winners in one of them.
        for (var round = 0; round < 3; round++)
        {
            var go = Path.Combine(ws.Dir, $"go-{round}");
            using var a = HolderProcess.Start("racer", folder, "run-a", 2000, 200, 2500, go);
            using var b = HolderProcess.Start("racer", folder, "run-b", 2000, 200, 2500, go);
            await a.LineAsync("READY", Long);
            await b.LineAsync("READY", Long);
            await File.WriteAllTextAsync(go, "");
            var la = await a.AnyLineAsync(Long, "TAKEN", "ERROR");
            var lb = await b.AnyLineAsync(Long, "TAKEN", "ERROR");
            var (winner, loserLine) = la.StartsWith("TAKEN") ? (a, lb) : (b, la);
            Assert.That(new[] { la, lb }.Count(l => l.StartsWith("TAKEN")), Is.EqualTo(1), $"round {round}: a: {la}; b: {lb}\n{a.Log}\n{b.Log}");
            Assert.That(loserLine, Does.StartWith("ERROR Infrastructure board racer is leased by "));
            Assert.That(loserLine, Does.Contain($"@{Environment.MachineName} pid {winner.Pid} until "));
            Assert.That(loserLine, Does.Contain("gave up after waiting 0.2 s"));
            Assert.That(await winner.ExitAsync(Long), Is.EqualTo(0), winner.Log);
        }
    }

    [Test]
    public async Task TwoProcessesRacing_TheLoserWaits_AndTakesTheBoardOnlyAfterTheWinnerReleasedIt()
    {
        using var ws = new Workspace();
        var folder = Folder(ws);
        var go = Path.Combine(ws.Dir, "go");
        using var a = HolderProcess.Start("shared", folder, "run-a", 1000, 15000, 1500, go);
        using var b = HolderProcess.Start("shared", folder, "run-b", 1000, 15000, 1500, go);
        await a.LineAsync("READY", Long);
        await b.LineAsync("READY", Long);
        await File.WriteAllTextAsync(go, "");
        Assert.That(await a.ExitAsync(Long), Is.EqualTo(0), a.Log);
        Assert.That(await b.ExitAsync(Long), Is.EqualTo(0), b.Log);
        long Stamp(HolderProcess p, string prefix) => long.Parse(p.Output.Single(l => l.StartsWith(prefix)).Split(' ')[1]);
        var (first, second) = Stamp(a, "TAKEN") < Stamp(b, "TAKEN") ? (a, b) : (b, a);
        // Each held the board ~1.5 s (past its 1 s ttl, so renewal mattered too); the holds must not overlap.
        Assert.That(Stamp(second, "TAKEN"), Is.GreaterThanOrEqualTo(Stamp(first, "RELEASED")),
            $"first: {string.Join(" | ", first.Output)}; second: {string.Join(" | ", second.Output)}");
        Assert.That(second.Log, Does.Contain("is leased by").And.Contain($"pid {first.Pid}"), "the waiter said whom it waited for");
        Assert.That(second.Log, Does.Not.Contain("taking over"), "the board was released, not taken over");
    }

    [Test]
    public async Task HolderKilledWithSigkill_IsTakenOverAtOnce_WithALogLineSayingWhoseItWas()
    {
        using var ws = new Workspace();
        var folder = Folder(ws);
        // A 30 s ttl: taking over at once can only come from proving the holder dead, not from expiry.
        using var holder = HolderProcess.Start("b1", folder, "victim", 30000, 0, -1);
        await holder.LineAsync("TAKEN", Long);
        var log = new LogLines();
        var e = await Assert.ThrowsAsync<InfrastructureException>(() => TakeAsync(folder, log));
        Assert.That(e!.Message, Does.Contain($"victim@{Environment.MachineName} pid {holder.Pid}"), "alive, it is not taken over");

        await holder.KillAsync();
        var clock = Stopwatch.StartNew();
        await using var lease = await TakeAsync(folder, log, waitMs: 0);
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(2)));
        Assert.That(log.All, Has.Some.Contains($"taking over the lease of victim@{Environment.MachineName} pid {holder.Pid}")
            .And.Some.Contains($"pid {holder.Pid} is no longer running").And.Some.Contains("expires "), log.ToString());
        Assert.That(BoardLease.IsHeld("b1", folder, lease.Token), Is.True);
    }

    [Test]
    public async Task HolderElsewhereThatDied_IsTakenOverOnlyAfterItsLeaseExpired()
    {
        using var ws = new Workspace();
        var folder = Folder(ws);
        Directory.CreateDirectory(folder);
        // Another host's holder cannot be proven dead from here: only its expiry frees the board.
        var expires = DateTimeOffset.UtcNow.AddSeconds(1.5);
        await File.WriteAllTextAsync(Path.Combine(folder, "b1.lease"), ValidRecord("b1", "lab-elsewhere", 4242, expires).ToJsonString());
        var log = new LogLines();
        var e = await Assert.ThrowsAsync<InfrastructureException>(() => TakeAsync(folder, log, waitMs: 300));
        Assert.That(e!.Message, Does.Match(@"^board b1 is leased by alice@lab-elsewhere pid 4242 until \S+ \S+Z \(.*b1\.lease\); gave up after waiting 0\.3 s$"));

        await using var lease = await TakeAsync(folder, log, waitMs: 5000);
        Assert.That(DateTimeOffset.UtcNow, Is.GreaterThan(expires));
        Assert.That(log.All, Has.Some.Contains("taking over the lease of alice@lab-elsewhere pid 4242").And.Some.Contains("expired at "), log.ToString());
        // One "waiting" line per take, although the holder was polled many times.
        Assert.That(log.All.Count(l => l.Contains("waiting up to")), Is.EqualTo(2), log.ToString());
    }

    [TestCase("reused pid", "is now another process")]
    [TestCase("rebooted", "has rebooted since")]
    [TestCase("alive", null)]
    public async Task HolderOnThisHost_IsProvenDead_ByItsPidsStartOrTheBootId(string how, string? why)
    {
        using var ws = new Workspace();
        var folder = Path.Combine(ws.Dir, "leases");
        Directory.CreateDirectory(folder);
        // The holder's pid is this test's own: alive, so only the start time or the boot id can tell it is not the holder.
        var me = Environment.ProcessId;
        var start = long.Parse(File.ReadAllText($"/proc/{me}/stat").Split(')')[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[19]);
        var bootId = File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim();
        var o = ValidRecord("b1", Environment.MachineName, me, DateTimeOffset.UtcNow.AddSeconds(20), ttlSeconds: 20);
        o["boot_id"] = how == "rebooted" ? "00000000-0000-0000-0000-000000000000" : bootId;
        o["process_start_ticks"] = how == "reused pid" ? start + 1 : start;
        await File.WriteAllTextAsync(Path.Combine(folder, "b1.lease"), o.ToJsonString());
        var log = new LogLines();
        if (why is null)
        {
            var e = await Assert.ThrowsAsync<InfrastructureException>(() => TakeAsync(folder, log));
            Assert.That(e!.Message, Does.StartWith($"board b1 is leased by alice@{Environment.MachineName} pid {me} until "));
            return;
        }
        await using var lease = await TakeAsync(folder, log);
        Assert.That(log.All, Has.Some.Contains($"taking over the lease of alice@{Environment.MachineName} pid {me}").And.Some.Contains(why), log.ToString());
    }

    [Test]
    public async Task Renewal_KeepsALongHoldersLeaseAlivePastItsTtl()
    {
        using var ws = new Workspace();
        var folder = Folder(ws);
        using var holder = HolderProcess.Start("b1", folder, "long-run", 1000, 0, 4000);
        var taken = DateTimeOffset.FromUnixTimeMilliseconds(long.Parse((await holder.LineAsync("TAKEN", Long)).Split(' ')[1]));
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        // 2.5 ttls later the holder (alive, in another process) still has the board: its renewals moved the expiry.
        var log = new LogLines();
        var e = await Assert.ThrowsAsync<InfrastructureException>(() => TakeAsync(folder, log));
        Assert.That(e!.Message, Does.Contain($"long-run@{Environment.MachineName} pid {holder.Pid}"), log.ToString());
        var record = LeaseRecord.Parse(await File.ReadAllTextAsync(Path.Combine(folder, "b1.lease")), "b1.lease", DateTimeOffset.UtcNow);
        Assert.That(record.ExpiresUtc, Is.GreaterThan(taken.AddSeconds(2.5)));
        // The child prints TAKEN just after taking (on a busy machine, some 100 ms later); renewal must not move taken_utc.
        Assert.That(record.TakenUtc, Is.InRange(taken.AddSeconds(-1), taken), "renewal keeps the time it was taken");
        Assert.That(record.RenewedUtc, Is.GreaterThan(taken.AddSeconds(1.5)));

        Assert.That(await holder.ExitAsync(Long), Is.EqualTo(0), holder.Log);
        Assert.That(holder.Output, Has.None.StartsWith("LOST"));
        Assert.That(File.Exists(Path.Combine(folder, "b1.lease")), Is.False, "released on exit");
        await using var next = await TakeAsync(folder, log);
    }

    [TestCase("this is not a lease", "(file): not JSON")]
    [TestCase("[1, 2]", "(file): not a JSON object")]
    [TestCase("drop:pid", "pid: missing")]
    [TestCase("set:pid=\"12\"", "pid: is string, expected number")]
    [TestCase("set:owner=\"\"", "owner: is empty")]
    [TestCase("set:expires_utc=\"9999-01-01T00:00:00Z\"", "expires_utc: 9999-01-01T00:00:00.000Z is not renewed_utc")]
    [TestCase("set:ttl_seconds=1e9", "ttl_seconds: 1e9 is not between 0 and 86400 s")]
    [TestCase("set:taken_utc=\"yesterday\"", "taken_utc: 'yesterday' is not a UTC time")]
    public async Task TamperedLeaseFile_JustWritten_IsAnErrorNamingTheFileAndField(string tamper, string expected)
    {
        using var ws = new Workspace();
        var folder = Folder(ws);
        Directory.CreateDirectory(folder);
        var file = Path.Combine(folder, "b1.lease");
        await File.WriteAllTextAsync(file, Tampered(tamper));
        var log = new LogLines();
        var e = await Assert.ThrowsAsync<InfrastructureException>(() => TakeAsync(folder, log, ttlMs: 2000, waitMs: 700));
        Assert.That(e!.Message, Does.StartWith($"lease file {file} is corrupt: {expected}"));
        Assert.That(e.Message, Does.Contain("taken over only once unchanged for the ttl, 2 s); gave up after waiting 0.7 s").And.Not.Contain("\n"));
        Assert.That(log.All.Count(l => l.Contains("waiting up to")), Is.EqualTo(1), "one line per holder, not one per poll:\n" + log);
    }

    private static string Tampered(string tamper)
    {
        if (!tamper.StartsWith("drop:") && !tamper.StartsWith("set:")) return tamper;
        var o = ValidRecord("b1", Environment.MachineName, 999999, DateTimeOffset.UtcNow.AddSeconds(2));
        if (tamper.StartsWith("drop:")) o.Remove(tamper["drop:".Length..]);
        else
        {
            var (name, value) = (tamper["set:".Length..].Split('=', 2)[0], tamper.Split('=', 2)[1]);
            o[name] = JsonNode.Parse(value);
        }
        return o.ToJsonString();
    }

    [Test]
    public async Task TamperedLeaseFile_UnchangedForLongerThanTheTtl_IsTakenOverWithALogLine()
    {
        using var ws = new Workspace();
        var folder = Folder(ws);
        Directory.CreateDirectory(folder);
        var file = Path.Combine(folder, "b1.lease");
        await File.WriteAllTextAsync(file, Tampered("drop:token"));
        File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddSeconds(-5));
        var log = new LogLines();
        await using var lease = await TakeAsync(folder, log, ttlMs: 2000);
        Assert.That(log.All, Has.Some.Contains($"taking over lease file {file} is corrupt: token: missing; unchanged for 5"), log.ToString());
        Assert.That(BoardLease.IsHeld("b1", folder, lease.Token), Is.True);
    }

    [Test]
    public async Task TamperedWhileHeld_CorruptFileIsWrittenAgain_AnotherHoldersRecordMeansTheLeaseIsLost()
    {
        using var ws = new Workspace();
        var folder = Folder(ws);
        var log = new LogLines();
        var lease = await TakeAsync(folder, log, ttlMs: 900);
        var file = lease.File;

        await File.WriteAllTextAsync(file, "garbage");
        await Task.Delay(700);
        Assert.That(BoardLease.IsHeld("b1", folder, lease.Token), Is.True, log.ToString());
        Assert.That(log.All, Has.Some.Contains("is corrupt: (file): not JSON (").And.Some.Contains("while held by tester@"));

        var other = ValidRecord("b1", "lab-elsewhere", 4242, DateTimeOffset.UtcNow.AddSeconds(2));
        await File.WriteAllTextAsync(file, other.ToJsonString());
        await Task.Delay(700);
        Assert.That(lease.Lost.IsCancellationRequested, Is.True, log.ToString());
        Assert.That(lease.LostReason, Does.Contain("taken over by alice@lab-elsewhere pid 4242"));
        Assert.Throws<InfrastructureException>(lease.ThrowIfLost);
        await lease.DisposeAsync();
        Assert.That(File.ReadAllText(file), Does.Contain("lab-elsewhere"), "a lost lease never deletes its successor's file");
    }

    [Test]
    public async Task Release_DeletesTheFile_AndTheSameProcessCannotTakeAHeldBoardTwice()
    {
        using var ws = new Workspace();
        var folder = Folder(ws);
        var log = new LogLines();
        var lease = await TakeAsync(folder, log);
        Assert.That(File.Exists(lease.File), Is.True);
        // Two boards in one `hil run` are two leases; the same board twice is refused even in one process.
        await Assert.ThrowsAsync<InfrastructureException>(() => TakeAsync(folder, log));
        await using (await TakeAsync(folder, log, board: "b2")) { }
        await lease.DisposeAsync();
        Assert.That(File.Exists(lease.File), Is.False);
        await using var again = await TakeAsync(folder, log);
    }

    [TestCase("/proc/hil-lease-test/leases")]
    [TestCase("/sys/hil-lease-test")]
    [TestCase("/sys")]
    public async Task UnwritableLeaseFolder_IsAOneLineErrorNamingIt_NeverAHang(string folder)
    {
        var clock = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<TestErrorException>(() => TakeAsync(folder, new LogLines(), waitMs: 60000));
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
        Assert.That(e!.Message, Does.StartWith($"lease folder {folder} is not writable: ").And.Contain("HIL_LEASES").And.Not.Contain("\n"));
    }

    [TestCase("../etc")]
    [TestCase(".hidden")]
    [TestCase("a/b")]
    [TestCase("")]
    public async Task BoardNameThatIsNotAPlainFileName_IsRefused(string board)
    {
        var e = await Assert.ThrowsAsync<TestErrorException>(() => TakeAsync(Path.GetTempPath(), new LogLines(), board: board));
        Assert.That(e!.Message, Does.StartWith($"board name '{board}' cannot name a lease"));
    }

    [Test]
    public void DefaultFolder_IsHilLeases_ElseUnderTheHomeCache()
    {
        var saved = Environment.GetEnvironmentVariable(LeaseFolder.Variable);
        try
        {
            Environment.SetEnvironmentVariable(LeaseFolder.Variable, "/srv/lab/leases");
            Assert.That(LeaseFolder.DefaultPath(), Is.EqualTo("/srv/lab/leases"));
            Environment.SetEnvironmentVariable(LeaseFolder.Variable, null);
            Assert.That(LeaseFolder.DefaultPath(), Is.EqualTo(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "hil", "leases")));
        }
        finally
        {
            Environment.SetEnvironmentVariable(LeaseFolder.Variable, saved);
        }
    }
}
