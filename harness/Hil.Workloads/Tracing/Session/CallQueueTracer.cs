using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Hil.Boards.Failures;
using Hil.Boards.Shell;
using Hil.Workloads.Tracing.Conversion;
using Hil.Workloads.Tracing.Planning;
using Serilog;

namespace Hil.Workloads.Tracing.Session;

/// <summary>How to trace.</summary>
public sealed record TraceOptions
{
    /// <summary>Trace buffer per CPU. xtest 1013 writes ~20,000 lines (~1.5 MB); the default leaves room for longer runs.</summary>
    public int BufferSizeKb { get; init; } = 8192;
    /// <summary>Limit for each tracefs command (arming, enabling, cleaning up).</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Limit for reading the whole buffer back.</summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromMinutes(5);
}

/// <summary>A probe as written to kprobe_events: its unique event name and the definition the kernel took.</summary>
public sealed record ArmedProbe(PlannedProbe Probe, string EventName, string Line, int Choice)
{
    public bool UsedFallback => Choice > 0;
}

/// <summary>Events the kernel could not record: ring-buffer overruns and drops per CPU, and kprobe misses.</summary>
public sealed record BufferLoss(long Overrun, long Dropped, long ProbeMisses)
{
    public long Total => Overrun + Dropped + ProbeMisses;
    public BufferLoss Minus(BufferLoss before) => new(Overrun - before.Overrun, Dropped - before.Dropped, ProbeMisses - before.ProbeMisses);
    public override string ToString() => $"overrun {Overrun}, dropped {Dropped}, kprobe misses {ProbeMisses}";
}

/// <summary>Whether the board was left as found: nothing of this session in kprobe_events or instances.</summary>
public sealed record CleanupReport(bool Clean, IReadOnlyList<string> Remaining, IReadOnlyList<string> Errors)
{
    public override string ToString() => Clean ? "clean: no probe or instance of this session remains"
        : $"NOT clean: {string.Join("; ", Remaining.Concat(Errors))}";
}

/// <summary>A finished trace: the raw ftrace text and what is needed to read and judge it.</summary>
public sealed record TraceCapture(
    ProbePlan Plan,
    string Group,
    string? Instance,
    IReadOnlyList<ArmedProbe> Armed,
    string Text,
    BufferLoss Loss,
    CleanupReport Cleanup,
    TimeSpan WorkloadTime,
    string SessionToken)
{
    public CqTraceConverter Converter => CqTraceConverter.For(Plan, SessionToken, sharedBuffer: Instance is null);
}

/// <summary>What the workload gets while the trace runs.</summary>
public sealed class TraceRun(ITraceShell shell, string instancePath, TimeSpan timeout)
{
    public ITraceShell Shell => shell;

    /// <summary>Writes a label into the trace (becomes a "mark" event, ignored by the model).</summary>
    public async Task MarkAsync(string text, CancellationToken ct = default)
    {
        var r = await shell.RunAsync($"echo {ShellQuote.Quote(text)} > {ShellQuote.Quote(instancePath + "/trace_marker")}", timeout, ct).ConfigureAwait(false);
        if (!r.Succeeded) throw new TracingException($"trace marker: {r.Stderr.Trim()}", failureClass: FailureClass.Infrastructure);
    }
}

/// <summary>
/// Traces the OP-TEE call queue on a board through tracefs: arms the plan's kprobes (kprobe_events
/// is global), records them in a trace instance of its own (so the main buffer and anyone else's
/// tracing stay untouched; without instances, the main buffer with its settings saved and restored),
/// runs the workload, reads the whole buffer back, and removes everything it made — in a finally,
/// so a failed workload leaves the board as found too — then checks that nothing of it remains.
/// </summary>
public sealed class CallQueueTracer(ITraceShell shell, ILogger logger)
{
    private readonly ILogger _log = logger.ForContext<CallQueueTracer>();

    public async Task<KernelFacts> ReadFactsAsync(CancellationToken ct = default)
    {
        var r = await shell.RunAsync(KernelFacts.Command, TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
        if (!r.Succeeded) throw new TracingException($"{shell.Describe}: reading tracing facts failed: {r.Stderr.Trim()}", failureClass: FailureClass.Infrastructure);
        return KernelFacts.Parse(r.Stdout);
    }

    public async Task<TraceCapture> TraceAsync(ProbePlan plan, Func<TraceRun, CancellationToken, Task> workload, TraceOptions? options = null, CancellationToken ct = default)
    {
        options ??= new TraceOptions();
        var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var group = "hil_" + token;
        var t = plan.Facts.Tracefs;
        var instance = plan.Facts.Instances ? $"hil-{token}" : null;
        var dir = instance is null ? t : $"{t}/instances/{instance}";
        var armed = new List<ArmedProbe>();
        var saved = new List<(string File, string Value)>();
        var enabled = new List<string>();
        var instanceMade = false;
        string text;
        BufferLoss loss;
        var clock = new Stopwatch();
        CleanupReport cleanup;
        Exception? failure = null;
        try
        {
            foreach (var p in plan.Probes) armed.Add(await ArmAsync(t, group, token, p, options, ct).ConfigureAwait(false));
            if (instance is not null)
            {
                await MustAsync($"mkdir {Q(dir)}", options, ct).ConfigureAwait(false);
                instanceMade = true;
            }
            else
            {
                // The shared main buffer: remember what we change, to put it back.
                foreach (var f in new[] { "tracing_on", "buffer_size_kb", "trace_clock" })
                    saved.Add((f, await CurrentSettingAsync($"{dir}/{f}", options, ct).ConfigureAwait(false)));
            }
            await MustAsync($"echo 0 > {Q(dir + "/tracing_on")} && echo mono > {Q(dir + "/trace_clock")} && echo {options.BufferSizeKb} > {Q(dir + "/buffer_size_kb")}", options, ct).ConfigureAwait(false);
            // A shared buffer's counters carry its history: only what changes during the session is ours.
            var lossBefore = instance is null ? await LossAsync(t, dir, armed, options, ct).ConfigureAwait(false) : new BufferLoss(0, 0, 0);
            foreach (var ev in new[] { $"events/{group}" }.Concat(plan.Tracepoints.Select(tp => $"events/{tp.Event}")))
            {
                var file = $"{dir}/{ev}/enable";
                if (instance is null && ev.StartsWith("events/optee/", StringComparison.Ordinal))
                    saved.Add((ev + "/enable", await CurrentSettingAsync(file, options, ct).ConfigureAwait(false)));
                await MustAsync($"echo 1 > {Q(file)}", options, ct).ConfigureAwait(false);
                enabled.Add(file);
            }
            var run = new TraceRun(shell, dir, options.CommandTimeout);
            await MustAsync($"echo 1 > {Q(dir + "/tracing_on")}", options, ct).ConfigureAwait(false);
            await run.MarkAsync($"hil-trace begin {token}", ct).ConfigureAwait(false);
            clock.Start();
            await workload(run, ct).ConfigureAwait(false);
            clock.Stop();
            await run.MarkAsync($"hil-trace end {token}", ct).ConfigureAwait(false);
            await MustAsync($"echo 0 > {Q(dir + "/tracing_on")}", options, ct).ConfigureAwait(false);
            text = (await MustAsync($"cat {Q(dir + "/trace")}", options with { CommandTimeout = options.ReadTimeout }, ct).ConfigureAwait(false)).Stdout;
            loss = (await LossAsync(t, dir, armed, options, ct).ConfigureAwait(false)).Minus(lossBefore);
        }
        catch (Exception ex)
        {
            failure = ex;
            throw;
        }
        finally
        {
            cleanup = await CleanUpAsync(t, group, dir, instanceMade ? instance : null, armed, enabled, saved, options).ConfigureAwait(false);
            if (!cleanup.Clean)
            {
                _log.Error("tracing cleanup on {Board} incomplete: {Cleanup}", shell.Describe, cleanup);
                if (failure is null)
                    throw new TracingException($"{shell.Describe}: {cleanup}", failureClass: FailureClass.Infrastructure);
            }
        }
        _log.Information("traced {Lines} bytes in {Seconds:0.0} s on {Board} ({Loss}); {Cleanup}", text.Length, clock.Elapsed.TotalSeconds, shell.Describe, loss, cleanup);
        return new TraceCapture(plan, group, instance, armed, text, loss, cleanup, clock.Elapsed, token);
    }

    /// <summary>Writes the first definition of the probe the kernel accepts; the error log says why others were refused.</summary>
    private async Task<ArmedProbe> ArmAsync(string t, string group, string token, PlannedProbe p, TraceOptions options, CancellationToken ct)
    {
        var name = p.EventName(token);
        var refusals = new List<string>();
        for (var i = 0; i < p.Definitions.Count; i++)
        {
            var line = p.Command(group, i, name);
            var r = await shell.RunAsync($"echo {Q(line)} >> {Q(t + "/kprobe_events")}", options.CommandTimeout, ct).ConfigureAwait(false);
            if (r.Succeeded)
            {
                if (i > 0) _log.Information("probe {Name}: the kernel refused {Refused}; armed {Line}", p.Name, refusals, line);
                return new ArmedProbe(p, name, line, i);
            }
            var why = await shell.RunAsync($"tail -n 2 {Q(t + "/error_log")} 2>/dev/null", options.CommandTimeout, ct).ConfigureAwait(false);
            refusals.Add($"{line}: {r.Stderr.Trim()} {why.Stdout.Trim()}".Trim());
        }
        throw new TracingException($"{shell.Describe}: the kernel refused every definition of probe {p.Name}: {string.Join(" | ", refusals)}");
    }

    private async Task<string> CurrentSettingAsync(string file, TraceOptions options, CancellationToken ct)
    {
        var v = (await MustAsync($"cat {Q(file)}", options, ct).ConfigureAwait(false)).Stdout.Trim();
        // trace_clock lists every clock with the current one in brackets.
        var open = v.IndexOf('[');
        return open >= 0 ? v[(open + 1)..v.IndexOf(']', open)] : v.Split(' ')[0];
    }

    private async Task<BufferLoss> LossAsync(string t, string dir, IReadOnlyList<ArmedProbe> armed, TraceOptions options, CancellationToken ct)
    {
        var stats = (await MustAsync($"cat {Q(dir)}/per_cpu/cpu*/stats", options, ct).ConfigureAwait(false)).Stdout;
        long overrun = 0, dropped = 0, misses = 0;
        foreach (var line in stats.Split('\n'))
        {
            var parts = line.Split(':', 2, StringSplitOptions.TrimEntries);
            if (parts.Length != 2 || !long.TryParse(parts[1], CultureInfo.InvariantCulture, out var n)) continue;
            if (parts[0] == "overrun") overrun += n;
            else if (parts[0] == "dropped events") dropped += n;
        }
        // kprobe_profile: "name hits misses" per probe event; a miss is a hit that was never recorded.
        var names = armed.Select(a => a.EventName).ToHashSet();
        var profile = (await MustAsync($"cat {Q(t + "/kprobe_profile")}", options, ct).ConfigureAwait(false)).Stdout;
        foreach (var line in profile.Split('\n'))
        {
            var cols = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (cols.Length >= 3 && names.Contains(cols[0][(cols[0].IndexOf('/') + 1)..]) && long.TryParse(cols[^1], CultureInfo.InvariantCulture, out var m))
                misses += m;
        }
        return new BufferLoss(overrun, dropped, misses);
    }

    /// <summary>
    /// Undoes every step that was taken, each attempted even if an earlier one failed, then checks
    /// the result from the board's own view. Never throws: the report says what remains.
    /// </summary>
    private async Task<CleanupReport> CleanUpAsync(string t, string group, string dir, string? instance, IReadOnlyList<ArmedProbe> armed,
        IReadOnlyList<string> enabled, IReadOnlyList<(string File, string Value)> saved, TraceOptions options)
    {
        var errors = new List<string>();
        async Task Try(string command)
        {
            try
            {
                var r = await shell.RunAsync(command, options.CommandTimeout, CancellationToken.None).ConfigureAwait(false);
                if (!r.Succeeded) errors.Add($"{command}: {r.Stderr.Trim()}");
            }
            catch (Exception ex) when (ex is HilException or IOException or TimeoutException)
            {
                errors.Add($"{command}: {ex.Message}");
            }
        }

        // Probes cannot be removed while enabled anywhere: disable, drop the instance, then remove.
        if (instance is not null) await Try($"echo 0 > {Q(dir + "/tracing_on")}");
        foreach (var file in enabled.Reverse()) await Try($"echo 0 > {Q(file)}");
        foreach (var (file, value) in saved) await Try($"echo {Q(value)} > {Q(dir + "/" + file)}");
        if (instance is not null) await Try($"rmdir {Q(dir)}");
        foreach (var a in armed) await Try($"echo {Q($"-:{group}/{a.EventName}")} >> {Q(t + "/kprobe_events")}");

        var remaining = new List<string>();
        try
        {
            var check = await shell.RunAsync(
                $"grep -F {Q(group + "/")} {Q(t + "/kprobe_events")}; " +
                (instance is null ? "true" : $"[ ! -e {Q(dir)} ] || echo {Q("instance " + instance)}"),
                options.CommandTimeout, CancellationToken.None).ConfigureAwait(false);
            remaining.AddRange(check.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        }
        catch (Exception ex) when (ex is HilException or IOException or TimeoutException)
        {
            errors.Add($"cleanup check failed: {ex.Message}");
        }
        return new CleanupReport(remaining.Count == 0 && errors.Count == 0, remaining, errors);
    }

    private async Task<ShellOutput> MustAsync(string command, TraceOptions options, CancellationToken ct)
    {
        var r = await shell.RunAsync(command, options.CommandTimeout, ct).ConfigureAwait(false);
        if (!r.Succeeded)
            throw new TracingException($"{shell.Describe}: tracefs command failed (exit {r.ExitCode}): {command}: {r.Stderr.Trim()}", failureClass: FailureClass.Infrastructure);
        return r;
    }

    private static string Q(string s) => ShellQuote.Quote(s);
}
