namespace Hil.Workloads.Holder;

/// <summary>One holder's call as teeholder printed it (CLOCK_MONOTONIC ns on the board).</summary>
public sealed record HolderCallResult(int Index, uint StartMs, uint HoldMs, int Tid, ulong DueNs, ulong RequestNs, ulong ReturnNs, uint Result, uint Origin)
{
    public bool Succeeded => Result == 0;
    public TimeSpan Duration => TimeSpan.FromTicks((long)(ReturnNs - RequestNs) / 100);
    public double RequestOffsetMs(ulong t0Ns) => ((long)RequestNs - (long)t0Ns) / 1e6;
    public double ReturnOffsetMs(ulong t0Ns) => ((long)ReturnNs - (long)t0Ns) / 1e6;
}

/// <summary>A whole teeholder run: time base, per-call results, its own verdict and error lines.</summary>
public sealed record HolderReport(int ExitCode, int? Holders, ulong? T0Ns, IReadOnlyList<HolderCallResult> Calls, int? Failed, IReadOnlyList<string> Errors)
{
    /// <summary>Every holder opened its session and its call returned TEEC_SUCCESS.</summary>
    public bool Succeeded => ExitCode == 0 && Failed == 0 && Holders is { } n && Calls.Count == n && Calls.All(c => c.Succeeded);

    /// <summary>The report's calls in holder order (teeholder prints them as they return).</summary>
    public HolderCallResult Call(int index) => Calls.Single(c => c.Index == index);
}

/// <summary>Parses teeholder's stdout (ready / call / done lines) and stderr ("teeholder: ..." lines).</summary>
public static class HolderOutput
{
    public static HolderReport Parse(string stdout, string stderr, int exitCode)
    {
        int? holders = null, failed = null;
        ulong? t0 = null;
        var calls = new List<HolderCallResult>();
        foreach (var raw in stdout.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            var tag = line.Split(' ', 2)[0];
            switch (tag)
            {
                case "ready":
                {
                    var kv = KeyValueLine.Parse(line, skipWords: 1);
                    holders = kv.Number<int>("holders");
                    t0 = kv.Number<ulong>("t0_ns");
                    break;
                }
                case "call":
                {
                    var kv = KeyValueLine.Parse(line, skipWords: 1);
                    calls.Add(new HolderCallResult(kv.Number<int>("index"), kv.Number<uint>("start_ms"), kv.Number<uint>("hold_ms"),
                        kv.Number<int>("tid"), kv.Number<ulong>("due_ns"), kv.Number<ulong>("req_ns"), kv.Number<ulong>("ret_ns"),
                        kv.OptionalHex("res") ?? throw new FormatException($"no res= in: {line}"), kv.Number<uint>("origin")));
                    break;
                }
                case "done":
                {
                    var kv = KeyValueLine.Parse(line, skipWords: 1);
                    failed = kv.Number<int>("failed");
                    if (holders is not null && kv.Number<int>("holders") != holders)
                        throw new FormatException($"'done' names {kv.Number<int>("holders")} holders, 'ready' named {holders}");
                    break;
                }
                case "":
                    break;
                default:
                    throw new FormatException($"unexpected teeholder output line: {line}");
            }
        }
        var errors = stderr.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToList();
        return new HolderReport(exitCode, holders, t0, calls.OrderBy(c => c.Index).ToList(), failed, errors);
    }
}
