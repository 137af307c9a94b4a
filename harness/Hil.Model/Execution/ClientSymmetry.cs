using Hil.Model.Scenarios;

namespace Hil.Model.Execution;

/// <summary>
/// Groups of interchangeable clients: same sessions, same calls (times, holds, closes), nobody's
/// calls needing theirs and theirs needing nobody's. Two states that differ only by swapping such
/// clients behave alike, so the explorer keeps one of them (the one with the clients sorted) —
/// a symmetry reduction: findings and outcomes are the same, up to renaming those clients.
/// </summary>
public sealed class ClientSymmetry
{
    private readonly int[][] _groups;
    private readonly int[] _callBase;
    private readonly int[] _sessionBase;

    public ClientSymmetry(Scenario sc)
    {
        _callBase = new int[sc.Clients.Count];
        _sessionBase = new int[sc.Clients.Count];
        for (int c = 0, calls = 0, sessions = 0; c < sc.Clients.Count; c++)
        {
            _callBase[c] = calls; _sessionBase[c] = sessions;
            calls += sc.Clients[c].Ops.OfType<CallSpec>().Count();
            sessions += sc.Clients[c].Sessions.Count;
        }
        var needed = sc.Calls.SelectMany(c => c.Needs).Select(n => sc.Calls[n].Client).ToHashSet();
        bool Plain(ClientSpec c) => !needed.Contains(c.Index) && c.Ops.All(o => o is CallSpec { Needs.Count: 0 } or RegisterSpec);
        string Shape(ClientSpec c) =>
            string.Join(";", c.Sessions.Select(s => s.System ? "S" : "N")) + "|" + string.Join(";", c.Ops.Select(o => o switch
            {
                CallSpec cs => $"{(cs.IsClose ? "close" : "call")}@{cs.At}/{cs.Hold}/s{cs.Session - c.Sessions[0].Id}",
                RegisterSpec r => $"reg@{r.At}/s{r.Session - c.Sessions[0].Id}",
                _ => "?",
            }));
        _groups = sc.Clients.Where(Plain).GroupBy(Shape).Select(g => g.Select(c => c.Index).ToArray()).Where(g => g.Length > 1).ToArray();
    }

    public bool Any => _groups.Length > 0;

    /// <summary>Interchangeable clients, by index (for reports).</summary>
    public IReadOnlyList<IReadOnlyList<int>> Groups => _groups;

    /// <summary>
    /// The canonical renaming of a state: within each group, clients sorted by (position, phase and
    /// completion flag of each of their calls in the list, program counter). Fills call and session
    /// maps (old id → canonical id) and the client map.
    /// </summary>
    public void Canonical(ScenarioRun run, int[] callMap, int[] sessionMap, int[] clientMap)
    {
        var sc = run.Scenario;
        for (var i = 0; i < callMap.Length; i++) callMap[i] = i;
        for (var i = 0; i < sessionMap.Length; i++) sessionMap[i] = i;
        for (var i = 0; i < clientMap.Length; i++) clientMap[i] = i;
        if (_groups.Length == 0) return;
        var d = run.Driver;
        Span<int> position = stackalloc int[sc.Calls.Count];
        position.Fill(-1);
        for (var i = 0; i < d.ListCount; i++) position[d.ListAt(i)] = i;
        foreach (var group in _groups)
        {
            var sorted = (int[])group.Clone();
            var ops = sc.Clients[group[0]].Ops.OfType<CallSpec>().Count();
            var pos = position.ToArray();
            Array.Sort(sorted, (a, b) =>
            {
                for (var k = 0; k < ops; k++)
                {
                    int ca = _callBase[a] + k, cb = _callBase[b] + k;
                    var x = Signature(d, ca, pos[ca]).CompareTo(Signature(d, cb, pos[cb]));
                    if (x != 0) return x;
                }
                var p = run.ProgramCounter(a).CompareTo(run.ProgramCounter(b));
                return p != 0 ? p : 0;
            });
            // The i-th smallest takes the i-th slot of the group.
            for (var i = 0; i < group.Length; i++)
            {
                int from = sorted[i], to = group[i];
                clientMap[from] = to;
                for (var k = 0; k < ops; k++) callMap[_callBase[from] + k] = _callBase[to] + k;
                var sessions = sc.Clients[from].Sessions.Count;
                for (var k = 0; k < sessions; k++) sessionMap[_sessionBase[from] + k] = _sessionBase[to] + k;
            }
        }
    }

    private static long Signature(Core.DriverState d, int call, int listPosition) =>
        ((long)(listPosition + 1) << 16) | ((long)d.Phase(call) << 8) | (d.IsSys(call) ? 2L : 0) | (d.IsDone(call) ? 1L : 0);
}
