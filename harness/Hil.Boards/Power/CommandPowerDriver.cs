using System.Diagnostics;
using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Serilog;

namespace Hil.Boards.Power;

/// <summary>
/// Power through external commands from the board file (a relay tool, a PDU CLI, uhubctl, ...).
/// Each command is an argument list run without a shell, so no value can inject anything.
/// </summary>
public sealed class CommandPowerDriver(PowerSpec spec, ILogger logger) : IPowerDriver
{
    public string Name => "command";
    public bool CanSwitch => true;

    public Task OnAsync(CancellationToken ct) => RunAsync("on", spec.On ?? spec.Cycle!, ct);

    public Task OffAsync(CancellationToken ct) =>
        spec.Off is { } off ? RunAsync("off", off, ct) : Task.CompletedTask;

    public async Task CycleAsync(CancellationToken ct)
    {
        if (spec.Cycle is { } cycle)
        {
            await RunAsync("cycle", cycle, ct).ConfigureAwait(false);
            return;
        }
        await OffAsync(ct).ConfigureAwait(false);
        await Task.Delay(spec.OffTime, ct).ConfigureAwait(false);
        await OnAsync(ct).ConfigureAwait(false);
    }

    public async Task<bool?> IsAliveAsync(CancellationToken ct)
    {
        if (spec.Status is not { } status) return null;
        return await ExecStatusAsync(status, ct).ConfigureAwait(false) == 0;
    }

    private async Task RunAsync(string what, IReadOnlyList<string> argv, CancellationToken ct)
    {
        logger.Information("power {What}: {Command}", what, Shell.ShellQuote.Join(argv));
        var (rc, stderr) = await ExecAsync(argv, ct).ConfigureAwait(false);
        if (rc == 0) return;
        // The command's own words are where the cause is (a PDU refusing, a relay missing): keep its last lines.
        var tail = PowerLoss.Tail(stderr);
        throw new InfrastructureException($"power {what} command failed with exit code {rc}: {Shell.ShellQuote.Join(argv)}" +
            (tail.Count > 0 ? $": {string.Join(" | ", tail)}" : " (nothing on its stderr)"), evidence: tail);
    }

    private async Task<int> ExecStatusAsync(IReadOnlyList<string> argv, CancellationToken ct) => (await ExecAsync(argv, ct).ConfigureAwait(false)).ExitCode;

    private async Task<(int ExitCode, string Stderr)> ExecAsync(IReadOnlyList<string> argv, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(argv[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // A relay tool needs no board secret: none reaches it.
        Secrets.ChildEnvironment.Scrub(psi);
        foreach (var a in argv.Skip(1)) psi.ArgumentList.Add(a);
        Process p;
        try
        {
            p = Process.Start(psi) ?? throw new InfrastructureException($"power command could not start: {argv[0]}");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InfrastructureException($"power command could not start: {argv[0]}: {ex.Message}", ex);
        }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync(ct);
            var stderr = p.StandardError.ReadToEndAsync(ct);
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(spec.CommandTimeout);
            try
            {
                await p.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                p.Kill(entireProcessTree: true);
                throw new InfrastructureException($"power command did not finish within {spec.CommandTimeout.TotalSeconds:0} s: {Shell.ShellQuote.Join(argv)}");
            }
            var err = (await stderr.ConfigureAwait(false)).Trim();
            _ = await stdout.ConfigureAwait(false);
            if (err.Length > 0) logger.Debug("power command stderr: {Stderr}", err);
            return (p.ExitCode, err);
        }
    }
}
