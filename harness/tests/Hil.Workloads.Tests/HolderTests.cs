using Hil.Workloads.Holder;

namespace Hil.Workloads.Tests;

/// <summary>teeholder's plan, command line and output, on output it printed on the 6.1 board.</summary>
public class HolderTests
{
    // Three holders on two secure threads: the third (200 ms late) waits for a thread.
    private const string Stdout61 = """
        ready holders=3 t0_ns=106828368176
        call index=1 start_ms=0 hold_ms=1000 tid=153 due_ns=106828368176 req_ns=106832957312 ret_ns=107874215104 res=0x00000000 origin=4
        call index=0 start_ms=0 hold_ms=1000 tid=152 due_ns=106828368176 req_ns=106836971744 ret_ns=107886303520 res=0x00000000 origin=4
        call index=2 start_ms=200 hold_ms=500 tid=154 due_ns=107028368176 req_ns=107029378608 ret_ns=108421932608 res=0x00000000 origin=4
        done holders=3 failed=0
        """;

    [Test]
    public void PlanBecomesArguments()
    {
        var plan = new HolderPlan([new HolderCall(1000), new HolderCall(1000), new HolderCall(500, 200)], leadMs: 50);
        Assert.That(plan.Arguments(), Is.EqualTo(new[] { "--lead", "50", "1000", "1000", "500@200" }));
        Assert.That(plan.Span, Is.EqualTo(TimeSpan.FromMilliseconds(1050)));
        Assert.That(HolderPlan.Saturate(2, 300).Arguments(), Is.EqualTo(new[] { "--lead", "10", "300", "300" }));
    }

    [Test]
    public void BadPlansAreRefusedHere()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new HolderCall(HolderCall.MaxHoldMs + 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new HolderCall(1, HolderCall.MaxStartMs + 1));
        Assert.Throws<ArgumentException>(() => _ = new HolderPlan([]));
        Assert.Throws<ArgumentException>(() => HolderPlan.Saturate(HolderPlan.MaxHolders + 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new HolderPlan([new HolderCall(1)], HolderPlan.MaxLeadMs + 1));
    }

    [Test]
    public void CommandLineQuotesThePathAndBoundsTheRun()
    {
        var line = HolderRunner.CommandLine("/tmp/hil/tee holder", ["--lead", "10", "500@200"], TimeSpan.FromSeconds(61.5));
        Assert.That(line, Is.EqualTo("timeout 62 '/tmp/hil/tee holder' --lead 10 500@200"));
        Assert.That(HolderRunner.CommandLine("/x", ["$(reboot)"], TimeSpan.FromSeconds(1)), Is.EqualTo("timeout 1 /x '$(reboot)'"));
    }

    [Test]
    public void OutputParsesIntoCallsInHolderOrder()
    {
        var r = HolderOutput.Parse(Stdout61, "", 0);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(r.Succeeded, Is.True);
            Assert.That(r.Holders, Is.EqualTo(3));
            Assert.That(r.T0Ns, Is.EqualTo(106828368176UL));
            Assert.That(r.Calls.Select(c => c.Index), Is.EqualTo(new[] { 0, 1, 2 }));
            Assert.That(r.Call(2).StartMs, Is.EqualTo(200u));
            Assert.That(r.Call(2).RequestOffsetMs(r.T0Ns!.Value), Is.EqualTo(201.01).Within(0.01));
            // It waited for a thread: returned 1.39 s after asking for 0.5 s.
            Assert.That(r.Call(2).Duration.TotalMilliseconds, Is.EqualTo(1392.55).Within(0.01));
            Assert.That(r.Call(0).Tid, Is.EqualTo(152));
        }
    }

    [Test]
    public void FailuresAndUsageErrorsAreReported()
    {
        var failed = HolderOutput.Parse("ready holders=1 t0_ns=5\ndone holders=1 failed=1\n",
            "teeholder: holder 0: TEEC_OpenSession failed: 0xffff0008 (origin 3)\n", 1);
        Assert.That(failed.Succeeded, Is.False);
        Assert.That(failed.Errors, Is.EqualTo(new[] { "teeholder: holder 0: TEEC_OpenSession failed: 0xffff0008 (origin 3)" }));
        var usage = HolderOutput.Parse("", "teeholder: '5x' is not HOLD_MS[@START_MS] (whole milliseconds, hold up to 600000, start up to 600000)\n", 2);
        Assert.That((usage.Succeeded, usage.Holders, usage.ExitCode), Is.EqualTo((false, (int?)null, 2)));
        var notSuccess = HolderOutput.Parse(Stdout61.Replace("res=0x00000000 origin=4\ndone", "res=0xffff0002 origin=4\ndone", StringComparison.Ordinal), "", 1);
        Assert.That(notSuccess.Call(2).Succeeded, Is.False);
        Assert.Throws<FormatException>(() => HolderOutput.Parse("hello\n", "", 0));
        Assert.Throws<FormatException>(() => HolderOutput.Parse("ready holders=2 t0_ns=1\ndone holders=3 failed=0\n", "", 0));
    }

    [Test]
    public void CompilerArgumentsUseTheProvisionedLibteec()
    {
        var sysroot = new Hil.Kernel.LibteecSysroot("/c/libteec", "/c/libteec/usr/include", "/c/libteec/usr/lib/aarch64-linux-gnu", "4.5.0-1");
        var args = HolderBuilder.CompilerArguments(sysroot, "/src/teeholder.c", "/out/teeholder");
        Assert.That(args, Does.Contain("-I/c/libteec/usr/include").And.Contain("-L/c/libteec/usr/lib/aarch64-linux-gnu")
            .And.Contain("-lteec").And.Contain("-Werror"));
        Assert.That(args.ToList().IndexOf("-o"), Is.EqualTo(args.ToList().IndexOf("/out/teeholder") - 1));
    }
}
