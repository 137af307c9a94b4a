using Hil.Model.Scenarios;

namespace Hil.Suites.SystemThreads;

/// <summary>
/// The workload a trace shows, as a scenario: every traced call of every task (the board's
/// background caller included) with the arrival and the time inside OP-TEE the board measured.
/// Simulating it predicts what the driver should have done with exactly that traffic — how a
/// test judges wake-up order without being at the mercy of the background caller's timing.
/// </summary>
public static class TraceScenario
{
    public static (Scenario Scenario, IReadOnlyDictionary<TracedCall, string> Names) Build(BoardModel model, IReadOnlyList<TracedCall> calls, double t0Seconds)
    {
        var builder = model.Scenario("as-traced");
        var names = new Dictionary<TracedCall, string>();
        // Calls over before t0 play no part; one still running at t0 is there from 0 for what it had left.
        foreach (var task in calls.Where(c => c.Enter is not null && c.Final is not null && c.Final > t0Seconds).GroupBy(c => c.Task))
        {
            // Scenario names may not contain '/': "irq/17-optee_no-148" becomes "irq_17-optee_no-148".
            var client = task.Key.Replace('/', '_');
            builder.Client(client, system: task.Any(c => c.Sys));
            var i = 0;
            foreach (var c in task.OrderBy(c => c.Arrive))
            {
                var id = $"c{++i}";
                var enter = Math.Max(c.Enter!.Value, t0Seconds);
                builder.Call(at: Math.Max(0, (c.Arrive - t0Seconds) * 1000), hold: Math.Max(0, (c.Final!.Value - enter) * 1000), id: id);
                names[c] = $"{client}/{id}";
            }
        }
        return (builder.Build(), names);
    }
}
