using System.Text;
using System.Text.Json;
using Hil.Suites.Common;

namespace Hil.Suites.SystemThreads;

/// <summary>One observed figure beside the model's prediction, for the A/B table.</summary>
public sealed record Figure(string Board, string Kernel, string Policy, string Test, string Measure, string Predicted, string Observed, bool Agrees);

/// <summary>
/// Collects the suite's figures per board (figures.jsonl in the board's suite folder) and writes the
/// table across boards (system-threads.md at the results root) when the run ends — the README's
/// A/B table is this file.
/// </summary>
public static class Figures
{
    private static readonly object Gate = new();
    public const string TableFile = "system-threads.md";

    public static void Record(BoardTestContext t, string test, string measure, object? predicted, object? observed, bool agrees)
    {
        var f = new Figure(t.Live.Target.Name, t.Facts.KernelRelease ?? "?", t.Facts.Policy.Measured ?? "?", test, measure,
            Format(predicted), Format(observed), agrees);
        var dir = SuiteResults.ForSuite(t.Live.Target.Name, "system-threads");
        Directory.CreateDirectory(dir);
        lock (Gate) File.AppendAllText(Path.Combine(dir, "figures.jsonl"), JsonSerializer.Serialize(f) + "\n");
        t.Note($"{measure}: model {f.Predicted}, board {f.Observed}{(agrees ? "" : "  <-- DIFFERS")}");
    }

    private static string Format(object? v) => v switch
    {
        null => "-",
        double d => d.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture),
        bool b => b ? "yes" : "no",
        _ => v.ToString() ?? "-",
    };

    /// <summary>Every board's figures as one markdown table: measures down, boards across.</summary>
    public static string? WriteTable()
    {
        var root = SuiteResults.Root;
        if (!Directory.Exists(root)) return null;
        var figures = Directory.EnumerateFiles(root, "figures.jsonl", SearchOption.AllDirectories)
            .SelectMany(File.ReadAllLines).Where(l => l.Length > 0).Select(l => JsonSerializer.Deserialize<Figure>(l)!)
            .GroupBy(f => (f.Board, f.Test, f.Measure)).Select(g => g.Last()).ToList();
        if (figures.Count == 0) return null;
        var boards = figures.Select(f => (f.Board, f.Kernel, f.Policy)).Distinct().OrderBy(b => b.Board).ToList();
        var sb = new StringBuilder();
        sb.Append("| measure |");
        foreach (var b in boards) sb.Append($" {b.Board} ({b.Kernel}, {b.Policy}): model / board |");
        sb.AppendLine().Append("|---|").AppendLine(string.Concat(boards.Select(_ => "---|")));
        foreach (var row in figures.GroupBy(f => (f.Test, f.Measure)).OrderBy(g => g.Min(f => Order(f.Test))))
        {
            sb.Append($"| {row.Key.Measure} |");
            foreach (var b in boards)
            {
                var f = row.FirstOrDefault(x => x.Board == b.Board);
                sb.Append(f is null ? " |" : $" {f.Predicted} / {f.Observed}{(f.Agrees ? "" : " **(differs)**")} |");
            }
            sb.AppendLine();
        }
        var path = Path.Combine(root, TableFile);
        File.WriteAllText(path, sb.ToString());
        return sb.ToString();
    }

    private static int Order(string test) => test switch
    {
        "normal-saturation" => 1,
        "system-registration" => 2,
        "system-call-under-saturation" => 3,
        "wakeup-order" => 4,
        "xtest-1013" => 5,
        "wrong-model" => 6,
        _ => 9,
    };
}
