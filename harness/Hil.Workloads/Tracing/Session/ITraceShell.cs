using Hil.Boards.Ssh;

namespace Hil.Workloads.Tracing.Session;

/// <summary>What a board command returned, stdout and stderr apart.</summary>
public sealed record ShellOutput(int ExitCode, string Stdout, string Stderr)
{
    public bool Succeeded => ExitCode == 0;
}

/// <summary>
/// The one thing the tracer needs from a board: run an sh command line as root. SSH in practice
/// (the trace text is large; a serial console would take minutes for it).
/// </summary>
public interface ITraceShell
{
    string Describe { get; }
    Task<ShellOutput> RunAsync(string command, TimeSpan timeout, CancellationToken ct);
}

/// <summary>The tracer's commands over a board's SSH link.</summary>
public sealed class SshTraceShell(SshLink ssh) : ITraceShell
{
    public string Describe => ssh.Address;

    public async Task<ShellOutput> RunAsync(string command, TimeSpan timeout, CancellationToken ct)
    {
        var r = await ssh.RunAsync(command, timeout, ct).ConfigureAwait(false);
        return new ShellOutput(r.ExitStatus ?? -1, r.Stdout, r.Stderr);
    }
}
