using Hil.Workloads.Tracing;
using Hil.Workloads.Tracing.Planning;
using static Hil.Workloads.Tests.TracingTestSupport;

namespace Hil.Workloads.Tests;

/// <summary>
/// The driver's call-queue policy told from the real optee.ko code of both board kernels, and a
/// driver that is neither refused with what its code showed.
/// </summary>
[TestFixture]
public class DriverPolicyTests
{
    [Test]
    public void Kernel612_DriverIsMainline_FromItsSysArgumentAndCounters()
    {
        var policy = DriverPolicy.From(CallQueueAnalyzer.Analyze(Listing(Kernel612)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(policy.Name, Is.EqualTo("mainline"));
            Assert.That(policy.IsKnown, Is.True);
            Assert.That(policy.Evidence, Does.Contain("takes sys_thread").And.Contain("free +52"));
            Assert.That(policy.Require("board x"), Is.EqualTo("mainline"));
        }
    }

    [Test]
    public void Kernel61_DriverIsLegacy_NoSysArgumentNoCounters()
    {
        var policy = DriverPolicy.From(CallQueueAnalyzer.Analyze(Listing(Kernel61)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(policy.Name, Is.EqualTo("legacy"));
            Assert.That(policy.Evidence, Does.Contain("no sys_thread argument").And.Contain("no thread counters"));
        }
    }

    // Half of the v6.8 change in either direction: no rules for it in the model.
    [TestCase(true, false, "takes sys_thread, no thread counters")]
    [TestCase(false, true, "no sys_thread argument, struct optee_call_queue counts threads")]
    public void AnyOtherDriverIsUnknown_AndRequiringItsPolicyNamesWhatTheCodeShowed(bool sys, bool counts, string evidence)
    {
        var code = CallQueueAnalyzer.Analyze(Listing(counts ? Kernel612 : Kernel61)) with { HasSysArgument = sys };
        var policy = DriverPolicy.From(code);
        Assert.That(policy.IsKnown, Is.False);
        Assert.That(policy.Name, Is.Null);
        var ex = Assert.Throws<TracingException>(() => policy.Require("board b (optee.ko 1234)"));
        Assert.That(ex!.Message, Does.StartWith("board b (optee.ko 1234): unknown OP-TEE driver: ").And.Contain(evidence).And.Contain("mainline").And.Contain("legacy"));
    }
}
