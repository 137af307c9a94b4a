using System.Diagnostics;
using Hil.Model.Conformance;
using Hil.Qemu.Board;
using Hil.Suites.Common;
using Hil.Workloads.Kmod;
using Hil.Workloads.Tracing;
using Hil.Workloads.Tracing.Session;
using Hil.Workloads.Xtest;
using static Hil.Workloads.Tests.TracingTestSupport;

namespace Hil.Workloads.Tests;

/// <summary>
/// The tracer on both QEMU boards (6.12 = mainline, 6.1 = legacy): probes planned from the image's
/// optee.ko, xtest traced, converted, and judged by the model under the board's own policy; the
/// board is left with exactly the kprobes and trace instances it had before.
/// The image is provisioned when the cache has none (CI starts from nothing).
/// </summary>
[TestFixture("qemu-optee")]
[TestFixture("qemu-optee-6.1")]
[NonParallelizable]
public class TracingBoardTests(string board)
{
    private QemuBoardSession _session = null!;
    private CallQueueTracing _tracing = null!;
    private string _asFound = "";
    private int _firmwareThreads;

    private static readonly TimeSpan XtestTimeout = TimeSpan.FromMinutes(8);

    [OneTimeSetUp]
    public async Task BootAsync()
    {
        _session = await QemuBoards.OpenAsync(BoardFile(board), new QemuBoardOptions { LogDirectory = TempDir("logs-" + board), Logger = Log });
        await _session.Board.BootAsync();
        // The trace is judged by the thread count OP-TEE itself reports (hil_cq's firmware file), as the suites do.
        var built = await new KmodBuilder(BuildCache.In(OnBoard.KmodBoards.Cache), Log).BuildAsync(_session.Image.LoadModuleKit());
        _firmwareThreads = (await (await KmodDriver.LoadAsync(_session.Board.Ssh, built, Log)).ReadFirmwareAsync()).ThreadCount
            ?? throw new InvalidOperationException($"{board}: OP-TEE gave no thread count");
        _tracing = CallQueueTracing.ForQemu(_session, Log) with { Threads = _firmwareThreads };
        _asFound = await TracingStateAsync();
    }

    [OneTimeTearDown]
    public async Task PowerOffAsync()
    {
        if (_session is not null) await _session.DisposeAsync();
    }

    /// <summary>Every kprobe event and trace instance on the board (what "as found" means).</summary>
    private async Task<string> TracingStateAsync()
    {
        var r = await _session.Board.Ssh.RunCheckedAsync("T=/sys/kernel/tracing; cat $T/kprobe_events; echo ---; ls $T/instances", TimeSpan.FromSeconds(30));
        return r.Stdout;
    }

    /// <summary>xtest's regression cases as the traced workload (Hil.Workloads.Xtest runs and parses them).</summary>
    private Func<TraceRun, CancellationToken, Task> Xtest(params string[] cases) => async (_, ct) =>
    {
        var r = await new XtestRunner(_session.Board.Ssh, Log).RunAsync(new XtestOptions { Cases = cases, Timeout = XtestTimeout, Timestamps = false }, ct);
        Assert.That(r.Passed, Is.True, $"xtest {string.Join(' ', cases)} failed (exit {r.ExitCode}):\n{r.Output[^Math.Min(r.Output.Length, 2000)..]}");
    };

    private void Report(string what, TracedRun run, ConformanceResult? result)
    {
        TestContext.Progress.WriteLine($"{board} {what}: {run.Stats}; workload {run.Capture.WorkloadTime.TotalSeconds:0.0} s; loss: {run.LossSummary}");
        TestContext.Progress.WriteLine($"{board} {what}: armed: {string.Join(" | ", run.Capture.Armed.Select(a => a.Line))}");
        if (result is not null)
            foreach (var line in ConformanceRendering.Text(result)) TestContext.Progress.WriteLine($"{board} {what}: {line}");
    }

    [Test, CancelAfter(15 * 60 * 1000)]
    public async Task Xtest1013_TraceIsCompleteConformsAndLeavesTheBoardAsFound(CancellationToken ct)
    {
        var output = TempDir($"1013-{board}");
        var clock = Stopwatch.StartNew();
        var run = await _tracing.RunAsync(Xtest("1013"), output, ct);
        TestContext.Progress.WriteLine($"{board} 1013: traced in {clock.Elapsed.TotalSeconds:0.0} s -> {run.TracePath}");
        var result = run.Check();
        Report("1013", run, result);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(run.Complete, Is.True, run.LossSummary);
            Assert.That(run.Stats.Count(TraceKind.WaitInit), Is.GreaterThan(300), "xtest 1013 makes hundreds of calls");
            Assert.That(run.Stats.Count(TraceKind.Final), Is.EqualTo(run.Stats.Count(TraceKind.WaitInit)).Within(3), "every call ends");
            Assert.That(run.Stats.Count(TraceKind.Block), Is.GreaterThan(10), "3 client threads against 2 secure threads must block");
            Assert.That(run.Stats.Count(TraceKind.Woken), Is.EqualTo(run.Stats.Count(TraceKind.Block)).Within(3));
            Assert.That(run.Stats.Count(TraceKind.Complete), Is.GreaterThan(0), "wake-up targets observed");
            Assert.That(run.Stats.Count(TraceKind.SmcBegin), Is.GreaterThan(run.Stats.Count(TraceKind.WaitInit)));
            Assert.That(result.Conforms, Is.True, string.Join("\n", ConformanceRendering.Text(result)));
            // The header's policy is told from the loaded driver's code, not the board file.
            Assert.That(result.Policy.Name, Is.EqualTo(board == "qemu-optee" ? "mainline" : "legacy"));
            Assert.That(result.Threads, Is.EqualTo(_firmwareThreads), "judged by the firmware's count");
            Assert.That(run.Capture.Cleanup.Clean, Is.True, run.Capture.Cleanup.ToString());
            Assert.That(await TracingStateAsync(), Is.EqualTo(_asFound), "kprobe_events and trace instances as found");
        }
    }

    [Test, CancelAfter(5 * 60 * 1000)]
    public async Task ShortXtestWithMarks_ConformsAndKeepsTheMarks(CancellationToken ct)
    {
        var run = await _tracing.RunAsync(async (r, c) =>
        {
            await r.MarkAsync("before 1001", c);
            await Xtest("1001", "1009")(r, c);
            await r.MarkAsync("after 1009", c);
        }, TempDir($"short-{board}"), ct);
        var result = run.Check();
        Report("1001+1009", run, result);
        var json = await File.ReadAllLinesAsync(run.TracePath, ct);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.Conforms, Is.True, string.Join("\n", ConformanceRendering.Text(result)));
            Assert.That(run.Stats.Count(TraceKind.Mark), Is.EqualTo(2));
            Assert.That(json.Count(l => l.Contains("\"ev\":\"mark\"") && l.Contains("before 1001")), Is.EqualTo(1));
            Assert.That(json, Has.None.Contains("hil-trace begin"), "the session's own markers are not events");
            Assert.That(json[0], Does.Contain("\"type\":\"header\"").And.Contain($"\"board\":\"{board}\""));
            Assert.That(await TracingStateAsync(), Is.EqualTo(_asFound));
        }
    }

    [Test, CancelAfter(5 * 60 * 1000)]
    public async Task WithoutAnInstance_TheMainBufferIsUsedAndItsSettingsRestored(CancellationToken ct)
    {
        const string Settings = "T=/sys/kernel/tracing; cat $T/trace_clock $T/buffer_size_kb $T/tracing_on $T/events/optee/optee_invoke_fn_begin/enable $T/events/optee/optee_invoke_fn_end/enable";
        var before = (await _session.Board.Ssh.RunCheckedAsync(Settings, TimeSpan.FromSeconds(30), ct)).Stdout;
        var tracing = CallQueueTracing.ForQemu(_session, Log) with { UseInstance = false };
        var run = await tracing.RunAsync(Xtest("1001"), TempDir($"main-{board}"), ct);
        var result = run.Check();
        Report("1001 (main buffer)", run, result);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(run.Capture.Instance, Is.Null);
            Assert.That(run.Stats.Count(TraceKind.WaitInit), Is.GreaterThan(0), "xtest 1001 makes calls (4 or 5 seen)");
            Assert.That(result.Conforms, Is.True, string.Join("\n", ConformanceRendering.Text(result)));
            Assert.That((await _session.Board.Ssh.RunCheckedAsync(Settings, TimeSpan.FromSeconds(30), ct)).Stdout, Is.EqualTo(before), "main buffer settings as found");
            Assert.That(await TracingStateAsync(), Is.EqualTo(_asFound));
        }
    }

    [Test, CancelAfter(5 * 60 * 1000)]
    public async Task AFailingWorkload_StillRemovesEveryProbeAndInstance(CancellationToken ct)
    {
        var armedSeen = "";
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => _tracing.RunAsync(async (r, c) =>
        {
            armedSeen = (await r.Shell.RunAsync("cat /sys/kernel/tracing/kprobe_events; ls /sys/kernel/tracing/instances", TimeSpan.FromSeconds(30), c)).Stdout;
            throw new InvalidOperationException("workload broke");
        }, TempDir($"fail-{board}"), ct));
        Assert.That(ex!.Message, Is.EqualTo("workload broke"));
        Assert.That(armedSeen, Does.Contain("optee_cq_wait_init").And.Contain("hil-"), "probes and instance were there during the run");
        Assert.That(await TracingStateAsync(), Is.EqualTo(_asFound));
    }
}
