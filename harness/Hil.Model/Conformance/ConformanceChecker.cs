using System.Diagnostics;
using Hil.Model.Core;

namespace Hil.Model.Conformance;

/// <summary>
/// Replays a board trace against the model and reports the first event the model forbids.
///
/// Probes that fire on entry of wait_init, wait_final and after wait_for_completion returns run
/// before the caller takes the call-queue lock, so the order of their lines is not always the
/// order of the critical sections. Such an event is a *trigger*: it stays pending until the same
/// task's next line, and the checker keeps every order of pending triggers that is still possible
/// (a small set of hypotheses; usually one). Lines that come from inside the lock or after the
/// decision (complete targets, wait_init returning, going to sleep, SMC results) are
/// *observations* that each hypothesis must explain. The trace diverges when no hypothesis is left.
///
/// A trace may start while calls are in flight: a waiter first seen in a line other than
/// wait_init makes the check start over with that waiter placed at the head of the list
/// (running, or asleep when it is first seen waking). The source is therefore opened again.
/// </summary>
public static class ConformanceChecker
{
    public const int MaxRestarts = 96;

    public static ConformanceResult Check(Func<Stream> open, string source, ConformanceOptions? options = null)
    {
        options ??= new ConformanceOptions();
        var seeds = new SeedPlan([], null);
        var sw = Stopwatch.StartNew();
        for (var attempt = 0; ; attempt++)
        {
            using var reader = new TraceReader(open(), source);
            var outcome = new CheckRun(reader, source, options, seeds, sw).Execute(lastAttempt: attempt >= MaxRestarts);
            if (outcome.Result is { } result) return result;
            seeds = outcome.Restart!;
        }
    }

    /// <summary>The same check over an in-memory trace (tests, small tools).</summary>
    public static ConformanceResult CheckText(string jsonLines, string source = "(trace)", ConformanceOptions? options = null) =>
        Check(() => new MemoryStream(System.Text.Encoding.UTF8.GetBytes(jsonLines)), source, options);
}
