using System.Text;
using System.Text.Json;
using Hil.Suites.Common;
using NUnit.Framework.Constraints;

namespace Hil.Suites.SystemThreads;

/// <summary>
/// One observed figure beside the model's prediction, for the A/B table. Either asserted by a test
/// (<see cref="Agrees"/> is what the assertion found, <see cref="CountsAs"/> names the test) or
/// informational (<see cref="Agrees"/> null, <see cref="CountsAs"/> says why it is not asserted).
/// </summary>
public sealed record Figure(string Board, string Kernel, string Policy, string Test, string Measure, string Predicted, string Observed,
    bool? Agrees, string CountsAs, string? Tolerance = null);

/// <summary>
/// The figures one test writes. An asserted figure is recorded and asserted with the same NUnit
/// constraint, so the table can only say "agrees" when the test's assertion passed; an
/// informational one carries its reason instead of a verdict.
/// </summary>
public sealed class FigureSheet(BoardTestContext t, string test, string testMethod)
{
    /// <summary>Records the figure and asserts <paramref name="actual"/> against <paramref name="constraint"/> (inside a multiple-assert scope, failures add up).</summary>
    /// <param name="shown">What the table shows for the board (default: <paramref name="actual"/>).</param>
    /// <param name="tolerance">The tolerance the constraint uses, as the table states it ("±12 ms").</param>
    /// <param name="how">How the assertion compares, when the constraint alone does not say (a tolerance's origin).</param>
    public void Asserted<T>(string measure, object? predicted, T actual, IResolveConstraint constraint, string message,
        object? shown = null, string? tolerance = null, string? how = null)
    {
        var agrees = constraint.Resolve().ApplyTo(actual).IsSuccess;
        Figures.Write(t, new Figure("", "", "", test, measure, Figures.Format(predicted), Figures.Format(shown ?? actual), agrees,
            $"asserted in {testMethod}{(how is null ? "" : $": {how}")}", tolerance));
        Assert.That(actual, constraint, message);
    }

    /// <summary>
    /// Asserted against the model's replay of the traced traffic, unless the trace shows, before the
    /// measured moment, an interleaving the replay cannot reproduce (<paramref name="replayCannotFollow"/>:
    /// a woken caller overtaken). Then a disagreement is reported, not asserted: the conformance
    /// check has judged every event in the board's own order.
    /// </summary>
    public void AssertedAgainstReplay<T>(string measure, object? predicted, T actual, IResolveConstraint constraint, string message,
        string? replayCannotFollow, object? shown = null, string? tolerance = null, string? how = null)
    {
        if (replayCannotFollow is not null && !constraint.Resolve().ApplyTo(actual).IsSuccess)
        {
            Informational(measure, predicted, shown ?? actual,
                $"the replay cannot follow this run ({replayCannotFollow}); the conformance check judged every event in the board's order");
            return;
        }
        Asserted(measure, predicted, actual, constraint, message, shown, tolerance, how);
    }

    /// <summary>A figure no test asserts; <paramref name="reason"/> says why (the table prints it).</summary>
    public void Informational(string measure, object? predicted, object? observed, string reason) =>
        Figures.Write(t, new Figure("", "", "", test, measure, Figures.Format(predicted), Figures.Format(observed), null,
            $"informational ({testMethod}): {reason}"));
}

/// <summary>
/// Collects the suite's figures per board (figures.jsonl in the board's suite folder) and writes the
/// table across boards (system-threads.md at the results root) when the run ends — the README's
/// A/B table is this file.
/// </summary>
public static class Figures
{
    private static readonly object Gate = new();
    public const string TableFile = "system-threads.md";

    internal static void Write(BoardTestContext t, Figure figure)
    {
        // In a patch run each driver is a column of its own: the figures of the control and the patched driver side by side.
        var f = figure with { Board = t.Driver is { } d ? $"{t.Live.Target.Name}+{d.Driver.Name}" : t.Live.Target.Name, Kernel = t.Facts.KernelRelease ?? "?", Policy = t.Facts.Policy.Measured ?? "?" };
        var dir = SuiteResults.ForSuite(t.Live.Target.Name, "system-threads");
        Directory.CreateDirectory(dir);
        lock (Gate) File.AppendAllText(Path.Combine(dir, "figures.jsonl"), JsonSerializer.Serialize(f) + "\n");
        var verdict = f.Agrees switch { true => "", false => "  <-- DIFFERS", null => "  (informational)" };
        t.Note($"{f.Measure}: model {f.Predicted}, board {f.Observed}{(f.Tolerance is null ? "" : $" ({f.Tolerance})")}{verdict}");
    }

    internal static string Format(object? v) => v switch
    {
        null => "-",
        double d => d.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture),
        bool b => b ? "yes" : "no",
        _ => v.ToString() ?? "-",
    };

    /// <summary>Every board's figures as one markdown table: measures down, boards across, and how each row counts.</summary>
    public static string? WriteTable()
    {
        var root = SuiteResults.Root;
        if (!Directory.Exists(root)) return null;
        var figures = Directory.EnumerateFiles(root, "figures.jsonl", SearchOption.AllDirectories)
            .SelectMany(File.ReadAllLines).Where(l => l.Length > 0).Select(l => JsonSerializer.Deserialize<Figure>(l)!)
            .GroupBy(f => (f.Board, f.Test, f.Measure)).Select(g => g.Last()).ToList();
        if (figures.Count == 0) return null;
        var table = Render(figures);
        File.WriteAllText(Path.Combine(root, TableFile), table);
        return table;
    }

    /// <summary>The table for <paramref name="figures"/> (the last figure of each board, test and measure).</summary>
    public static string Render(IReadOnlyList<Figure> figures)
    {
        var boards = figures.Select(f => (f.Board, f.Kernel, f.Policy)).Distinct().OrderBy(b => b.Board).ToList();
        var sb = new StringBuilder();
        sb.Append("| measure |");
        foreach (var b in boards) sb.Append($" {b.Board} ({b.Kernel}, {b.Policy}): model / board |");
        sb.AppendLine(" counts as |").Append("|---|").Append(string.Concat(boards.Select(_ => "---|"))).AppendLine("---|");
        foreach (var row in figures.GroupBy(f => (f.Test, f.Measure)).OrderBy(g => g.Min(f => Order(f.Test))))
        {
            sb.Append($"| {Cell(row.Key.Measure)} |");
            foreach (var b in boards)
            {
                var f = row.FirstOrDefault(x => x.Board == b.Board);
                sb.Append(f is null ? " |" : $" {Cell(f.Predicted)} / {Cell(f.Observed)}{(f.Tolerance is null ? "" : $" ({Cell(f.Tolerance)})")}{(f.Agrees == false ? " **(differs)**" : "")} |");
            }
            sb.AppendLine($" {Cell(string.Join("; ", row.Select(f => f.CountsAs).Distinct()))} |");
        }
        return sb.ToString();
    }

    /// <summary>A markdown table cell: a '|' inside would end it.</summary>
    private static string Cell(string text) => text.Replace("|", "\\|", StringComparison.Ordinal);

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
