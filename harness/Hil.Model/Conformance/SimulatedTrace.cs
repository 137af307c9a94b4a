using System.Globalization;
using System.Text;
using Hil.Model.Scenarios;
using Hil.Model.Simulation;

namespace Hil.Model.Conformance;

/// <summary>
/// Writes the trace a board running this scenario would give (the probe lines of
/// docs/trace-format.md), from a simulation as it runs: the check-trace benchmark's input, and a
/// test that the checker accepts what the model itself does. Each client is one task with one
/// waiter address (a kernel task's waiter lives on its stack).
/// </summary>
public sealed class SimulatedTraceWriter : ITimelineSink
{
    private readonly Scenario _scenario;
    private readonly Action<string> _write;
    private readonly Dictionary<string, int> _sessionClient;
    private readonly string?[] _deferredWoken;
    private int _ender = -1;
    private readonly StringBuilder _sb = new(160);

    public long Lines { get; private set; }

    private readonly bool _counters;

    /// <param name="counters">Also write the counters the board's probes read (free, sysreq and total on
    /// wait_init, free and sysreq on admitted and final, done on final), as a kernel with BTF does.</param>
    public SimulatedTraceWriter(Scenario scenario, Action<string> writeLine, bool counters = false)
    {
        _scenario = scenario;
        _counters = counters;
        _write = writeLine;
        _sessionClient = scenario.Sessions.ToDictionary(s => $"{scenario.Clients[s.Client].Name}/{s.Name}", s => s.Client);
        _deferredWoken = new string?[scenario.Clients.Count];
        Emit($"{{\"type\":\"header\",\"format\":\"hil-cq-trace/1\",\"policy\":\"{scenario.Policy.Name}\",\"threads\":{scenario.Threads},\"driver_threads\":{scenario.DriverTotal}," +
             "\"probes\":[\"wait_init\",\"admitted\",\"block\",\"woken\",\"complete\",\"final\",\"smc_begin\",\"smc_end\",\"sys_register\",\"close_begin\"]," +
             $"\"board\":\"model:{scenario.Name}\"}}");
    }

    public static string Task(Scenario sc, int client) => $"{sc.Clients[client].Name}-{1000 + client}";

    public static ulong Waiter(int client) => 0xffff800080400000UL + (ulong)client * 0x4000;

    public void Write(TimelineEvent e)
    {
        var t = e.TimeUs / 1e6;
        if (e.Call < 0)
        {
            if (e.Event is "system-registered" or "system-refused" && _sessionClient.TryGetValue(e.Subject, out var sc))
                Line(t, sc, "sys_register", $"\"session\":\"{e.Subject}\",\"ok\":{(e.Event == "system-registered" ? 1 : 0)}");
            return;
        }
        var spec = _scenario.Calls[e.Call];
        var c = spec.Client;
        if (e.Event is not ("woken" or "absorbed")) FlushWoken(c);
        switch (e.Event)
        {
            case "arrive":
                if (spec.IsClose) Line(t, c, "close_begin", $"\"sys\":{(SysOf(e) ? 1 : 0)},\"session\":\"{_scenario.Clients[c].Name}/{_scenario.Sessions[spec.Session].Name}\"");
                Line(t, c, "wait_init", $"\"w\":\"{Waiter(c):x}\",\"sys\":{(SysOf(e) ? 1 : 0)}" + Counters(e.FreeBefore, e.SysReqBefore, total: true));
                break;
            case "admitted": Line(t, c, "admitted", _counters ? Counters(e.Free, e.SysReq, total: false)[1..] : null); break;
            case "blocked": Line(t, c, "block", $"\"w\":\"{Waiter(c):x}\""); break;
            case "enter": Line(t, c, "smc_begin", "\"smc\":\"call\""); break;
            case "ethread-limit" or "busy":
                Line(t, c, "smc_begin", "\"smc\":\"call\"");
                Line(t, c, "smc_end", $"\"result\":\"{(e.Event == "busy" ? "busy" : "ethread_limit")}\"");
                Line(t, c, "block", $"\"w\":\"{Waiter(c):x}\"");
                break;
            case "end":
                _ender = c;
                Line(t, c, "smc_end", "\"result\":\"ok\"");
                // Probed before the lock: the counters before this wait_final's step.
                Line(t, c, "final", $"\"w\":\"{Waiter(c):x}\"" + Counters(e.FreeBefore, e.SysReqBefore, total: false) +
                     (_counters ? $",\"done\":{(e.Detail == "completion set" ? 1 : 0)}" : ""));
                break;
            case "woken":
                Line(t, _ender, "complete", $"\"w\":\"{Waiter(c):x}\"");
                _deferredWoken[c] = Format(t, c, "woken", $"\"w\":\"{Waiter(c):x}\"");
                break;
            case "absorbed":
                Line(t, _ender, "complete", $"\"w\":\"{Waiter(c):x}\"");
                break;
        }
    }

    private string Counters(int free, int sysReq, bool total)
    {
        if (!_counters || free < 0) return "";
        // free means something only when the driver counts.
        var counting = _scenario.DriverTotal > 0;
        return (counting ? $",\"free\":{free}" : "") + $",\"sysreq\":{sysReq}" + (total && counting ? $",\"total\":{_scenario.DriverTotal}" : "");
    }

    /// <summary>Writes any woken lines still held back (call at the end of the simulation).</summary>
    public void Complete()
    {
        for (var c = 0; c < _deferredWoken.Length; c++) FlushWoken(c);
    }

    // The woken task runs only after the waker's whole critical section: its line comes later.
    private void FlushWoken(int client)
    {
        if (_deferredWoken[client] is { } line) { Emit(line); _deferredWoken[client] = null; }
    }

    private static bool SysOf(TimelineEvent e) => e.Sys;

    private void Line(double t, int client, string ev, string? rest) => Emit(Format(t, client, ev, rest));

    private string Format(double t, int client, string ev, string? rest)
    {
        _sb.Clear();
        _sb.Append("{\"t\":").Append(t.ToString("0.000000", CultureInfo.InvariantCulture))
           .Append(",\"task\":\"").Append(Task(_scenario, client)).Append("\",\"ev\":\"").Append(ev).Append('"');
        if (rest is not null) _sb.Append(',').Append(rest);
        return _sb.Append('}').ToString();
    }

    private void Emit(string line)
    {
        Lines++;
        _write(line);
    }
}
