using CsCheck;
using Hil.Model.Conformance;

namespace Hil.Model.Tests;

/// <summary>
/// Malformed and odd traces (Corpus/traces, written by Corpus/make-traces.py with what each must
/// give): every one gets a clear error naming its file, line and field, or the right verdict —
/// never a crash, a hang or a silent CONFORMS.
/// </summary>
public class MalformedTraceTests
{
    internal static string CorpusDir => Path.Combine(TestContext.CurrentContext.TestDirectory, "Corpus", "traces");

    public sealed record Expectation(string File, string Kind, long Line, string? Field)
    {
        public override string ToString() => Field is null ? $"{File}: {Kind} {Line}" : $"{File}: {Kind} {Line} {Field}";
    }

    internal static IEnumerable<Expectation> Expectations()
    {
        foreach (var raw in File.ReadLines(Path.Combine(CorpusDir, "expected.tsv")))
        {
            if (raw.StartsWith('#') || raw.Length == 0) continue;
            var (file, expect) = (raw.Split('\t')[0], raw.Split('\t')[1].Split(' '));
            yield return expect[0] switch
            {
                "error" => new Expectation(file, "error", long.Parse(expect[1]), expect[2]),
                "diverges" => new Expectation(file, "diverges", long.Parse(expect[1]), null),
                _ => new Expectation(file, "conforms", 0, null),
            };
        }
    }

    /// <summary>What the checker said about a file, in the manifest's words.</summary>
    internal static string Outcome(string path)
    {
        try
        {
            var r = ConformanceChecker.Check(() => File.OpenRead(path), path);
            return r.Conforms ? "conforms 0" : $"diverges {r.Divergence!.Line}";
        }
        catch (TraceFormatException ex)
        {
            // The message is what the CLI prints after "hil: ": file, line and field first.
            Assert.That(ex.Message, Does.StartWith($"{path}:{ex.Line}: {ex.Field}: "));
            return $"error {ex.Line} {ex.Field}";
        }
    }

    [Test]
    public void The_corpus_has_at_least_60_malformed_traces()
    {
        var all = Expectations().ToList();
        Assert.That(all.Count(e => e.Kind == "error"), Is.GreaterThanOrEqualTo(60));
        Assert.That(Directory.GetFiles(CorpusDir, "*.jsonl").Select(Path.GetFileName), Is.EquivalentTo(all.Select(e => e.File)),
            "every corpus file has an expectation and every expectation a file");
    }

    [Test]
    public void Every_corpus_trace_gets_its_error_or_its_verdict()
    {
        var wrong = new List<string>();
        foreach (var exp in Expectations())
        {
            var got = Outcome(Path.Combine(CorpusDir, exp.File));
            var want = exp.Kind switch { "error" => $"error {exp.Line} {exp.Field}", "diverges" => $"diverges {exp.Line}", _ => "conforms 0" };
            if (got != want) wrong.Add($"{exp.File}: expected {want}, got {got}");
        }
        Assert.That(wrong, Is.Empty, string.Join("\n", wrong));
    }

    [Test]
    public void Dev_zero_is_refused_within_the_line_bound()
    {
        var ex = Assert.Throws<TraceFormatException>(() => ConformanceChecker.Check(() => File.OpenRead("/dev/zero"), "/dev/zero"))!;
        Assert.That((ex.File, ex.Line, ex.Field), Is.EqualTo(("/dev/zero", 1L, "(line)")));
    }

    [Test]
    public void A_huge_line_is_refused_without_reading_it_all()
    {
        // 64 MiB of digits with no newline: refused once the line passes the bound, long before the end.
        var stream = new EndlessStream((byte)'7', 64L << 20);
        var ex = Assert.Throws<TraceFormatException>(() => ConformanceChecker.Check(() => stream, "huge.jsonl"))!;
        Assert.That((ex.Line, ex.Field), Is.EqualTo((1L, "(line)")));
        Assert.That(stream.Position, Is.LessThanOrEqualTo(2L * TraceReader.MaxLineBytes));
    }

    /// <summary>A stream of one repeated byte (no newline), counting what was read.</summary>
    private sealed class EndlessStream(byte value, long length) : Stream
    {
        private long _pos;
        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(count, length - _pos);
            buffer.AsSpan(offset, n).Fill(value);
            _pos += n;
            return n;
        }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _pos; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>
/// More malformed traces than the corpus holds: a conforming simulated trace with one line
/// broken in one of the ways users and tools break them, at a random line. The checker must name
/// exactly that line (and the field, where the breakage has one) — never crash, never accept it.
/// </summary>
public class MalformedTraceGeneratorTests
{
    private enum Breakage { DuplicateField, Garbage, NegativeTime, EarlierTime, LongTask, NegativeCounter, NoTime, Truncated, WrongFormat, UnknownEvent }

    private static readonly string[] Scenarios = ["absorbed-wakeup", "total-minus-one", "etienne-v10-review", "scmi-deadlock", "jens-second-system-user", "v9-one-thread"];

    // (declared after Scenarios: static fields start in text order)
    private static readonly CsCheck.Gen<(int Scenario, Breakage How, double Where, int Size)> Cases =
        CsCheck.Gen.Select(CsCheck.Gen.Int[0, Scenarios.Length - 1], CsCheck.Gen.Enum<Breakage>(), CsCheck.Gen.Double[0, 1], CsCheck.Gen.Int[1, 400]);

    private static readonly Dictionary<string, string[]> Traces = Scenarios.ToDictionary(s => s,
        s => ConformanceTests.TraceOf(TestScenarios.Load(s)).Split('\n', StringSplitOptions.RemoveEmptyEntries));

    /// <summary>The broken trace, the line broken (1-based) and the field the error must name (null: any).</summary>
    private static (string Text, long Line, string? Field) Break(string[] lines, Breakage how, double where, int size)
    {
        var l = (string[])lines.Clone();
        var i = how == Breakage.WrongFormat ? 0 : 1 + (int)(where * (l.Length - 2));   // an event line (line 1 is the header)
        string? field;
        var s = l[i];
        switch (how)
        {
            case Breakage.DuplicateField: s = "{\"task\":\"X-" + size + "\"," + s[1..]; field = "task"; break;
            case Breakage.Garbage: s += new string('x', size % 7 + 1); field = "(line)"; break;
            case Breakage.NegativeTime: s = SetTime(s, -size / 1000.0); field = "t"; break;
            case Breakage.EarlierTime:
                // Earlier than the line before (or negative when that one is at 0): both are errors of "t".
                var before = i > 1 ? TimeOf(l[i - 1]) : 0;
                s = SetTime(s, before - 0.000001 * size); field = "t"; break;
            case Breakage.LongTask: s = System.Text.RegularExpressions.Regex.Replace(s, "\"task\":\"[^\"]*\"", $"\"task\":\"{new string('k', TraceReader.MaxTaskName + size)}\""); field = "task"; break;
            case Breakage.NegativeCounter: s = s[..^1] + $",\"free\":-{size}}}"; field = "free"; break;
            case Breakage.NoTime: s = System.Text.RegularExpressions.Regex.Replace(s, "\"t\":[-0-9.eE]+,", ""); field = "t"; break;
            case Breakage.Truncated: s = s[..Math.Max(1, Math.Min(s.Length - 1, size % s.Length))]; field = null; break;
            case Breakage.WrongFormat: s = s.Replace("hil-cq-trace/1", $"hil-cq-trace/{size + 1}"); field = "format"; break;
            default: s = s.Replace("\"ev\":\"", "\"ev\":\"zz"); field = "ev"; break;
        }
        l[i] = s;
        return (string.Join("\n", l) + "\n", i + 1, field);
    }

    private static double TimeOf(string line) =>
        double.Parse(System.Text.RegularExpressions.Regex.Match(line, "\"t\":([-0-9.eE]+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

    private static string SetTime(string line, double t) =>
        System.Text.RegularExpressions.Regex.Replace(line, "\"t\":[-0-9.eE]+", "\"t\":" + t.ToString("R", System.Globalization.CultureInfo.InvariantCulture));

    [Test]
    public void Every_generated_breakage_is_named_at_its_line_and_field()
    {
        Cases.Sample(c =>
        {
            var (text, line, field) = Break(Traces[Scenarios[c.Scenario]], c.How, c.Where, c.Size);
            try
            {
                ConformanceChecker.CheckText(text, "gen.jsonl");
                return false;   // accepted or judged: the breakage went unnoticed
            }
            catch (TraceFormatException ex)
            {
                return ex.File == "gen.jsonl" && ex.Line == line && (field is null || ex.Field == field)
                    && ex.Message.StartsWith($"gen.jsonl:{line}: {ex.Field}: ");
            }
        }, iter: 2000, print: c =>
        {
            var (text, line, field) = Break(Traces[Scenarios[c.Scenario]], c.How, c.Where, c.Size);
            string got;
            try { got = ConformanceChecker.CheckText(text, "gen.jsonl").Conforms ? "conforms" : "diverges"; }
            catch (Exception ex) { got = ex.Message; }
            return $"{c}: expected line {line} field {field}; got {got}\n{text.Split('\n')[line - 1]}";
        });
    }
}
