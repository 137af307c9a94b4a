using Hil.Boards;
using Hil.Boards.Failures;
using Hil.Model.Conformance;
using Hil.Workloads.Tracing.Conversion;
using Hil.Workloads.Tracing.Module;
using Hil.Workloads.Tracing.Planning;
using Hil.Workloads.Tracing.Session;
using Serilog;

namespace Hil.Workloads.Tracing;

/// <summary>A traced workload: the plan, the raw capture, and the converted hil-cq-trace file.</summary>
public sealed record TracedRun(ProbePlan Plan, TraceCapture Capture, CqTraceHeader Header, ConversionStats Stats, string TracePath, string FtracePath)
{
    /// <summary>No event was lost (buffer overrun, drop, kprobe miss): only then can the model judge the trace.</summary>
    public bool Complete => Capture.Loss.Total == 0 && !Stats.Lossy;

    public string LossSummary => $"{Capture.Loss}; in the text: {Stats.LostEvents} lost{(Stats.OverwrittenCpus.Count > 0 ? ", CPU buffers overwritten" : "")}";

    /// <summary>
    /// Replays the trace against the model. An incomplete trace is refused: a missing line could
    /// turn a divergence into conformance or the reverse, so it must be flagged, not judged.
    /// </summary>
    public ConformanceResult Check(ConformanceOptions? options = null, bool allowIncomplete = false)
    {
        if (!Complete && !allowIncomplete)
            throw new TracingException($"{TracePath}: the trace lost events ({LossSummary}); it cannot be checked against the model " +
                                       "(raise TraceOptions.BufferSizeKb or shorten the workload)", failureClass: FailureClass.Infrastructure);
        return ConformanceChecker.Check(() => File.OpenRead(TracePath), TracePath, options);
    }
}

/// <summary>
/// The whole tracing job on one board: read the kernel's facts, get the optee.ko the board runs
/// (checked by build ID), plan the probes from its disassembly, trace the workload, convert. The
/// header's policy is the loaded driver's own (<see cref="DriverPolicy"/>, from the same
/// disassembly); its thread count is <see cref="Threads"/>, measured on the board by the caller.
/// </summary>
public sealed record CallQueueTracing(Board Board, ILogger Logger)
{
    /// <summary>
    /// Where the optee.ko comes from. Default: the board file's facts.optee_module (a host path), else
    /// the file the board itself loaded, downloaded over SSH. QEMU boards use their image (CallQueueTracing.ForQemu, in Hil.Suites.Common).
    /// </summary>
    public Func<string, CancellationToken, Task<OpteeModuleFile>> ModuleSource { get; init; } = (work, ct) =>
        Board.Spec.Facts.TryGetValue("optee_module", out var path)
            ? Task.FromResult(OpteeModuleFile.FromHostFile(path))
            : OpteeModuleFile.FromBoardAsync(Board.Ssh, work, ct);

    public TraceOptions Options { get; init; } = new();

    /// <summary>
    /// OP-TEE's thread count as measured on this boot (the suites read it from the firmware). Null:
    /// the board file's facts.optee_threads, for tools run by hand without a measurement.
    /// </summary>
    public int? Threads { get; init; }

    /// <summary>
    /// The policy the trace's header names, when it is not the driver's own: a patched driver under
    /// test is judged by the policy its patch claims (null: the loaded driver's, told from its code).
    /// </summary>
    public string? Policy { get; init; }

    /// <summary>Record in a trace instance of our own when the kernel has them (false: the main buffer, settings restored after).</summary>
    public bool UseInstance { get; init; } = true;

    public CallQueueTracer Tracer => new(new SshTraceShell(Board.Ssh), Logger);

    /// <summary>Facts, module, plan: everything short of arming (also what `hil trace --plan` prints).</summary>
    public async Task<ProbePlan> PlanAsync(string workDirectory, CancellationToken ct = default) =>
        await PlanAsync(await Tracer.ReadFactsAsync(ct).ConfigureAwait(false), workDirectory, ct).ConfigureAwait(false);

    /// <summary>The plan for facts already read (by a caller that gathered them with other board reads in one round trip).</summary>
    public async Task<ProbePlan> PlanAsync(KernelFacts facts, string workDirectory, CancellationToken ct = default)
    {
        var module = await ModuleSource(workDirectory, ct).ConfigureAwait(false);
        if (facts.OpteeBuildId is null || module.BuildId is null)
            Logger.Warning("optee module build IDs not both known (board {Board}, file {File}): cannot prove {Origin} is the loaded module",
                facts.OpteeBuildId ?? "?", module.BuildId ?? "?", module.Origin);
        module.CheckMatches(facts);
        var plan = ProbePlanner.Plan(facts, await module.DisassembleAsync(ct).ConfigureAwait(false));
        foreach (var line in plan.Code.Describe().Concat(plan.Notes))
            Logger.Information("probe plan for {Kernel} ({Origin}): {Line}", facts.Release, module.Origin, line);
        return plan;
    }

    /// <summary>
    /// The loaded driver's call-queue code without a probe plan: the module file, checked against
    /// the board's by build ID, and what its disassembly says (enough to tell its <see cref="DriverPolicy"/>).
    /// </summary>
    public async Task<(OpteeModuleFile Module, CallQueueCode Code)> DriverCodeAsync(KernelFacts facts, string workDirectory, CancellationToken ct = default)
    {
        var module = await ModuleSource(workDirectory, ct).ConfigureAwait(false);
        module.CheckMatches(facts);
        return (module, CallQueueAnalyzer.Analyze(await module.DisassembleAsync(ct).ConfigureAwait(false)));
    }

    /// <summary>Traces <paramref name="workload"/> and writes cq-trace.jsonl and ftrace.txt into <paramref name="outputDirectory"/>.</summary>
    public async Task<TracedRun> RunAsync(Func<TraceRun, CancellationToken, Task> workload, string outputDirectory, CancellationToken ct = default)
    {
        Directory.CreateDirectory(outputDirectory);
        var plan = await PlanAsync(outputDirectory, ct).ConfigureAwait(false);
        if (!UseInstance) plan = plan with { Facts = plan.Facts with { Instances = false } };
        var capture = await Tracer.TraceAsync(plan, workload, Options, ct).ConfigureAwait(false);
        var ftracePath = Path.Combine(outputDirectory, "ftrace.txt");
        await File.WriteAllTextAsync(ftracePath, capture.Text, ct).ConfigureAwait(false);
        var header = HeaderFor(Board, plan, Threads, Policy);
        var tracePath = Path.Combine(outputDirectory, "cq-trace.jsonl");
        ConversionStats stats;
        await using (var output = File.Create(tracePath))
            stats = capture.Converter.Convert(new StringReader(capture.Text), header, output);
        var run = new TracedRun(plan, capture, header, stats, tracePath, ftracePath);
        Logger.Information("call-queue trace {Path}: {Stats}", tracePath, stats);
        if (!run.Complete) Logger.Warning("call-queue trace {Path} is INCOMPLETE: {Loss}", tracePath, run.LossSummary);
        return run;
    }

    /// <summary>The trace's header: the policy of the driver the plan was made from, and the thread count given (else the board file's).</summary>
    public static CqTraceHeader HeaderFor(Board board, ProbePlan plan, int? threads = null, string? policy = null)
    {
        policy ??= DriverPolicy.From(plan.Code).Require($"{board.Spec.Name}: optee.ko of kernel {plan.Facts.Release}");
        var n = threads ?? board.Spec.OpteeThreads
            ?? throw new TracingException($"{board.Spec.SourceFile}: OP-TEE's thread count is needed to judge the trace: measure it (hil_cq's firmware file) or write facts.optee_threads");
        return new CqTraceHeader(policy, n, plan.Facts.Release, plan.Kinds, board.Spec.Name);
    }
}
