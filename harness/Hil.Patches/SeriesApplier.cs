using System.Text.RegularExpressions;
using Hil.Kernel;

namespace Hil.Patches;

/// <summary>
/// Applies a series, patch after patch, to a copy of the kernel's drivers/tee/ with GNU patch
/// (an argument vector, never a shell). Each patch is first tried with --dry-run so that a
/// refusal leaves the tree as the previous patch left it, and it is applied with no fuzz: a
/// hunk whose context does not match exactly is refused rather than placed where it might not
/// belong (an offset is fine: that is the same context found a few lines away).
/// </summary>
public static partial class SeriesApplier
{
    /// <param name="tree">The folder holding drivers/tee/ (the kernel tree's root for the series' paths).</param>
    /// <param name="sourceName">How to name the source in messages ("linux 6.12.118-1").</param>
    public static async Task ApplyAsync(PatchSeries series, string tree, string sourceName, CancellationToken ct)
    {
        var scratch = Path.Combine(Path.GetTempPath(), $"hil-series-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(scratch);
        try
        {
            var n = 0;
            foreach (var p in series.Patches)
            {
                var file = Path.Combine(scratch, $"{++n:D4}.patch");
                await File.WriteAllTextAsync(file, p.Diff, ct);
                var check = await RunPatchAsync(p, tree, file, dryRun: true, ct);
                if (check.ExitCode != 0) throw Refusal(p, check, sourceName);
                var apply = await RunPatchAsync(p, tree, file, dryRun: false, ct);
                if (apply.ExitCode != 0) throw Refusal(p, apply, sourceName);
            }
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>patch's argument vector for one patch file (exposed for tests and logs).</summary>
    public static IReadOnlyList<string> Arguments(SeriesPatch p, string tree, string file, bool dryRun) =>
    [
        $"-p{p.StripLevel}", "--batch", "--forward", "--fuzz=0", "--no-backup-if-mismatch",
        // Rejects are reported by us, never written into the tree.
        "--reject-file=-", "--directory", tree, "--input", file, .. dryRun ? new[] { "--dry-run" } : [],
    ];

    private static Task<ToolResult> RunPatchAsync(SeriesPatch p, string tree, string file, bool dryRun, CancellationToken ct) =>
        ExternalTool.RunAsync("patch", Arguments(p, tree, file, dryRun), check: false, ct: ct);

    /// <summary>Turns patch's report into one line naming the patch, the file and the first hunk that failed.</summary>
    internal static PatchRejectedException Refusal(SeriesPatch p, ToolResult r, string sourceName)
    {
        var output = (r.Stdout + "\n" + r.Stderr).Replace("\r", "");
        string? file = null;
        foreach (var line in output.Split('\n'))
        {
            var f = FileLine().Match(line);
            if (f.Success) { file = f.Groups["f"].Value.Trim('\'', '"'); continue; }
            var h = HunkFailed().Match(line);
            if (h.Success)
            {
                var number = int.Parse(h.Groups["n"].Value);
                var fd = p.Files.FirstOrDefault(x => x.Path == file);
                var hunk = fd?.Hunks.FirstOrDefault(x => x.Number == number);
                var where = hunk is null ? "" : $" (@@ -{hunk.OldStart},{hunk.OldCount} +{hunk.NewStart},{hunk.NewCount} @@, line {hunk.LineInPatch} of the patch)";
                return new PatchRejectedException(PatchRejection.DoesNotApply,
                    $"{p.Name}: {file}: hunk #{number}{where} does not apply to {sourceName}", [output.Trim()]);
            }
            if (line.Contains("Reversed (or previously applied) patch detected", StringComparison.Ordinal))
                return new PatchRejectedException(PatchRejection.DoesNotApply,
                    $"{p.Name}: {file}: already applied to {sourceName} (or reversed)", [output.Trim()]);
            if (line.StartsWith("can't find file to patch", StringComparison.Ordinal) || line.Contains("No such file", StringComparison.Ordinal))
            {
                var named = MissingFileOf(p, line) ?? file ?? p.Files[0].Path;
                return new PatchRejectedException(PatchRejection.DoesNotApply,
                    $"{p.Name}: {named}: no such file in {sourceName}", [output.Trim()]);
            }
            if (line.Contains("already exists", StringComparison.Ordinal))
                return new PatchRejectedException(PatchRejection.DoesNotApply,
                    $"{p.Name}: {file}: creates a file that {sourceName} already has", [output.Trim()]);
        }
        var tail = ExternalTool.Tail(output, 3).Replace('\n', ' ').Trim();
        return new PatchRejectedException(PatchRejection.DoesNotApply,
            $"{p.Name}: does not apply to {sourceName}{(file is null ? "" : $" ({file})")}: {tail}", [output.Trim()]);
    }

    /// <summary>patch names a missing file only by the line of the patch it was reading: the last file header at or before it.</summary>
    private static string? MissingFileOf(SeriesPatch p, string line)
    {
        var m = InputLine().Match(line);
        if (!m.Success) return null;
        var at = int.Parse(m.Groups["l"].Value);
        // The file whose header precedes that line of the patch (patch counts from the diff we gave it).
        var diffLines = p.Diff.Split('\n');
        string? best = null;
        foreach (var f in p.Files)
        {
            var idx = Array.FindIndex(diffLines, l => l.StartsWith("+++ ", StringComparison.Ordinal) && l.Contains(f.Path, StringComparison.Ordinal));
            if (idx >= 0 && idx + 1 <= at + 1) best = f.Path;
        }
        return best;
    }

    [GeneratedRegex(@"^(?:checking|patching) file (?<f>.+)$")]
    private static partial Regex FileLine();

    [GeneratedRegex(@"^Hunk #(?<n>\d+) FAILED at (?<at>\d+)")]
    private static partial Regex HunkFailed();

    [GeneratedRegex(@"can't find file to patch at input line (?<l>\d+)")]
    private static partial Regex InputLine();
}
