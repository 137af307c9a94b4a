using Hil.Model.Core;

namespace Hil.Model.Scenarios;

/// <summary>
/// Builds a scenario in code (suites compute their predictions from a board's facts; benchmarks
/// need scenarios too large for YAML). Times are milliseconds, as in scenario files.
/// </summary>
/// <example>
/// var sc = new ScenarioBuilder("probe", Policy.Mainline, threads: 2)
///     .Client("A").Call(at: 0, hold: 3000)
///     .Client("scmi", system: true).Call(at: 200, hold: 10)
///     .Build();
/// </example>
public sealed class ScenarioBuilder(string name, Policy policy, int threads, int? driverThreads = null)
{
    private readonly List<(string Name, bool System, List<(string? Id, double At, double Hold, string[] Needs, bool Close)> Calls)> _clients = [];

    public ScenarioBuilder Client(string clientName, bool system = false)
    {
        _clients.Add((clientName, system, []));
        return this;
    }

    /// <summary>An invoke on the current client's session; `needs` are "client/id" or "id" references.</summary>
    public ScenarioBuilder Call(double at, double hold, string? id = null, params string[] needs)
    {
        Current.Calls.Add((id, at, hold, needs, false));
        return this;
    }

    /// <summary>The CLOSE of the current client's session.</summary>
    public ScenarioBuilder Close(double at, double hold = 0)
    {
        Current.Calls.Add((null, at, hold, [], true));
        return this;
    }

    private (string Name, bool System, List<(string? Id, double At, double Hold, string[] Needs, bool Close)> Calls) Current =>
        _clients.Count > 0 ? _clients[^1] : throw new InvalidOperationException("add a client first");

    public Scenario Build()
    {
        var clients = new List<ClientSpec>();
        var callId = 0;
        var ids = new Dictionary<string, int>();
        // First pass: ids, so that needs may point forward to other clients.
        for (var c = 0; c < _clients.Count; c++)
            for (var i = 0; i < _clients[c].Calls.Count; i++)
                ids[$"{_clients[c].Name}/{_clients[c].Calls[i].Id ?? $"c{i + 1}"}"] = callId++;
        callId = 0;
        for (var c = 0; c < _clients.Count; c++)
        {
            var (cname, system, calls) = _clients[c];
            var session = new SessionSpec(c, "default", c, system);
            var ops = new List<OpSpec>();
            for (var i = 0; i < calls.Count; i++)
            {
                var (id, at, hold, needs, close) = calls[i];
                var label = $"{cname}/{id ?? $"c{i + 1}"}";
                var needIds = needs.Select(n => ids.TryGetValue(n.Contains('/') ? n : $"{cname}/{n}", out var x) ? x
                    : throw new ArgumentException($"{label}: unknown call '{n}'")).ToList();
                ops.Add(new CallSpec(c, i, label, c, Us(at), Us(hold), needIds, close, callId++, label));
            }
            clients.Add(new ClientSpec(c, cname, [session], ops));
        }
        return new Scenario(name, null, policy, threads, driverThreads, clients, $"(built: {name})");
    }

    private static long Us(double ms) => ms >= 0 ? (long)Math.Round(ms * 1000) : throw new ArgumentOutOfRangeException(nameof(ms), "negative time");
}
