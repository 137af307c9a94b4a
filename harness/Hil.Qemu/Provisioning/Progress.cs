using System.Diagnostics;
using Serilog;
using Spectre.Console;

namespace Hil.Qemu.Provisioning;

/// <summary>What kind of work a provisioning step did: the proof that a warm run neither downloads nor builds.</summary>
public enum StepKind { Check, Resolve, Download, Build, Reuse }

/// <summary>One step as it happened.</summary>
public sealed record StepRecord(string Board, string Name, StepKind Kind, TimeSpan Duration);

/// <summary>Shows provisioning steps to a person: a live display on a terminal, log lines otherwise.</summary>
public interface IProvisionProgress
{
    /// <summary>Runs <paramref name="work"/> with a display active for its duration.</summary>
    Task<T> RunAsync<T>(Func<IProvisionProgress, Task<T>> work);
    /// <summary>Starts a step; disposing it marks it done.</summary>
    IDisposable Begin(string description);
}

public static class ProvisionProgress
{
    /// <summary>Spectre's live progress when stdout is an interactive terminal, else plain Serilog lines.</summary>
    public static IProvisionProgress For(ILogger log) =>
        !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive && AnsiConsole.Profile.Capabilities.Ansi
            ? new SpectreProvisionProgress()
            : new LogProvisionProgress(log);
}

/// <summary>One log line per step start and end, with its duration.</summary>
public sealed class LogProvisionProgress(ILogger log) : IProvisionProgress
{
    public Task<T> RunAsync<T>(Func<IProvisionProgress, Task<T>> work) => work(this);

    public IDisposable Begin(string description)
    {
        log.Information("provision: {Step} …", description);
        var sw = Stopwatch.StartNew();
        return new Done(() => log.Information("provision: {Step} done in {Seconds:0.0} s", description, sw.Elapsed.TotalSeconds));
    }

    private sealed class Done(Action onDispose) : IDisposable { public void Dispose() => onDispose(); }
}

/// <summary>A Spectre.Console progress display: one spinning line per running step, ticked when done.</summary>
public sealed class SpectreProvisionProgress : IProvisionProgress
{
    private ProgressContext? _ctx;

    public Task<T> RunAsync<T>(Func<IProvisionProgress, Task<T>> work) =>
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new SpinnerColumn(), new ElapsedTimeColumn())
            .StartAsync(async ctx => { _ctx = ctx; try { return await work(this); } finally { _ctx = null; } });

    public IDisposable Begin(string description)
    {
        if (_ctx is null) return new Noop();
        var task = _ctx.AddTask(Markup.Escape(description), maxValue: 1);
        task.IsIndeterminate = true;
        return new Finish(task);
    }

    private sealed class Finish(ProgressTask task) : IDisposable
    {
        public void Dispose() { task.IsIndeterminate = false; task.Value = 1; task.StopTask(); }
    }
    private sealed class Noop : IDisposable { public void Dispose() { } }
}
