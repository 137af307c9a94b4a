namespace Hil.Cli.Bench;

/// <summary>Helpers shared by the board-layer benchmarks (ssh, shell).</summary>
internal static class BenchTiming
{
    /// <summary>
    /// Runs baseline and candidate in alternating rounds and reports medians (plus best rounds): the
    /// machine is shared (QEMU builds run beside us), so one slow round must not decide.
    /// </summary>
    public static async Task<BenchReport> AlternatingAsync(string name, int commands, int rounds, string target, double targetRatio,
        string baselineName, Func<Task<double>> baseline, Func<Task<double>> candidate, string note)
    {
        var ours = new List<double>();
        var theirs = new List<double>();
        for (var round = 0; round < rounds; round++)
        {
            theirs.Add(await baseline());
            ours.Add(await candidate());
        }
        var c = Median(ours);
        var b = Median(theirs);
        var row = new BenchRow($"{commands} commands (median of {rounds})", c, b, "ms", target);
        return new BenchReport(name,
            [row, new BenchRow("per command", c / commands, b / commands, "ms"),
             new BenchRow($"{commands} commands (best of {rounds})", ours.Min(), theirs.Min(), "ms")],
            [$"HilHarness rounds: {string.Join(", ", ours.Select(x => x.ToString("0")))} ms; {baselineName} rounds: {string.Join(", ", theirs.Select(x => x.ToString("0")))} ms", note],
            row.Ratio <= targetRatio);
    }

    /// <summary>The median of a few measurements: one slow round (the machine is shared) does not decide.</summary>
    public static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        return v.Length == 0 ? double.NaN : v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }
}
