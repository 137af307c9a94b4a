using System.Diagnostics;
using Hil.Kernel;
using Hil.Cli.Commands;
using Serilog;

namespace Hil.Cli.Patches;

/// <summary>
/// One suite project run by dotnet test into a results folder (JUnit, NUnit XML, TRX, the full
/// output in SUITE.test.log), its board progress lines echoed as they come.
/// </summary>
internal sealed class SuiteRun(string root, string results, ILogger log)
{
    /// <summary>Builds the suite once (runs in parallel must not build the same project at once).</summary>
    public async Task<bool> BuildAsync(string project, CancellationToken ct)
    {
        var logFile = Path.Combine(results, $"build-{SuiteName(project)}.log");
        var code = await DotnetAsync(["build", Path.Combine(root, project), "-c", "Release", "-nologo", "-v", "quiet", "-clp:ErrorsOnly"], logFile, null, null, ct);
        if (code != 0) log.Error("building {Project} failed (exit {Code}): see {Log}", project, code, logFile);
        return code == 0;
    }

    /// <summary>Runs the built suite's tests matching <paramref name="filter"/>.</summary>
    public async Task<int> TestAsync(string project, IReadOnlyDictionary<string, string> env, string filter, CancellationToken ct)
    {
        var name = SuiteName(project);
        string[] args =
        [
            "test", Path.Combine(root, project), "-c", "Release", "--no-build", "-nologo",
            "--filter", filter,
            "--logger", $"junit;LogFilePath={Path.Combine(results, name + ".junit.xml")};MethodFormat=Class;FailureBodyFormat=Verbose",
            "--logger", $"nunit;LogFilePath={Path.Combine(results, name + ".nunit.xml")}",
            "--logger", $"trx;LogFileName={name}.trx",
            "--logger", "console;verbosity=normal",
            "--results-directory", Path.Combine(results, "trx"),
            "--blame-hang-timeout", "30m", "--blame-hang-dump-type", "none",
        ];
        return await DotnetAsync(args, Path.Combine(results, $"{name}.test.log"), env, Echo, ct);

        static void Echo(string line)
        {
            var t = line.TrimStart();
            if (t.StartsWith('[') || t.StartsWith("Passed ", StringComparison.Ordinal) || t.StartsWith("Failed ", StringComparison.Ordinal))
                Console.WriteLine($"  {t}");
        }
    }

    /// <summary>"system-threads" for testsuites/Hil.Suites.SystemThreads/….csproj.</summary>
    public static string SuiteName(string project) =>
        SuiteProject.Kebab(Path.GetFileNameWithoutExtension(project).Replace("Hil.Suites.", "", StringComparison.Ordinal));

    private static async Task<int> DotnetAsync(IReadOnlyList<string> args, string logFile, IReadOnlyDictionary<string, string>? env,
        Action<string>? onLine, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        Hil.Boards.Secrets.ChildEnvironment.Scrub(psi, []);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
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
