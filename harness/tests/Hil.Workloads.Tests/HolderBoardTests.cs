using Hil.Workloads.Holder;
using Hil.Workloads.Kmod;

namespace Hil.Workloads.Tests.OnBoard;

/// <summary>teeholder on both kernels: user space fills the two secure threads, alone and against the module's calls.</summary>
[TestFixture("qemu-optee")]
[TestFixture("qemu-optee-6.1")]
[NonParallelizable]
public class HolderBoardTests(string board)
{
    private WorkloadBoard _board = null!;
    private HolderRunner _holder = null!;

    [OneTimeSetUp]
    public async Task BootAsync()
    {
        _board = await KmodBoards.GetAsync(board);
        _holder = await _board.HolderAsync();
    }

    private void Say(string text) => TestContext.Progress.WriteLine($"{board}: {text}");

    [Test]
    public async Task TwoHoldersFillBothThreadsAndAThirdWaitsForOne()
    {
        var report = await _holder.RunAsync(new HolderPlan([new HolderCall(1500), new HolderCall(1500), new HolderCall(300, 200)]));
        var t0 = report.T0Ns!.Value;
        foreach (var c in report.Calls)
            Say($"holder {c.Index} ({c.HoldMs} ms @{c.StartMs}): request +{c.RequestOffsetMs(t0):0.0} ms, return +{c.ReturnOffsetMs(t0):0.0} ms, tid {c.Tid}");
        Assert.That(report.Succeeded, Is.True, string.Join("\n", report.Errors));
        var (a, b, late) = (report.Call(0), report.Call(1), report.Call(2));
        var firstFree = Math.Min(a.ReturnNs, b.ReturnNs);
        using (Assert.EnterMultipleScope())
        {
            // The first two hold the threads together...
            Assert.That(Math.Max(a.RequestNs, b.RequestNs), Is.LessThan(Math.Min(a.ReturnNs, b.ReturnNs)));
            Assert.That(a.Duration.TotalMilliseconds, Is.InRange(1495.0, 4000.0));
            // ...so the third, asked for while both were busy, can only have run after one of them ended.
            Assert.That(late.RequestNs, Is.LessThan(firstFree));
            Assert.That((late.ReturnNs - firstFree) / 1e6, Is.GreaterThanOrEqualTo(295.0), "the late holder's 300 ms started after a thread freed");
        }
    }

    [Test]
    public async Task AKernelCallWaitsWhileUserSpaceHoldsBothThreads()
    {
        var kmod = await _board.ModuleAsync();
        await kmod.WaitIdleAsync(TimeSpan.FromSeconds(90));
        await kmod.ResetAsync();
        // Opening a session is itself a call into OP-TEE: open before the threads are taken.
        await kmod.OpenAsync("k", SessionKind.Normal);
        var running = await _holder.StartAsync(HolderPlan.Saturate(2, 2500));
        var holderT0 = await running.WaitReadyAsync(TimeSpan.FromSeconds(60));
        var run = await kmod.RunAsync([new KmodCall("k", 0, 300)], leadMs: 300);
        var holders = await running.WaitAsync();
        var call = run.Calls.Single();
        var firstFree = holders.Calls.Min(c => c.ReturnNs);
        Say($"holders: t0 {holderT0}, returns +{string.Join(", +", holders.Calls.Select(c => c.ReturnOffsetMs(holderT0).ToString("0.0")))} ms; " +
            $"kernel call: request +{(call.RequestNs!.Value - holderT0) / 1e6:0.0} ms, return +{(call.ReturnNs!.Value - holderT0) / 1e6:0.0} ms");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(holders.Succeeded, Is.True, string.Join("\n", holders.Errors));
            Assert.That(call.Succeeded, Is.True, call.ToString());
            Assert.That(holders.Calls.Max(c => c.RequestNs), Is.LessThan(call.RequestNs!.Value), "both threads were taken when the kernel asked");
            Assert.That(call.RequestNs!.Value, Is.LessThan(firstFree), "the kernel call was issued while user space held both threads");
            Assert.That((call.ReturnNs!.Value - firstFree) / 1e6, Is.GreaterThanOrEqualTo(295.0), "it ran only once a holder let go");
        }
    }

    [Test]
    public async Task BadUsageExitsWith2AndSaysWhy()
    {
        var r = await _holder.RunRawAsync(["5x"], TimeSpan.FromSeconds(30));
        var none = await _holder.RunRawAsync([], TimeSpan.FromSeconds(30));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(r.ExitCode, Is.EqualTo(2));
            Assert.That(r.Errors, Has.Some.Contains("'5x' is not HOLD_MS[@START_MS]"));
            Assert.That(none.ExitCode, Is.EqualTo(2));
            Assert.That(none.Errors, Has.Some.StartsWith("usage: teeholder"));
        }
    }
}
