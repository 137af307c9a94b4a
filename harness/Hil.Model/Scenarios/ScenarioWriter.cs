using System.Globalization;
using System.Text;

namespace Hil.Model.Scenarios;

/// <summary>Writes a scenario back as a scenario file (what a test derived from a trace can attach, for `hil model` to re-run).</summary>
public static class ScenarioWriter
{
    public static string ToYaml(Scenario sc)
    {
        static string Ms(long us) => (us / 1000.0).ToString("0.###", CultureInfo.InvariantCulture);
        static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
        var sb = new StringBuilder();
        sb.AppendLine($"name: {Quote(sc.Name)}");
        if (sc.Description is { } d) sb.AppendLine($"description: {Quote(d)}");
        sb.AppendLine($"policy: {sc.Policy.Name}");
        sb.AppendLine($"threads: {sc.Threads}");
        if (sc.DriverThreads is { } dt) sb.AppendLine($"driver_threads: {dt}");
        sb.AppendLine("clients:");
        foreach (var c in sc.Clients)
        {
            sb.AppendLine($"  - name: {Quote(c.Name)}");
            sb.AppendLine("    sessions:");
            foreach (var s in c.Sessions) sb.AppendLine($"      - {{ name: {Quote(s.Name)}, system: {(s.System ? "true" : "false")} }}");
            sb.AppendLine("    calls:");
            foreach (var op in c.Ops)
            {
                var id = op.Label[(op.Label.LastIndexOf('/') + 1)..];
                var session = sc.Sessions.First(s => s.Id == op.Session).Name;
                switch (op)
                {
                    case CallSpec cs:
                        var needs = cs.Needs.Count == 0 ? "" : $", needs: [{string.Join(", ", cs.Needs.Select(n => Quote(sc.Calls[n].Name)))}]";
                        sb.AppendLine($"      - {{ id: {Quote(id)}, {(cs.IsClose ? "op: close, " : "")}session: {Quote(session)}, at: {Ms(cs.At)}, hold: {Ms(cs.Hold)}{needs} }}");
                        break;
                    case RegisterSpec r:
                        sb.AppendLine($"      - {{ id: {Quote(id)}, op: register-system, session: {Quote(session)}, at: {Ms(r.At)} }}");
                        break;
                }
            }
        }
        return sb.ToString();
    }
}
