using Hil.Boards.Failures;
using Hil.Boards.Leases;

namespace Hil.Boards.Tests;

/// <summary>A run's leases on several boards, and how its child processes check them.</summary>
[NonParallelizable]
public sealed class LeaseSetTests : BoardTest
{
    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(2);

    [Test]
    public async Task TakesEveryBoard_InNameOrder_AndReleasesThemAll()
    {
        using var ws = new Workspace();
        var folder = Path.Combine(ws.Dir, "leases");
        var log = new LogLines();
        var set = await LeaseSet.TakeAsync(["zeta", "alpha", "zeta"], folder, "tester", Ttl, TimeSpan.Zero, log.Logger(), CancellationToken.None);
        Assert.That(set.Leases.Select(l => l.Board), Is.EqualTo(new[] { "alpha", "zeta" }));
        Assert.That(set.Leases.All(l => BoardLease.IsHeld(l.Board, folder, l.Token)), Is.True);
        await set.DisposeAsync();
        Assert.That(Directory.GetFiles(folder, "*.lease"), Is.Empty);
    }

    [Test]
    public async Task OneBoardBusy_ReleasesTheOnesAlreadyTaken()
    {
        using var ws = new Workspace();
        var folder = Path.Combine(ws.Dir, "leases");
        var log = new LogLines();
        await using var other = await BoardLease.TakeAsync("b2", folder, "other", Ttl, TimeSpan.Zero, log.Logger(), CancellationToken.None);
        var e = await Assert.ThrowsAsync<InfrastructureException>(() =>
            LeaseSet.TakeAsync(["b1", "b2"], folder, "tester", Ttl, TimeSpan.FromMilliseconds(200), log.Logger(), CancellationToken.None));
        Assert.That(e!.Message, Does.StartWith("board b2 is leased by other@"));
        Assert.That(File.Exists(Path.Combine(folder, "b1.lease")), Is.False, "b1 was released when b2 could not be had");
    }

    [Test]
    public async Task ChildEnvironment_LetsAChildCheckTheParentsLease()
    {
        using var ws = new Workspace();
        var folder = Path.Combine(ws.Dir, "leases");
        var log = new LogLines();
        var set = await LeaseSet.TakeAsync(["b1"], folder, "tester", Ttl, TimeSpan.Zero, log.Logger(), CancellationToken.None);
        var env = set.ChildEnvironment();
        var saved = env.Keys.ToDictionary(k => k, Environment.GetEnvironmentVariable);
        try
        {
            foreach (var (k, v) in saved) Environment.SetEnvironmentVariable(k, null);
            Assert.That(LeaseSet.CheckInherited("b1"), Is.Null, "no parent: the caller takes its own lease");
            foreach (var (k, v) in env) Environment.SetEnvironmentVariable(k, v);
            Assert.That(LeaseSet.CheckInherited("b1"), Is.True);
            var e = Assert.Throws<InfrastructureException>(() => LeaseSet.CheckInherited("b2"));
            Assert.That(e!.Message, Does.StartWith("board b2: the parent run holds no lease on it"));
            await set.DisposeAsync();
            e = Assert.Throws<InfrastructureException>(() => LeaseSet.CheckInherited("b1"));
            Assert.That(e!.Message, Does.StartWith("board b1: the parent run's lease is no longer held"));
        }
        finally
        {
            foreach (var (k, v) in saved) Environment.SetEnvironmentVariable(k, v);
        }
    }
}
