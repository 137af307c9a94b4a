using System.CommandLine;
using Hil.Cli.Bench;
using Spectre.Console;

namespace Hil.Cli.Commands;

/// <summary>`hil bench [NAME...] [--quick]` — runs the repo's benchmarks and prints a table.</summary>
public static class BenchCommands
{
    /// <summary>Every benchmark; add new ones here.</summary>
    public static IReadOnlyList<IBenchmark> All { get; } =
    [
        new ExploreBenchmark(),
        new ConformanceBenchmark(),
        new SshBenchmark(),
        new ShellBenchmark(),
        new BootBenchmark(),
        new PatchBenchmark(),
    ];

    public static Command Build()
    {
        var names = new Argument<string[]>("NAME") { Description = "benchmarks to run (default: all)", Arity = ArgumentArity.ZeroOrMore };
        var quick = new Option<bool>("--quick") { Description = "smaller workloads (for a quick look; README figures use the full run)" };
        var cmd = new Command("bench", "Run the benchmarks (ratios against a baseline measured in the same run)") { names, quick };
        cmd.SetAction(async (pr, ct) =>
        {
            var wanted = pr.GetValue(names) ?? [];
            var unknown = wanted.Where(n => All.All(b => b.Name != n)).ToList();
            if (unknown.Count > 0)
            {
                Console.Error.WriteLine($"hil bench: unknown benchmark '{unknown[0]}'; known: {string.Join(", ", All.Select(b => b.Name))}");
                return CliRunner.UsageError;
            }
            var ok = true;
            foreach (var b in All.Where(b => wanted.Length == 0 || wanted.Contains(b.Name)))
            {
                var report = await b.RunAsync(new BenchOptions(pr.GetValue(quick)), ct);
                Print(report);
                ok &= report.TargetMet;
            }
            return ok ? 0 : 1;
        });
        return cmd;
    }

    private static void Print(BenchReport r)
    {
        var t = new Table().Title($"[bold]{Markup.Escape(r.Benchmark)}[/]");
        t.AddColumns("measure", "HilHarness", "baseline", "unit", "ratio", "target");
        foreach (var row in r.Rows)
            t.AddRow(Markup.Escape(row.Measure), Fmt(row.Candidate), row.Baseline is { } b ? Fmt(b) : "-",
                Markup.Escape(row.Unit), row.Ratio is { } x ? x.ToString("0.00") : "-", Markup.Escape(row.Target ?? "-"));
        AnsiConsole.Write(t);
        foreach (var n in r.Notes) AnsiConsole.WriteLine("  " + n);
        AnsiConsole.WriteLine($"  target met: {(r.TargetMet ? "yes" : "NO")}");
    }

    private static string Fmt(double v) => v >= 100 ? v.ToString("N0") : v.ToString("0.###");
}
