using System.Diagnostics;
using Hil.Boards.Failures;
using Hil.Model.Core;
using Hil.Patches;
using Hil.Workloads.Tracing.Module;
using Hil.Workloads.Tracing.Planning;
using Serilog;

namespace Hil.Suites.Common;

/// <summary>A driver under test as it runs on a session: the driver and the policy its traces are judged by.</summary>
public sealed record ActiveDriver(DriverUnderTest Driver, Fact Policy, string SwapNote);

/// <summary>
/// Puts a patch run's driver in place on the booted session before a test body runs, once per
/// session and driver: hil_cq (a TEE client, so a user of optee.ko) is unloaded, the modules are
/// swapped in with their build IDs checked on the board (<see cref="ModuleSwap"/>), and the policy
/// the traces are judged by is set — the one the patch claims, else the driver's own told from its
/// code like a stock driver's. A fresh boot brings the stock driver back; the next test swaps again.
/// </summary>
public static class DriverActivation
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static readonly Dictionary<(string Board, int Session), ActiveDriver> Active = [];
    private static readonly Dictionary<string, Fact> Policies = [];

    public static async Task<ActiveDriver> EnsureAsync(BoardTestContext t, DriverUnderTest driver, ILogger log)
    {
        var key = (t.Live.Target.Name, t.Live.Session);
        await Gate.WaitAsync(t.Token).ConfigureAwait(false);
        try
        {
            if (Active.TryGetValue(key, out var current) && current.Driver.Name == driver.Name) return current;
            var policy = await PolicyOfAsync(driver, t.Token).ConfigureAwait(false);
            var clock = Stopwatch.StartNew();
            // hil_cq holds a TEE context: optee.ko cannot go while it is loaded. The workbench loads it again.
            var module = await SessionModule.GetAsync(t.Live, log, t.Token).ConfigureAwait(false);
            if (module.IsLoaded) await module.UnloadAsync(TimeSpan.FromSeconds(30), t.Token).ConfigureAwait(false);
            var swap = await ModuleSwap.SwapAsync(t.Board.Ssh, driver.ToBuilt(), log, t.Token).ConfigureAwait(false);
            await SessionModule.GetAsync(t.Live, log, t.Token).ConfigureAwait(false);
            var note = $"driver {driver.Name} swapped in on session {t.Live.Session}: " +
                       $"{string.Join(", ", swap.LoadedBuildIds.Select(kv => $"{kv.Key} build ID {kv.Value}"))} (checked on the board; " +
                       $"{swap.GuestSwap.TotalSeconds:0.00} s in the guest, {clock.Elapsed.TotalSeconds:0.0} s in all); judged by {policy.Note}";
            log.Information("{Note}", note);
            var active = new ActiveDriver(driver, policy, note);
            Active[key] = active;
            return active;
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>The policy a driver's traces are judged by, as a fact (cached per driver: the code does not change).</summary>
    private static async Task<Fact> PolicyOfAsync(DriverUnderTest driver, CancellationToken ct)
    {
        lock (Policies)
            if (Policies.TryGetValue(driver.Name, out var known)) return known;
        var fact = new Fact { Name = "kernel policy" };
        if (driver.Policy is { } claimed)
        {
            fact = Policy.Find(claimed) is null
                ? fact with { NotMeasured = $"driver {driver.Name}: '{claimed}' ({driver.PolicyFrom}) is not a model policy ({Policy.Names})", NotMeasuredClass = FailureClass.Test }
                : fact with { Measured = claimed, MeasuredFrom = $"driver under test {driver.Name}: the policy it claims ({driver.PolicyFrom ?? "given"})" };
        }
        else
        {
            var file = OpteeModuleFile.FromHostFile(driver.Optee.Path);
            var code = CallQueueAnalyzer.Analyze(await file.DisassembleAsync(ct).ConfigureAwait(false));
            var own = DriverPolicy.From(code);
            fact = own.IsKnown
                ? fact with { Measured = own.Name, MeasuredFrom = $"driver under test {driver.Name}: its code ({own.Evidence})" }
                : fact with
                {
                    NotMeasured = $"driver {driver.Name} is not a driver Linux shipped ({own.Evidence}): say which policy it implements (--expect-policy)",
                    NotMeasuredClass = FailureClass.Test,
                };
        }
        lock (Policies) Policies[driver.Name] = fact;
        return fact;
    }
}
