using System.Text.Json;
using Hil.Model.Conformance;
using Hil.Suites.Common;

namespace Hil.Suites.SystemThreads;

/// <summary>
/// Every judged trace of the run, one JSON line each in <c>RESULTS/policies.jsonl</c>: board,
/// driver, test, the policy it was judged by and its verdict under every policy. `hil patch run`
/// reads it to say which policies the control and the patched driver each conform to.
/// </summary>
public static class PolicyRecords
{
    public const string FileName = "policies.jsonl";
    private static readonly Lock Gate = new();

    public static void Append(BoardTestContext t, string tracePath, ConformanceResult judged, IReadOnlyList<ConformanceResult> all)
    {
        var line = JsonSerializer.Serialize(new
        {
            board = t.Live.Target.Name,
            driver = t.Driver?.Driver.Name,
            test = TestContext.CurrentContext.Test.Name,
            attempt = t.Attempt,
            trace = tracePath,
            events = judged.Events,
            judged_by = judged.Policy.Name,
            conforms = judged.Conforms,
            policies = all.Select(r => new
            {
                policy = r.Policy.Name,
                conforms = r.Conforms,
                line = r.Divergence?.Line,
                reason = r.Divergence?.Reason.Split('\n')[0],
            }),
        });
        lock (Gate)
        {
            Directory.CreateDirectory(SuiteResults.Root);
            File.AppendAllText(Path.Combine(SuiteResults.Root, FileName), line + "\n");
        }
    }
}
