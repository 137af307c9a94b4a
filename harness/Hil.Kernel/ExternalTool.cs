using System.Diagnostics;
using System.Text;

namespace Hil.Kernel;

/// <summary>A host tool that failed: names the command and keeps the end of its error output as evidence.</summary>
public sealed class ExternalToolException(string command, int exitCode, string errorTail)
    : Exception($"{command} failed (exit {exitCode}){(errorTail.Length > 0 ? ":\n" + errorTail : "")}")
{
    public string Command { get; } = command;
    public int ExitCode { get; } = exitCode;
    public string ErrorTail { get; } = errorTail;
}

/// <summary>What a finished tool printed.</summary>
public sealed record ToolResult(int ExitCode, string Stdout, string Stderr);

/// <summary>
/// Runs host tools with an argument vector (never through a shell, so no argument can inject
/// a command) and captures their output.
/// </summary>
public static class ExternalTool
{
    public static async Task<ToolResult> RunAsync(
        string file, IEnumerable<string> args, string? workingDirectory = null,
        IReadOnlyDictionary<string, string>? environment = null, bool check = true,
        CancellationToken ct = default, Stream? stdoutSink = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // Tools must speak plain English so that their output can be parsed.
        psi.Environment["LC_ALL"] = "C.UTF-8";
        psi.Environment["LANG"] = "C.UTF-8";
        if (environment is not null)
            foreach (var (k, v) in environment) psi.Environment[k] = v;
        // Build and packaging tools never need a board's passwords.
        Hil.Boards.Secrets.ChildEnvironment.Scrub(psi);

        using var p = new Process { StartInfo = psi };
        try { p.Start(); }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new ExternalToolException(Describe(file, psi.ArgumentList), -1, $"cannot start {file}: {ex.Message}");
        }
        p.StandardInput.Close();
        var stderrTask = p.StandardError.ReadToEndAsync(ct);
        string stdout;
        if (stdoutSink is not null)
        {
            await p.StandardOutput.BaseStream.CopyToAsync(stdoutSink, ct);
            stdout = "";
        }
        else stdout = await p.StandardOutput.ReadToEndAsync(ct);
        try { await p.WaitForExitAsync(ct); }
        catch (OperationCanceledException)
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw;
        }
        var stderr = await stderrTask;
        if (check && p.ExitCode != 0)
            throw new ExternalToolException(Describe(file, psi.ArgumentList), p.ExitCode, Tail(stderr.Length > 0 ? stderr : stdout, 25));
        return new ToolResult(p.ExitCode, stdout, stderr);
    }

    /// <summary>The command as a person would type it (each argument quoted when needed), for messages only.</summary>
    public static string Describe(string file, IEnumerable<string> args)
    {
        var sb = new StringBuilder(file);
        foreach (var a in args) sb.Append(' ').Append(Quote(a));
        return sb.ToString();
    }

    public static string Quote(string a) =>
        a.Length > 0 && a.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,+@%".Contains(c)) ? a : "'" + a.Replace("'", "'\\''") + "'";

    public static string Tail(string text, int lines)
    {
        var all = text.TrimEnd().Split('\n');
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }
}
