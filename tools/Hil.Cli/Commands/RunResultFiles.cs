using System.Globalization;
using System.Xml.Linq;
using Serilog;

namespace Hil.Cli.Commands;

/// <summary>
/// Each board's suite results are written apart (RESULTS/BOARD/SUITE.junit.xml, .nunit.xml) by its
/// own `dotnet test`; this merges them into RESULTS/SUITE.junit.xml and .nunit.xml, the files a CI
/// job reading one file per suite has always found there.
/// </summary>
internal static class RunResultFiles
{
    private static readonly string[] JUnitCounts = ["tests", "failures", "errors", "skipped", "time"];
    private static readonly string[] NUnitCounts = ["testcasecount", "total", "passed", "failed", "inconclusive", "skipped", "asserts", "duration"];

    public static void Merge(string results, string suite, IEnumerable<string> boards, ILogger log)
    {
        var list = boards.ToList();
        try
        {
            Write(Path.Combine(results, suite + ".junit.xml"), list.Select(b => (b, Path.Combine(results, b, suite + ".junit.xml"))), "testsuite", JUnitCounts, null);
            Write(Path.Combine(results, suite + ".nunit.xml"), list.Select(b => (b, Path.Combine(results, b, suite + ".nunit.xml"))), "test-suite", NUnitCounts, "result");
        }
        catch (Exception ex) when (ex is IOException or System.Xml.XmlException or UnauthorizedAccessException)
        {
            // The per-board files are the results; a merge that fails loses nothing but the convenience.
            log.Warning("merging the {Suite} results of the boards failed: {Message}", suite, ex.Message);
        }
    }

    /// <summary>
    /// The first board's document with every other board's top-level <paramref name="child"/>
    /// elements appended, and the root's counts summed (a result attribute becomes Failed if any was).
    /// </summary>
    private static void Write(string target, IEnumerable<(string Board, string File)> sources, string child, string[] counts, string? resultAttribute)
    {
        var docs = sources.Where(s => File.Exists(s.File)).Select(s => Named(XDocument.Load(s.File), child, s.Board)).ToList();
        if (docs.Count == 0)
        {
            File.Delete(target);
            return;
        }
        var merged = new XDocument(docs[0]);
        var root = merged.Root!;
        foreach (var other in docs.Skip(1))
        {
            root.Add(other.Root!.Elements(child));
            foreach (var name in counts)
                if (root.Attribute(name) is { } a && other.Root!.Attribute(name) is { } b
                    && double.TryParse(a.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var x)
                    && double.TryParse(b.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var y))
                    a.Value = (x + y).ToString(name is "time" or "duration" ? "0.######" : "0", CultureInfo.InvariantCulture);
            if (resultAttribute is not null && root.Attribute(resultAttribute) is { } r && other.Root!.Attribute(resultAttribute)?.Value == "Failed")
                r.Value = "Failed";
        }
        merged.Save(target);
    }

    /// <summary>Every board ran the same assembly: its top-level suites are named after the board too, so a CI viewer tells them apart.</summary>
    private static XDocument Named(XDocument doc, string child, string board)
    {
        foreach (var e in doc.Root!.Elements(child))
            if (e.Attribute("name") is { } n) n.Value = $"{n.Value} ({board})";
        return doc;
    }
}
