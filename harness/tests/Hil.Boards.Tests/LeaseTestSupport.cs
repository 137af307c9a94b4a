using System.Collections.Concurrent;
using System.Diagnostics;
using Serilog.Core;
using Serilog.Events;

namespace Hil.Boards.Tests;

/// <summary>The rendered log lines of a test, for asserting on what the lease said.</summary>
public sealed class LogLines : ILogEventSink
{
    private readonly ConcurrentQueue<string> _lines = new();
    // As the harness's own log files render them (strings unquoted).
    private readonly Serilog.Formatting.Display.MessageTemplateTextFormatter _format = new("{Level} {Message:lj}");

    public Serilog.ILogger Logger() => new Serilog.LoggerConfiguration().MinimumLevel.Debug().WriteTo.Sink(this).CreateLogger();

    public void Emit(LogEvent logEvent)
    {
        var w = new StringWriter();
        _format.Format(logEvent, w);
        _lines.Enqueue(w.ToString());
    }

    public IReadOnlyList<string> All => _lines.ToList();

    public override string ToString() => string.Join("\n", _lines);
}

/// <summary>
/// A Hil.LeaseHolder child process: a real second "run" with its own pid, which can be killed with
/// SIGKILL. Its stdout lines (TAKEN/RELEASED/LOST/ERROR) are collected; its stderr (the lease's log) too.
/// </summary>
public sealed class HolderProcess : IDisposable
{
    private static readonly Lazy<string> Built = new(Build);
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _out = new();
    private readonly ConcurrentQueue<string> _err = new();

    private HolderProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) _out.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) _err.Enqueue(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Pid => _process.Id;
    public IReadOnlyList<string> Output => _out.ToList();
    public string Log => string.Join("\n", _err);
    public bool HasExited => _process.HasExited;

    /// <summary>Starts a holder (argument list, no shell): see tests/Hil.LeaseHolder/Program.cs for the arguments.</summary>
    public static HolderProcess Start(string board, string folder, string owner, int ttlMs, int waitMs, int holdMs, string? goFile = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(Built.Value);
        foreach (var a in new[] { board, folder, owner, ttlMs.ToString(), waitMs.ToString(), holdMs.ToString() }) psi.ArgumentList.Add(a);
        if (goFile is not null) psi.ArgumentList.Add(goFile);
        return new HolderProcess(Process.Start(psi)!);
    }

    /// <summary>The first stdout line starting with <paramref name="prefix"/>, waiting up to <paramref name="timeout"/>.</summary>
    public async Task<string> LineAsync(string prefix, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var line = _out.FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
            if (line is not null) return line;
            await Task.Delay(10);
        }
        throw new TimeoutException($"holder pid {Pid}: no '{prefix}' line in {timeout.TotalSeconds} s; stdout: [{string.Join(" | ", _out)}]; log:\n{Log}");
    }

    /// <summary>The first of several prefixes to appear.</summary>
    public async Task<string> AnyLineAsync(TimeSpan timeout, params string[] prefixes)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var line = _out.FirstOrDefault(l => prefixes.Any(p => l.StartsWith(p, StringComparison.Ordinal)));
            if (line is not null) return line;
            await Task.Delay(10);
        }
        throw new TimeoutException($"holder pid {Pid}: none of {string.Join(", ", prefixes)} in {timeout.TotalSeconds} s; stdout: [{string.Join(" | ", _out)}]; log:\n{Log}");
    }

    /// <summary>SIGKILL (what Process.Kill sends on Linux), then reaped, so the pid is really gone.</summary>
    public async Task KillAsync()
    {
        _process.Kill();
        await _process.WaitForExitAsync();
    }

    public async Task<int> ExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        // The async readers may still hold the last lines: WaitForExit() without a timeout drains them.
        _process.WaitForExit();
        return _process.ExitCode;
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited) _process.Kill();
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
    }

    /// <summary>Builds tests/Hil.LeaseHolder once per test run (incremental: seconds when nothing changed).</summary>
    private static string Build()
    {
        var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "HilHarness.sln"))) dir = dir.Parent;
        if (dir is null) throw new InvalidOperationException($"no HilHarness.sln above {TestContext.CurrentContext.TestDirectory}");
        var project = Path.Combine(dir.FullName, "harness", "tests", "Hil.LeaseHolder", "Hil.LeaseHolder.csproj");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "build", project, "-c", "Release", "-nologo", "-v", "q", "-clp:ErrorsOnly" }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"building {project} failed:\n{stdout.Result}\n{stderr.Result}");
        var dll = Path.Combine(Path.GetDirectoryName(project)!, "bin", "Release", "net10.0", "Hil.LeaseHolder.dll");
        if (!File.Exists(dll)) throw new InvalidOperationException($"{dll} missing after the build");
        return dll;
    }
}
