using Hil.Model.Conformance;
using Hil.Workloads.Tracing;
using Hil.Workloads.Tracing.Module;
using Hil.Workloads.Tracing.Planning;
using static Hil.Workloads.Tests.TracingTestSupport;

namespace Hil.Workloads.Tests;

/// <summary>
/// The planner on the real optee.ko code of both board kernels (Debian 6.12 with system threads,
/// Debian 6.1 without): sites, registers and offsets found from the disassembly, and the exact
/// kprobe_events lines that result.
/// </summary>
[TestFixture]
public class TracingPlannerTests
{
    [Test]
    public void Kernel612_CodeAnalysisFindsTheWakeUpSiteInCompleteOneAndTheCounters()
    {
        var code = CallQueueAnalyzer.Analyze(Listing(Kernel612));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(code.CompletionOffset, Is.EqualTo(0x10));
            Assert.That(code.DoneOffset, Is.EqualTo(0x10));
            Assert.That(code.Woken.Location, Is.EqualTo("optee_cq_wait_for_completion+0x2c"));
            Assert.That(code.Woken.RegisterName, Is.EqualTo("x19"));
            Assert.That(code.FirstWakeUpReturn?.Location, Is.EqualTo("optee_cq_complete_one+0x60"));
            Assert.That(code.WakeUps.Select(s => $"{s.Location} {s.RegisterName}"), Is.EqualTo(new[] { "optee_cq_complete_one+0x5c x0" }));
            Assert.That(code.HasSysArgument, Is.True);
            // The same offsets BTF gives for struct optee_call_queue on this kernel (pahole): 48, 52, 56.
            Assert.That((code.TotalOffset, code.FreeOffset, code.SysReqOffset), Is.EqualTo((48, 52, 56)));
        }
    }

    [Test]
    public void Kernel61_CodeAnalysisFindsBothInlinedWakeUpsInWaitFinalAndNoCounting()
    {
        var code = CallQueueAnalyzer.Analyze(Listing(Kernel61));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(code.CompletionOffset, Is.EqualTo(0x10));
            Assert.That(code.DoneOffset, Is.EqualTo(0x10));
            Assert.That(code.Woken.Location, Is.EqualTo("optee_cq_wait_for_completion+0x2c"));
            Assert.That(code.Woken.RegisterName, Is.EqualTo("x19"));
            Assert.That(code.WakeUps.Select(s => $"{s.Location} {s.RegisterName}"),
                Is.EqualTo(new[] { "optee_cq_wait_final+0x94 x0", "optee_cq_wait_final+0xfc x0" }));
            Assert.That(code.FirstWakeUpReturn?.Location, Is.EqualTo("optee_cq_wait_final+0x98"), "complete_one inlined: after the first of its two copies");
            Assert.That(code.HasSysArgument, Is.False);
            Assert.That(code.Counts, Is.False);
        }
    }

    [Test]
    public void CompleteCallsOutsideTheCallQueueAreNotWakeUpSites()
    {
        // optee_notif_send completes a notification, not a call-queue waiter.
        foreach (var k in new[] { Kernel612, Kernel61 })
        {
            var listing = Listing(k);
            Assert.That(listing.Require("optee_notif_send").Instructions.Any(i => i.CallTarget == "complete"), Is.True, k);
            Assert.That(CallQueueAnalyzer.Analyze(listing).WakeUps.Select(s => s.Function), Has.None.EqualTo("optee_notif_send"), k);
        }
    }

    [Test]
    public void AWakeUpHelperInlinedOutsideTheCallQueueFunctions_IsStillAWakeUpSite()
    {
        // Our v9 patch's build: optee_cq_complete_one is inlined into optee_cq_wait_final and
        // optee_close_session_helper (closing a system session wakes a waiter). Missing the
        // second site once made a real wake-up invisible and the checker blamed the patch.
        var listing = ObjdumpListing.Parse(ReadFixture("optee-6.12-v9-patch.objdump.txt"), "optee-6.12-v9-patch.objdump.txt");
        var code = CallQueueAnalyzer.Analyze(listing);
        Assert.That(code.WakeUps.Select(s => s.Function).Distinct(),
            Is.EquivalentTo(new[] { "optee_cq_wait_final", "optee_close_session_helper" }));
        Assert.That(code.WakeUps.Select(s => s.Function), Has.None.StartsWith("optee_notif_").And.None.StartsWith("optee_supp_"));
        // Inlined: the first wake-up of wait_final returns to the instruction after its bl complete.
        var first = code.WakeUps.Where(s => s.Function == "optee_cq_wait_final").MinBy(s => s.Offset)!;
        Assert.That(code.FirstWakeUpReturn, Is.EqualTo(first with { Offset = first.Offset + 4, Evidence = code.FirstWakeUpReturn!.Evidence }));
    }

    [Test]
    public void Kernel612_WithBtfArguments_PlanReadsTheCountersByNameWithComputedFallbacks()
    {
        var plan = ProbePlanner.Plan(Facts(Kernel612, btfArgs: true), Listing(Kernel612));
        Assert.That(plan.Lines("g"), Is.EqualTo(new[]
        {
            "p:g/wait_init optee_cq_wait_init w=w sys=sys_thread total=cq->total_thread_count free=cq->free_thread_count sysreq=cq->sys_thread_req_count",
            "r:g/admitted optee_cq_wait_init free=cq->free_thread_count sysreq=cq->sys_thread_req_count",
            "p:g/block optee:optee_cq_wait_for_completion w=%x1",
            "p:g/woken optee:optee_cq_wait_for_completion+0x2c w=%x19",
            "p:g/complete optee:optee_cq_complete_one+0x5c c=%x0",
            "p:g/final optee_cq_wait_final w=w free=cq->free_thread_count sysreq=cq->sys_thread_req_count done=w->c.done",
            "r:g/sys_register optee_system_session session=session ret=$retval:s32",
            "p:g/close_begin optee_close_session_helper session=session sys=system_thread",
        }));
        var wait = plan.Probes.Single(p => p.Kind == TraceKind.WaitInit);
        Assert.That(wait.Definitions[1], Is.EqualTo("optee:optee_cq_wait_init w=%x1 sys=%x2:u8 total=+48(%x0):s32 free=+52(%x0):s32 sysreq=+56(%x0):s32"));
        Assert.That(plan.Probes.Single(p => p.Kind == TraceKind.Complete).WaiterFromCompletion, Is.EqualTo(0x10));
        Assert.That(plan.Kinds, Is.EqualTo(new[] { TraceKind.WaitInit, TraceKind.Admitted, TraceKind.Block, TraceKind.Woken, TraceKind.Complete,
            TraceKind.Final, TraceKind.SmcBegin, TraceKind.SmcEnd, TraceKind.SysRegister, TraceKind.CloseBegin }));
    }

    [Test]
    public void Kernel612_WithoutBtfArguments_PlanReadsTheCountersAtComputedOffsets()
    {
        var plan = ProbePlanner.Plan(Facts(Kernel612, btfArgs: false), Listing(Kernel612));
        Assert.That(plan.Lines("g").Take(6), Is.EqualTo(new[]
        {
            "p:g/wait_init optee:optee_cq_wait_init w=%x1 sys=%x2:u8 total=+48(%x0):s32 free=+52(%x0):s32 sysreq=+56(%x0):s32",
            "r:g/admitted optee:optee_cq_wait_init",
            "p:g/block optee:optee_cq_wait_for_completion w=%x1",
            "p:g/woken optee:optee_cq_wait_for_completion+0x2c w=%x19",
            "p:g/complete optee:optee_cq_complete_one+0x5c c=%x0",
            "p:g/final optee:optee_cq_wait_final w=%x1 done=+16(%x1):u32 free=+52(%x0):s32 sysreq=+56(%x0):s32",
        }));
        Assert.That(plan.Probes.All(p => p.Definitions.Count == 1), Is.True, "no BTF variant to try first");
    }

    [Test]
    public void Kernel61_PlanHasTwoWakeUpProbesAndNoSystemSessionProbes()
    {
        var plan = ProbePlanner.Plan(Facts(Kernel61, btfArgs: false), Listing(Kernel61));
        Assert.That(plan.Lines("g"), Is.EqualTo(new[]
        {
            "p:g/wait_init optee:optee_cq_wait_init w=%x1",
            "r:g/admitted optee:optee_cq_wait_init",
            "p:g/block optee:optee_cq_wait_for_completion w=%x1",
            "p:g/woken optee:optee_cq_wait_for_completion+0x2c w=%x19",
            "p:g/complete0 optee:optee_cq_wait_final+0x94 c=%x0",
            "p:g/complete1 optee:optee_cq_wait_final+0xfc c=%x0",
            "p:g/final optee:optee_cq_wait_final w=%x1 done=+16(%x1):u32",
        }));
        Assert.That(plan.Kinds, Does.Not.Contain(TraceKind.SysRegister).And.Not.Contain(TraceKind.CloseBegin));
        Assert.That(plan.Tracepoints.Select(t => t.Event), Is.EqualTo(new[] { KernelFacts.InvokeBegin, KernelFacts.InvokeEnd }));
    }

    [Test]
    public void Kernel61_BtfArgumentsAreNotUsedWhereTheDriverDoesNotCount()
    {
        var plan = ProbePlanner.Plan(Facts(Kernel61, btfArgs: true), Listing(Kernel61));
        Assert.That(plan.Probes.SelectMany(p => p.Definitions), Has.All.StartsWith("optee:"));
        Assert.That(plan.Notes, Has.Some.Contains("no thread counting"));
    }

    [Test]
    public void AWakeUpSiteInAFunctionKallsymsDoesNotListIsDroppedWithANote()
    {
        var facts = Facts(Kernel612, btfArgs: true);
        facts = facts with { OpteeFunctions = facts.OpteeFunctions.Where(f => f != "optee_cq_complete_one").ToHashSet() };
        var plan = ProbePlanner.Plan(facts, Listing(Kernel612));
        Assert.That(plan.Kinds, Does.Not.Contain(TraceKind.Complete));
        Assert.That(plan.Notes, Has.Some.Contains("optee_cq_complete_one+0x5c"));
    }

    [Test]
    public void AKernelWithoutTheCallQueueFunctionsIsRefusedByName()
    {
        var facts = Facts(Kernel61, btfArgs: false) with { OpteeFunctions = new HashSet<string> { "optee_cq_wait_init" } };
        var ex = Assert.Throws<TracingException>(() => ProbePlanner.Plan(facts, Listing(Kernel61)));
        Assert.That(ex!.Message, Does.Contain("optee_cq_wait_for_completion"));
    }

    [Test]
    public void ADisassemblyWithoutTheSleepIsRefusedByName()
    {
        var text = string.Join('\n',
            "Disassembly of section .text:", "",
            "0000000000000000 <optee_cq_wait_for_completion>:",
            "       0:\td503201f \tnop",
            "       4:\td65f03c0 \tret");
        var ex = Assert.Throws<DisassemblyException>(() => CallQueueAnalyzer.Analyze(ObjdumpListing.Parse(text, "synthetic")));
        Assert.That(ex!.Message, Does.Contain("never calls wait_for_completion"));
    }

    [Test]
    public void ListingKeepsRelocationTargetsAndFunctionOffsets()
    {
        var f = Listing(Kernel612).Require("optee_cq_complete_one");
        var call = f.Instructions.Single(i => i.CallTarget == "complete");
        Assert.That((call.Offset, call.Mnemonic, call.Relocation), Is.EqualTo((0x5c, "bl", "complete")));
        // An intra-module call carries no relocation: objdump's own annotation names it.
        var final = Listing(Kernel612).Require("optee_cq_wait_final");
        Assert.That(final.Instructions.Count(i => i.CallTarget == "optee_cq_complete_one"), Is.EqualTo(2));
    }

    [Test]
    public void FactsParseTheBoardsOwnReport()
    {
        var facts = KernelFacts.Parse(ReadFixture("facts-6.12.txt"));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(facts.Release, Is.EqualTo(Kernel612));
            Assert.That(facts.OpteeFunctions, Does.Contain("optee_cq_complete_one").And.Contain("optee_system_session"));
            Assert.That(facts.CanUseBtfArgs, Is.True);
            Assert.That(facts.Instances, Is.True);
            Assert.That(facts.Tracepoints, Has.Count.EqualTo(2));
            Assert.That(facts.OpteeBuildId, Is.EqualTo("d08613c2aa4af08a70cde1cf9bcb968d405c1786"));
        }
        var old = KernelFacts.Parse(ReadFixture("facts-6.1.txt"));
        Assert.That((old.Release, old.CanUseBtfArgs, old.OpteeFunctions.Contains("optee_cq_complete_one")), Is.EqualTo((Kernel61, false, false)));
    }

    [Test]
    public void FactsWithoutKprobeEventsAreRefused()
    {
        var ex = Assert.Throws<TracingException>(() => KernelFacts.Parse("release=6.1.0\nsym=optee_cq_wait_init\n"));
        Assert.That(ex!.Message, Does.Contain("kprobe_events"));
    }

    [Test]
    public void BuildIdOfTheSysfsNoteMatchesTheElfNote()
    {
        Assert.That(ElfBuildId.FromHexDump(" 04 00 00 00 14 00 00 00 03 00 00 00 47 4e 55 00\n d0 86 13 c2 aa 4a f0 8a 70 cd e1 cf 9b cb 96 8d\n 40 5c 17 86"),
            Is.EqualTo("d08613c2aa4af08a70cde1cf9bcb968d405c1786"));
        var module = new OpteeModuleFile("x.ko", "test", "0011");
        var facts = Facts(Kernel612, true) with { OpteeBuildId = "d08613c2aa4af08a70cde1cf9bcb968d405c1786" };
        Assert.Throws<DisassemblyException>(() => module.CheckMatches(facts));
    }
}
