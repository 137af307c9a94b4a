namespace Hil.Cli.Bench;

/// <summary>Helpers shared by the board-layer benchmarks (ssh, shell).</summary>
internal static class BenchTiming
{
    /// <summary>The median of a few measurements: one slow round (the machine is shared) does not decide.</summary>
    public static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        return v.Length == 0 ? double.NaN : v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }
}
