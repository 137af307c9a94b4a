using System.Diagnostics;
using Hil.Kernel;

namespace Hil.Cli;

/// <summary>
/// dotnet (build, test) as a child process: an argument vector (no shell), the environment scrubbed
/// of every secret but the ones named, all output into a log file (flushed per line) and each line
/// to an optional callback as it comes; cancelled → the whole process tree is killed.
/// </summary>
internal static class DotnetProcess
{
    public static async Task<int> RunAsync(IReadOnlyList<string> args, string logFile, IReadOnlyDictionary<string, string>? env,
        IReadOnlyList<string> secrets, Action<string>? onLine, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        // A board's suites log in to that board with its secrets; no other secret goes along (not even
        // another board's of the same run), and a build gets none at all.
        Hil.Boards.Secrets.ChildEnvironment.Scrub(psi, secrets);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["TESTINGPLATFORM_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        if (env is not null)
            foreach (var (k, v) in env) psi.Environment[k] = v;
        await using var file = new StreamWriter(logFile, append: false) { AutoFlush = true };
        await file.WriteLineAsync("$ " + ExternalTool.Describe("dotnet", args));
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start dotnet");
        p.StandardInput.Close();
        var gate = new SemaphoreSlim(1, 1);
        async Task Pump(StreamReader from)
        {
            while (await from.ReadLineAsync(ct) is { } line)
            {
                await gate.WaitAsync(ct);
                try { await file.WriteLineAsync(line); }
                finally { gate.Release(); }
                onLine?.Invoke(line);
            }
        }
        try
        {
            await Task.WhenAll(Pump(p.StandardOutput), Pump(p.StandardError));
            await p.WaitForExitAsync(ct);
        }
        catch (OperationCanceledException)
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw;
        }
        return p.ExitCode;
    }
}
