using System.Collections.Concurrent;
using System.Diagnostics;

namespace Hil.Cli.Tests;

/// <summary>
/// A real `hil` process (the CLI this test project was built with, run by dotnet): its own pid, its
/// own environment (HIL_LEASES), killable with SIGKILL. stdout and stderr lines are collected with
/// the instant each arrived, so tests can order what two processes did.
/// </summary>
public sealed class HilProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<(DateTimeOffset At, string Line)> _out = new();
    private readonly ConcurrentQueue<string> _err = new();

    private HilProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) _out.Enqueue((DateTimeOffset.UtcNow, e.Data)); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) _err.Enqueue(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Pid => _process.Id;
    public IReadOnlyList<string> Out => _out.Select(x => x.Line).ToList();
    public IReadOnlyList<string> Err => _err.ToList();
    public string All => $"pid {Pid} stdout:\n{string.Join("\n", Out)}\nstderr:\n{string.Join("\n", Err)}";

    public static HilProcess Start(string leaseFolder, params string[] args)
    {
        var dll = Path.Combine(TestContext.CurrentContext.TestDirectory, "hil.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["HIL_LEASES"] = leaseFolder;
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        // A hil run of this test must not inherit leases of a hil run around the test run.
        psi.Environment.Remove("HIL_LEASE_TOKENS");
        var p = Process.Start(psi)!;
        p.StandardInput.Close();
        return new HilProcess(p);
    }

    /// <summary>When the first stdout line starting with <paramref name="prefix"/> arrived, waiting up to <paramref name="timeout"/>.</summary>
    public async Task<DateTimeOffset> LineAsync(string prefix, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            foreach (var (at, line) in _out)
                if (line.StartsWith(prefix, StringComparison.Ordinal)) return at;
            if (_process.HasExited && clock.Elapsed > TimeSpan.FromSeconds(1) && !_out.Any(x => x.Line.StartsWith(prefix, StringComparison.Ordinal)))
                throw new AssertionException($"exited ({_process.ExitCode}) without a '{prefix}' line\n{All}");
            await Task.Delay(20);
        }
        throw new TimeoutException($"no '{prefix}' line in {timeout.TotalSeconds} s\n{All}");
    }

    public async Task<int> ExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"still running after {timeout.TotalSeconds} s\n{All}");
        }
        _process.WaitForExit(); // drains the output events
        return _process.ExitCode;
    }

    /// <summary>SIGKILL: the holder gets no chance to release anything.</summary>
    public void KillHard() => _process.Kill();

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
    }
}
