using System.CommandLine;
using System.Text.Json;
using Hil.Cli;
using Hil.Cli.Commands;

namespace Hil.Cli.Tests;

/// <summary>`hil model …` as a user runs it: exit codes, one-line errors, JSON that parses.</summary>
[NonParallelizable]
public class ModelCliTests
{
    private static string Repo(params string[] parts) => CliHarness.Repo(parts);

    private static (int Code, string Out, string Err) Hil(params string[] args) => CliHarness.Hil(args);

    [Test]
    public void Simulate_exits_0_without_findings_and_1_with_one()
    {
        var ok = Hil("model", "simulate", Repo("testsuites", "model", "total-minus-one.yaml"));
        Assert.That(ok.Code, Is.EqualTo(0), ok.Out + ok.Err);
        Assert.That(ok.Out, Does.Contain("findings: none"));
        var bad = Hil("model", "simulate", Repo("testsuites", "model", "scmi-deadlock.yaml"));
        Assert.That(bad.Code, Is.EqualTo(1));
        Assert.That(bad.Out, Does.Contain("FINDING deadlock"));
    }

    [Test]
    public void Explore_json_is_one_object_per_line_and_names_the_shortest_path()
    {
        var r = Hil("model", "explore", Repo("testsuites", "model", "jens-second-system-user.yaml"), "--json");
        Assert.That(r.Code, Is.EqualTo(1));
        var docs = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var finding = docs.Single(d => d.GetProperty("type").GetString() == "finding");
        Assert.That(finding.GetProperty("kind").GetString(), Is.EqualTo("deadlock"));
        Assert.That(finding.GetProperty("path").GetArrayLength(), Is.EqualTo(3));
        var result = docs.Single(d => d.GetProperty("type").GetString() == "result");
        Assert.That(result.GetProperty("complete").GetBoolean(), Is.True);
    }

    [Test]
    public void Policy_override_changes_the_verdict()
    {
        Assert.That(Hil("model", "explore", Repo("testsuites", "model", "scmi-deadlock.yaml"), "--policy", "mainline").Code, Is.EqualTo(0));
        Assert.That(Hil("model", "explore", Repo("testsuites", "model", "scmi-deadlock.yaml"), "--policy", "legacy").Code, Is.EqualTo(1));
    }

    [Test]
    public void Check_trace_reports_the_first_divergence_and_exits_1()
    {
        var dir = Directory.CreateTempSubdirectory("hil-cli-");
        try
        {
            var trace = Path.Combine(dir.FullName, "t.jsonl");
            File.WriteAllText(trace, """
                {"type":"header","policy":"mainline","threads":1}
                {"t":0.0,"task":"A-1","ev":"wait_init","w":"a0","sys":0}
                {"t":0.0,"task":"A-1","ev":"admitted"}
                {"t":0.1,"task":"B-2","ev":"wait_init","w":"b0","sys":0}
                {"t":0.1,"task":"B-2","ev":"admitted"}
                """);
            var r = Hil("model", "check-trace", trace);
            Assert.That(r.Code, Is.EqualTo(1));
            Assert.That(r.Out, Does.Contain("DIVERGES at line 5"));
            Assert.That(r.Out, Does.Contain("model state before it: free=0/1"));
        }
        finally { dir.Delete(true); }
    }

    [Test]
    public void Bad_input_gives_one_line_naming_file_line_and_field_and_exit_2()
    {
        var dir = Directory.CreateTempSubdirectory("hil-cli-");
        try
        {
            var f = Path.Combine(dir.FullName, "bad.yaml");
            File.WriteAllText(f, "policy: mainline\nthreads: 2\nclients:\n  - calls: [{ hold: soon }]\n");
            var r = Hil("model", "simulate", f);
            Assert.That(r.Code, Is.EqualTo(2));
            Assert.That(r.Err.Trim(), Is.EqualTo($"hil: {f}:4: clients[0].calls[0].hold: 'soon' is not a number of milliseconds"));
            Assert.That(r.Err, Does.Not.Contain("   at "), "no stack trace");

            var missing = Hil("model", "explore", Path.Combine(dir.FullName, "nope.yaml"));
            Assert.That((missing.Code, missing.Err.Trim()), Is.EqualTo((2, $"hil: {Path.Combine(dir.FullName, "nope.yaml")}:1: (scenario): no such file")));

            var policy = Hil("model", "simulate", Repo("testsuites", "model", "v9-one-thread.yaml"), "--policy", "v10");
            Assert.That(policy.Code, Is.EqualTo(2));
            Assert.That(policy.Err, Does.Contain("--policy:0: policy: unknown policy 'v10'"));

            var trace = Path.Combine(dir.FullName, "t.jsonl");
            File.WriteAllText(trace, "{\"type\":\"header\",\"policy\":\"mainline\",\"threads\":2}\n{\"t\":0,\"task\":\"x\",\"ev\":\"final\"}\n");
            var t = Hil("model", "check-trace", trace);
            Assert.That((t.Code, t.Err.Trim()), Is.EqualTo((2, $"hil: {trace}:2: w: required for \"final\" (the waiter's address)")));
        }
        finally { dir.Delete(true); }
    }

    [Test]
    public void Every_malformed_trace_of_the_corpus_exits_2_naming_file_line_and_field_or_gets_its_verdict()
    {
        // The corpus and what each file must give: harness/tests/Hil.Model.Tests/Corpus (make-traces.py).
        var dir = Repo("harness", "tests", "Hil.Model.Tests", "Corpus", "traces");
        var wrong = new List<string>();
        var errors = 0;
        foreach (var row in File.ReadLines(Path.Combine(dir, "expected.tsv")).Where(l => l.Length > 0 && !l.StartsWith('#')))
        {
            var (file, expect) = (row.Split('\t')[0], row.Split('\t')[1].Split(' '));
            var path = Path.Combine(dir, file);
            var r = Hil("model", "check-trace", path);
            var ok = expect[0] switch
            {
                "error" => r.Code == 2 && r.Err.Trim().StartsWith($"hil: {path}:{expect[1]}: {expect[2]}: ") && !r.Err.Trim().Contains('\n'),
                "diverges" => r.Code == 1 && r.Out.Contains($"DIVERGES at line {expect[1]} "),
                _ => r.Code == 0 && r.Out.Contains("CONFORMS"),
            };
            if (expect[0] == "error") errors++;
            if (!ok) wrong.Add($"{file}: expected {string.Join(' ', expect)}; exit {r.Code}: {r.Err.Trim()}{r.Out.Split('\n').FirstOrDefault(l => l.StartsWith("DIVERGES"))}");
        }
        Assert.That(wrong, Is.Empty, string.Join("\n", wrong));
        Assert.That(errors, Is.GreaterThanOrEqualTo(60));
    }

    [Test]
    public void Dev_zero_as_a_trace_exits_2_at_line_1()
    {
        var r = Hil("model", "check-trace", "/dev/zero");
        Assert.That((r.Code, r.Err.Trim()), Is.EqualTo((2, $"hil: /dev/zero:1: (line): line longer than 1024 KiB (no newline): not a trace")));
        }

    [Test]
    public void Identify_names_the_policies_a_board_trace_conforms_to()
    {
        var mainline = Hil("model", "identify", Repo("harness", "tests", "Hil.Model.Tests", "Traces", "qemu-6.12-xtest1013-window.jsonl"));
        Assert.That(mainline.Code, Is.EqualTo(0), mainline.Out + mainline.Err);
        Assert.That(mainline.Out, Does.Contain("conforms to: mainline, mainline-fifo"));
        Assert.That(mainline.Out, Does.Match(@"v9 +diverges at line \d+"));
        var legacy = Hil("model", "identify", Repo("harness", "tests", "Hil.Model.Tests", "Traces", "qemu-6.1-xtest1013-preempted-wait-init.jsonl"), "--json");
        var docs = legacy.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var verdict = docs.Single(d => d.GetProperty("type").GetString() == "result").GetProperty("conforms_to").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.That(verdict, Does.Contain("legacy").And.Not.Contain("mainline").And.Not.Contain("v9"));
    }
}
