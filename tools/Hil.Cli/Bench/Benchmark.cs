namespace Hil.Cli.Bench;

/// <summary>
/// One benchmark of `hil bench`. Performance claims are ratios against a baseline measured in
/// the same run (never absolute timings asserted by tests); each benchmark returns its rows.
/// </summary>
public interface IBenchmark
{
    /// <summary>Short name used on the command line, e.g. "explore", "ssh".</summary>
    string Name { get; }
    string Description { get; }
    Task<BenchReport> RunAsync(BenchOptions options, CancellationToken ct);
}

public sealed record BenchOptions(bool Quick);

/// <summary>A measured figure; Ratio = candidate / baseline when a baseline exists.</summary>
public sealed record BenchRow(string Measure, double Candidate, double? Baseline, string Unit, string? Target = null)
{
    public double? Ratio => Baseline is > 0 ? Candidate / Baseline : null;
}

public sealed record BenchReport(string Benchmark, IReadOnlyList<BenchRow> Rows, IReadOnlyList<string> Notes, bool TargetMet);
