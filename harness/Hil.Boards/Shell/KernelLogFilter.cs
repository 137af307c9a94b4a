using System.Text;
using System.Text.RegularExpressions;

namespace Hil.Boards.Shell;

/// <summary>
/// Finds kernel log lines (<c>[   12.345678] ...</c>) that the kernel wrote onto the console in the
/// middle of anything, even inside a word or a marker. The console shell searches its markers in the
/// stream with these removed, and decides per frame whether a kernel-like line was the board's
/// kernel (dropped from the result) or the command's own output (kept), by checking the frame's
/// length and copies/CRC.
/// Works on Latin-1 strings so that one char is one byte and offsets are byte offsets.
/// </summary>
public static partial class KernelLogFilter
{
    // printk's "[%5lu.%06lu] " prefix, optional "<level>" and "[  T123]" caller id; the line never
    // contains the shell's 0x1E marker byte, so a kernel line can never swallow a marker.
    [GeneratedRegex(@"(<\d>)?\[ *\d+\.\d{6}\](\[ *[TC]\d+\])? [^\n\x1e]*\n", RegexOptions.CultureInvariant)]
    private static partial Regex KernelLine();

    /// <summary>A removed kernel-like line: where it was in the raw text and where it would be in the clean text.</summary>
    public readonly record struct Segment(int RawStart, int CleanPosition, string Text);

    /// <summary>Removes every kernel-like line; returns the clean text and what was removed, in order.</summary>
    public static string Clean(string latin1, out List<Segment> removed)
    {
        removed = [];
        var matches = KernelLine().Matches(latin1);
        if (matches.Count == 0) return latin1;
        var sb = new StringBuilder(latin1.Length);
        var last = 0;
        foreach (Match m in matches)
        {
            sb.Append(latin1, last, m.Index - last);
            removed.Add(new Segment(m.Index, sb.Length, m.Value));
            last = m.Index + m.Length;
        }
        sb.Append(latin1, last, latin1.Length - last);
        return sb.ToString();
    }

    /// <summary>Removes kernel-like lines from text for display or prompt matching.</summary>
    public static string Strip(string text) => KernelLine().Replace(text, "");

    /// <summary>
    /// The ways <paramref name="clean"/>[start, end) could have looked before kernel lines were
    /// removed: each removed line inside the range may have been the command's own output. All
    /// subsets up to 2^<paramref name="maxOptional"/>; beyond that only "none" and "all".
    /// </summary>
    public static IEnumerable<(string Body, List<Segment> Dropped)> Candidates(string clean, int start, int end, IReadOnlyList<Segment> removed, int maxOptional = 10)
    {
        var inside = removed.Where(s => s.CleanPosition >= start && s.CleanPosition <= end).ToList();
        var body = clean[start..end];
        if (inside.Count == 0)
        {
            yield return (body, []);
            yield break;
        }
        IEnumerable<long> masks = inside.Count <= maxOptional
            ? Enumerable.Range(0, 1 << inside.Count).Select(i => (long)i)
            : [0L, (1L << inside.Count) - 1];
        foreach (var mask in masks)
        {
            // mask bit set = the line belongs to the output and is put back.
            var sb = new StringBuilder(body.Length + 64);
            var pos = start;
            var dropped = new List<Segment>();
            for (var i = 0; i < inside.Count; i++)
            {
                sb.Append(clean, pos, inside[i].CleanPosition - pos);
                pos = inside[i].CleanPosition;
                if ((mask & (1L << i)) != 0) sb.Append(inside[i].Text);
                else dropped.Add(inside[i]);
            }
            sb.Append(clean, pos, end - pos);
            yield return (sb.ToString(), dropped);
        }
    }
}
