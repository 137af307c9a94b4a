using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Hil.Patches;

/// <summary>One hunk of a file diff: its number within the file (as patch(1) counts) and where it stands.</summary>
public sealed record Hunk(int Number, string Header, int OldStart, int OldCount, int NewStart, int NewCount, int LineInPatch);

/// <summary>One file of a patch, with its path relative to the kernel tree (e.g. drivers/tee/optee/call.c).</summary>
public sealed record FileDiff(string Path, string? OldPath, string? NewPath, IReadOnlyList<Hunk> Hunks, int LineInPatch)
{
    public bool IsNew => OldPath is null;
    public bool IsDeleted => NewPath is null;
}

/// <summary>
/// One patch of a series: a git format-patch file, one message of an mbox, or a plain diff.
/// <see cref="Diff"/> is the diff part alone (headers and hunks), ready for patch(1) with
/// <c>-p<see cref="StripLevel"/></c>.
/// </summary>
public sealed record SeriesPatch(string Name, string Subject, int StripLevel, IReadOnlyList<FileDiff> Files, string Diff)
{
    /// <summary>The commit message (empty for a plain diff).</summary>
    public string Message { get; init; } = "";

    /// <summary>
    /// A trailer of the message ("Claims-Policy: v9"), the last one if repeated; null when absent.
    /// How a series states what it means to implement; what it breaks ("Breaks:") marks a known mutant.
    /// </summary>
    public string? Trailer(string name) => Message.Split('\n')
        .Select(l => l.Trim())
        .Where(l => l.StartsWith(name + ":", StringComparison.OrdinalIgnoreCase))
        .Select(l => l[(name.Length + 1)..].Trim())
        .LastOrDefault(v => v.Length > 0);

    public string Sha256 => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Diff)));
    public override string ToString() => Name;
}

/// <summary>
/// A series as reviewers hand it over: git format-patch files, an mbox of a series (a cover
/// letter is skipped), or plain unified diffs, in the order given. Every patch may only touch
/// files below <see cref="Tree"/>; anything else, an empty or binary patch or a malformed hunk is
/// refused here with one line naming the patch, the file and the line, before anything is built.
/// </summary>
public sealed partial class PatchSeries
{
    /// <summary>The only part of the kernel a series may change: the TEE subsystem and its OP-TEE driver.</summary>
    public const string Tree = "drivers/tee/";

    /// <summary>A patch file larger than this is not a driver patch (and is not read into memory).</summary>
    public const long MaxFileBytes = 8 * 1024 * 1024;

    public IReadOnlyList<SeriesPatch> Patches { get; }

    private PatchSeries(IReadOnlyList<SeriesPatch> patches) => Patches = patches;

    /// <summary>Every file the series touches, in first-touched order.</summary>
    public IReadOnlyList<string> TouchedFiles => Patches.SelectMany(p => p.Files).Select(f => f.Path).Distinct().ToList();

    /// <summary>
    /// True when the series changes the TEE core (tee.ko: drivers/tee/*.c and its private header)
    /// rather than only drivers/tee/optee/, so that tee.ko must be rebuilt and loaded too.
    /// </summary>
    public bool TouchesTeeCore => TouchedFiles.Any(f => !f.StartsWith(Tree + "optee/", StringComparison.Ordinal));

    /// <summary>A content key: the diffs in order (names and messages do not change what is built).</summary>
    public string ContentKey => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
        string.Join('\n', Patches.Select(p => $"{p.StripLevel} {p.Sha256}")))))[..16];

    public static PatchSeries Load(IReadOnlyList<string> files)
    {
        if (files.Count == 0) throw new PatchRejectedException(PatchRejection.Empty, "no patch given");
        var patches = new List<SeriesPatch>();
        foreach (var f in files) patches.AddRange(ParseFile(f, ReadText(f)));
        return new PatchSeries(patches);
    }

    /// <summary>Parses one file's text (named <paramref name="name"/> in messages).</summary>
    public static IReadOnlyList<SeriesPatch> ParseFile(string name, string text)
    {
        var display = Path.GetFileName(name);
        if (text.Trim().Length == 0) throw new PatchRejectedException(PatchRejection.Empty, $"{display}: empty file, no patch in it");
        var lines = text.Replace("\r\n", "\n").Split('\n');
        var messages = SplitMbox(lines);
        var result = new List<SeriesPatch>();
        foreach (var m in messages)
        {
            var label = messages.Count > 1 || m.Subject is not null
                ? $"{display} (message {m.Index}{(m.Subject is null ? "" : $", \"{m.Subject}\"")})"
                : display;
            if (messages.Count == 1 && m.Subject is not null) label = $"{display} (\"{m.Subject}\")";
            var patch = ParseMessage(label, m.Subject ?? display, lines, m.BodyStart, m.End);
            if (patch is null)
            {
                // A cover letter ([PATCH 0/N]) carries no diff by design.
                if (m.Subject is not null && CoverLetter().IsMatch(m.Subject)) continue;
                throw new PatchRejectedException(PatchRejection.Empty, $"{label}: contains no diff");
            }
            result.Add(patch);
        }
        if (result.Count == 0) throw new PatchRejectedException(PatchRejection.Empty, $"{display}: contains no diff (only a cover letter)");
        return result;
    }

    private static string ReadText(string file)
    {
        var display = Path.GetFileName(file);
        byte[] bytes;
        try
        {
            // Hil.Boards' bounded opener: folders, FIFOs and devices are refused in one line, never waited on.
            using var stream = Hil.Boards.InputFiles.InputFile.OpenRead(file, "patch");
            var buffer = new MemoryStream();
            var chunk = new byte[81920];
            int n;
            while ((n = stream.Read(chunk, 0, chunk.Length)) > 0)
            {
                if (buffer.Length + n > MaxFileBytes)
                    throw new PatchRejectedException(PatchRejection.Unreadable, $"{display}: larger than {MaxFileBytes >> 20} MiB, not a driver patch");
                buffer.Write(chunk, 0, n);
            }
            bytes = buffer.ToArray();
        }
        catch (Hil.Boards.InputFiles.InputFileException ex)
        {
            throw new PatchRejectedException(PatchRejection.Unreadable, $"{file}: {ex.Problem}");
        }
        catch (IOException ex)
        {
            throw new PatchRejectedException(PatchRejection.Unreadable, $"{file}: cannot be read: {ex.Message}");
        }
        // A NUL byte never occurs in a text patch: this is a binary file (an object, an archive).
        var nul = Array.IndexOf(bytes, (byte)0);
        if (nul >= 0) throw new PatchRejectedException(PatchRejection.Binary, $"{display}: binary file (NUL byte at offset {nul}), not a text patch");
        try { return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (DecoderFallbackException)
        {
            // Patches from Latin-1 mailers exist; their diff syntax is ASCII either way.
            return Encoding.Latin1.GetString(bytes);
        }
    }

    private sealed record Message(int Index, string? Subject, int BodyStart, int End);

    /// <summary>
    /// Splits at mbox "From " separator lines (git format-patch writes one per patch, so a
    /// format-patch file is an mbox of one). Text without one is a single plain diff.
    /// </summary>
    private static List<Message> SplitMbox(string[] lines)
    {
        var starts = new List<int>();
        for (var i = 0; i < lines.Length; i++)
            if (MboxFrom().IsMatch(lines[i]) && (i == 0 || lines[i - 1].Length == 0 || starts.Count == 0 && lines.Take(i).All(l => l.Trim().Length == 0)))
                starts.Add(i);
        if (starts.Count == 0) return [new Message(1, null, 0, lines.Length)];
        var list = new List<Message>();
        for (var k = 0; k < starts.Count; k++)
        {
            var end = k + 1 < starts.Count ? starts[k + 1] : lines.Length;
            // Headers run to the first empty line; Subject may be folded over several lines.
            string? subject = null;
            var i = starts[k] + 1;
            for (; i < end && lines[i].Length > 0; i++)
            {
                if (lines[i].StartsWith("Subject:", StringComparison.OrdinalIgnoreCase))
                {
                    var s = new StringBuilder(lines[i]["Subject:".Length..].Trim());
                    while (i + 1 < end && lines[i + 1].Length > 0 && (lines[i + 1][0] == ' ' || lines[i + 1][0] == '\t'))
                        s.Append(' ').Append(lines[++i].Trim());
                    subject = s.ToString();
                }
            }
            list.Add(new Message(k + 1, subject, i, end));
        }
        return list;
    }

    private sealed class FileBuilder
    {
        public string? GitOld, GitNew, Old, New;
        public bool Binary;
        public int Line;
        public readonly List<Hunk> Hunks = [];
    }

    /// <summary>
    /// The diff of one message: file headers (diff --git, ---/+++) and hunks read by their line
    /// counts, so a mail signature ("-- ") or a diffstat is never taken for a diff line.
    /// </summary>
    private static SeriesPatch? ParseMessage(string label, string subject, string[] lines, int start, int end)
    {
        var files = new List<FileBuilder>();
        FileBuilder? cur = null;
        var diffStart = -1;
        var diffEnd = -1;
        for (var i = start; i < end; i++)
        {
            var line = lines[i];
            var no = i + 1;
            if (line.StartsWith("diff --git ", StringComparison.Ordinal))
            {
                cur = new FileBuilder { Line = no };
                var m = GitDiffLine().Match(line);
                if (m.Success) { cur.GitOld = m.Groups["a"].Value; cur.GitNew = m.Groups["b"].Value; }
                files.Add(cur);
                if (diffStart < 0) diffStart = i;
                diffEnd = i;
                continue;
            }
            if (line.StartsWith("--- ", StringComparison.Ordinal) && i + 1 < end && lines[i + 1].StartsWith("+++ ", StringComparison.Ordinal))
            {
                // A plain diff has no 'diff --git' line: the ---/+++ pair starts the file.
                if (cur is null || cur.Old is not null || cur.Hunks.Count > 0)
                {
                    cur = new FileBuilder { Line = no };
                    files.Add(cur);
                    if (diffStart < 0) diffStart = i;
                }
                cur.Old = HeaderPath(line[4..]);
                cur.New = HeaderPath(lines[i + 1][4..]);
                i++;
                diffEnd = i;
                continue;
            }
            if (cur is not null && (line.StartsWith("GIT binary patch", StringComparison.Ordinal) ||
                                    line.StartsWith("Binary files ", StringComparison.Ordinal) && line.EndsWith(" differ", StringComparison.Ordinal)))
            {
                cur.Binary = true;
                diffEnd = i;
                continue;
            }
            if (cur is not null && line.StartsWith("@@ ", StringComparison.Ordinal))
            {
                var h = HunkHeader().Match(line);
                if (!h.Success) throw new PatchRejectedException(PatchRejection.Malformed, $"{label}: line {no}: malformed hunk header '{Short(line)}'");
                int Num(string g, int dflt) => h.Groups[g].Success ? int.Parse(h.Groups[g].Value, CultureInfo.InvariantCulture) : dflt;
                var hunk = new Hunk(cur.Hunks.Count + 1, line, Num("os", 0), Num("oc", 1), Num("ns", 0), Num("nc", 1), no);
                var (oldLeft, newLeft) = (hunk.OldCount, hunk.NewCount);
                var j = i + 1;
                for (; j < end && (oldLeft > 0 || newLeft > 0); j++)
                {
                    var l = lines[j];
                    // patch(1) and git take an empty line inside a hunk as an empty context line (mailers strip the space).
                    var c = l.Length == 0 ? ' ' : l[0];
                    if (c == ' ') { oldLeft--; newLeft--; }
                    else if (c == '-') oldLeft--;
                    else if (c == '+') newLeft--;
                    else if (c == '\\') { }
                    else break;
                    if (oldLeft < 0 || newLeft < 0) break;
                }
                if (oldLeft != 0 || newLeft != 0)
                    throw new PatchRejectedException(PatchRejection.Malformed,
                        $"{label}: {PathOf(cur, 1) ?? "?"}: hunk #{hunk.Number} at line {no} is truncated or malformed " +
                        $"({hunk.OldCount} old and {hunk.NewCount} new lines announced, line {j + 1} does not fit)");
                // A trailing "\ No newline at end of file" belongs to the hunk.
                while (j < end && lines[j].StartsWith('\\')) j++;
                cur.Hunks.Add(hunk);
                i = j - 1;
                diffEnd = i;
                continue;
            }
            if (cur is not null && cur.Hunks.Count == 0 && !cur.Binary && IsGitExtendedHeader(line)) { diffEnd = i; continue; }
        }
        if (files.Count == 0) return null;

        var strip = StripLevelOf(files);
        var result = new List<FileDiff>();
        foreach (var f in files)
        {
            var path = PathOf(f, strip);
            var display = path ?? f.GitNew ?? f.New ?? "?";
            if (f.Binary) throw new PatchRejectedException(PatchRejection.Binary, $"{label}: {display}: binary change (line {f.Line}); only text changes to the driver source can be built");
            foreach (var p in new[] { Strip(f.Old ?? f.GitOld, strip), Strip(f.New ?? f.GitNew, strip) })
                if (p is not null) CheckInsideTree(label, p);
            if (path is null) throw new PatchRejectedException(PatchRejection.Malformed, $"{label}: line {f.Line}: a file header without a file name");
            if (f.Hunks.Count == 0 && f.Old is null && f.GitOld is null)
                throw new PatchRejectedException(PatchRejection.Malformed, $"{label}: line {f.Line}: {path}: no hunks");
            result.Add(new FileDiff(path, IsDevNull(f.Old) ? null : Strip(f.Old ?? f.GitOld, strip),
                IsDevNull(f.New) ? null : Strip(f.New ?? f.GitNew, strip), f.Hunks, f.Line));
        }
        if (result.All(f => f.Hunks.Count == 0) && !files.Any(f => f.GitOld != f.GitNew))
            throw new PatchRejectedException(PatchRejection.Empty, $"{label}: its diff changes nothing (no hunks)");
        var diff = string.Join('\n', lines[diffStart..(diffEnd + 1)]) + "\n";
        // The message: what precedes the diff (git format-patch's "---" and diffstat left out).
        var body = lines[start..diffStart];
        var cut = Array.IndexOf(body, "---");
        var message = string.Join('\n', cut >= 0 ? body[..cut] : body).Trim();
        return new SeriesPatch(label, subject, strip, result, diff) { Message = message };
    }

    private static void CheckInsideTree(string label, string path)
    {
        var parts = path.Split('/');
        if (path.StartsWith('/') || parts.Any(p => p is ".." or "."))
            throw new PatchRejectedException(PatchRejection.OutsideTree, $"{label}: {path}: a path that leaves the tree; only files below {Tree} can be patched");
        if (!path.StartsWith(Tree, StringComparison.Ordinal) || path.Length == Tree.Length)
            throw new PatchRejectedException(PatchRejection.OutsideTree, $"{label}: touches {path}, outside {Tree}; only the TEE subsystem and its OP-TEE driver can be patched and built");
    }

    /// <summary>
    /// -p1 for git diffs and a/ b/ (or any 'dir/') prefixes, -p0 when the paths already start at
    /// drivers/: decided once per patch from its first real path, as patch(1) needs one level.
    /// </summary>
    private static int StripLevelOf(List<FileBuilder> files)
    {
        if (files.Any(f => f.GitOld is not null)) return 1;
        var first = files.Select(f => IsDevNull(f.New) ? f.Old : f.New).FirstOrDefault(p => p is not null && !IsDevNull(p));
        return first is not null && first.StartsWith("drivers/", StringComparison.Ordinal) ? 0 : 1;
    }

    private static string? PathOf(FileBuilder f, int strip)
    {
        var p = !IsDevNull(f.New) && f.New is not null ? f.New : !IsDevNull(f.Old) && f.Old is not null ? f.Old : f.GitNew ?? f.GitOld;
        return p is null ? null : Strip(p, strip);
    }

    private static string? Strip(string? path, int level)
    {
        if (path is null || IsDevNull(path)) return null;
        if (level == 0) return path;
        var slash = path.IndexOf('/');
        return slash < 0 ? path : path[(slash + 1)..];
    }

    private static bool IsDevNull(string? p) => p == "/dev/null";

    /// <summary>The path of a ---/+++ line: a tab (or, in old diffs, two spaces) starts a timestamp.</summary>
    private static string HeaderPath(string rest)
    {
        var tab = rest.IndexOf('\t');
        var p = tab >= 0 ? rest[..tab] : rest;
        var ts = TrailingTimestamp().Match(p);
        if (ts.Success) p = p[..ts.Index];
        p = p.Trim();
        if (p.Length >= 2 && p[0] == '"' && p[^1] == '"') p = p[1..^1];
        return p;
    }

    private static bool IsGitExtendedHeader(string line) =>
        line.StartsWith("index ", StringComparison.Ordinal) || line.StartsWith("new file mode ", StringComparison.Ordinal) ||
        line.StartsWith("deleted file mode ", StringComparison.Ordinal) || line.StartsWith("old mode ", StringComparison.Ordinal) ||
        line.StartsWith("new mode ", StringComparison.Ordinal) || line.StartsWith("similarity index ", StringComparison.Ordinal) ||
        line.StartsWith("dissimilarity index ", StringComparison.Ordinal) || line.StartsWith("rename from ", StringComparison.Ordinal) ||
        line.StartsWith("rename to ", StringComparison.Ordinal) || line.StartsWith("copy from ", StringComparison.Ordinal) ||
        line.StartsWith("copy to ", StringComparison.Ordinal);

    private static string Short(string s) => s.Length <= 60 ? s : s[..60] + "…";

    // "From 9c759e3ff302683eaa6b750c161a71b7458da11a Mon Sep 17 00:00:00 2001" (git) or any mbox From_ line.
    [GeneratedRegex(@"^From \S+ +(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d+ \d\d:\d\d(:\d\d)? .*\d{4}\s*$")]
    private static partial Regex MboxFrom();

    [GeneratedRegex(@"\[[^\]]*\b0+/\d+\s*\]")]
    private static partial Regex CoverLetter();

    [GeneratedRegex(@"^diff --git (?<a>\S+) (?<b>\S+)$")]
    private static partial Regex GitDiffLine();

    [GeneratedRegex(@"^@@ -(?<os>\d+)(,(?<oc>\d+))? \+(?<ns>\d+)(,(?<nc>\d+))? @@")]
    private static partial Regex HunkHeader();

    [GeneratedRegex(@"\s{2,}\d{4}-\d\d-\d\d.*$|\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4}$")]
    private static partial Regex TrailingTimestamp();
}
