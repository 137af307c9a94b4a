using Hil.Boards;
using Hil.Boards.Failures;
using Hil.Model.Conformance;
using Hil.Qemu.Board;
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
/// header's policy and thread count come from the board file's facts (kernel_policy, optee_threads),
/// which are what the suites judge the board by.
/// </summary>
public sealed record CallQueueTracing(Board Board, ILogger Logger)
{
    /// <summary>
    /// Where the optee.ko comes from. Default: the board file's facts.optee_module (a host path), else
    /// the file the board itself loaded, downloaded over SSH. QEMU boards use their image (see <see cref="ForQemu"/>).
    /// </summary>
    public Func<string, CancellationToken, Task<OpteeModuleFile>> ModuleSource { get; init; } = (work, ct) =>
        Board.Spec.Facts.TryGetValue("optee_module", out var path)
            ? Task.FromResult(OpteeModuleFile.FromHostFile(path))
            : OpteeModuleFile.FromBoardAsync(Board.Ssh, work, ct);

    public TraceOptions Options { get; init; } = new();

    /// <summary>Record in a trace instance of our own when the kernel has them (false: the main buffer, settings restored after).</summary>
    public bool UseInstance { get; init; } = true;

    public static CallQueueTracing ForQemu(QemuBoardSession session, ILogger logger) => new(session.Board, logger)
    {
        ModuleSource = (work, _) => Task.FromResult(OpteeModuleFile.FromQemuImage(session.Image, work)),
    };

    public CallQueueTracer Tracer => new(new SshTraceShell(Board.Ssh), Logger);

    /// <summary>Facts, module, plan: everything short of arming (also what `hil trace --plan` prints).</summary>
    public async Task<ProbePlan> PlanAsync(string workDirectory, CancellationToken ct = default)
    {
        var facts = await Tracer.ReadFactsAsync(ct).ConfigureAwait(false);
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

    /// <summary>Traces <paramref name="workload"/> and writes cq-trace.jsonl and ftrace.txt into <paramref name="outputDirectory"/>.</summary>
    public async Task<TracedRun> RunAsync(Func<TraceRun, CancellationToken, Task> workload, string outputDirectory, CancellationToken ct = default)
    {
        Directory.CreateDirectory(outputDirectory);
        var plan = await PlanAsync(outputDirectory, ct).ConfigureAwait(false);
        if (!UseInstance) plan = plan with { Facts = plan.Facts with { Instances = false } };
        var capture = await Tracer.TraceAsync(plan, workload, Options, ct).ConfigureAwait(false);
        var ftracePath = Path.Combine(outputDirectory, "ftrace.txt");
        await File.WriteAllTextAsync(ftracePath, capture.Text, ct).ConfigureAwait(false);
        var header = HeaderFor(Board, plan);
        var tracePath = Path.Combine(outputDirectory, "cq-trace.jsonl");
        ConversionStats stats;
        await using (var output = File.Create(tracePath))
            stats = capture.Converter.Convert(new StringReader(capture.Text), header, output);
        var run = new TracedRun(plan, capture, header, stats, tracePath, ftracePath);
        Logger.Information("call-queue trace {Path}: {Stats}", tracePath, stats);
        if (!run.Complete) Logger.Warning("call-queue trace {Path} is INCOMPLETE: {Loss}", tracePath, run.LossSummary);
        return run;
    }

    public static CqTraceHeader HeaderFor(Board board, ProbePlan plan)
    {
        var policy = board.Spec.Facts.GetValueOrDefault("kernel_policy")
            ?? throw new TracingException($"{board.Spec.SourceFile}: facts.kernel_policy is needed to judge the trace (legacy, mainline, ...)");
        var threads = board.Spec.OpteeThreads
            ?? throw new TracingException($"{board.Spec.SourceFile}: facts.optee_threads is needed to judge the trace");
        return new CqTraceHeader(policy, threads, plan.Facts.Release, plan.Kinds, board.Spec.Name);
    }
}
