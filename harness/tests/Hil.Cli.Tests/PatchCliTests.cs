using System.CommandLine;
using Hil.Cli;
using Hil.Cli.Commands;

namespace Hil.Cli.Tests;

/// <summary>
/// `hil patch build` with bad input: exit 2 and one line naming what is wrong (the patch, the
/// file), decided before any source is fetched or anything built.
/// </summary>
[NonParallelizable]
public class PatchCliTests
{
    private static (int Code, string Out, string Err) Hil(params string[] args) => CliHarness.Hil(args);

    private static string Corpus(string name) => CliHarness.Repo("testsuites", "patches", name);

    public static IEnumerable<TestCaseData> BadInput()
    {
        TestCaseData Case(string why, string? fileText, string expected, params string[] args) =>
            new TestCaseData(fileText, expected, args).SetName($"{why}: hil patch {string.Join(' ', args)}");
        yield return Case("no series", null, "Required argument missing", "build");
        yield return Case("unknown option", null, "--frob", "build", "--frob", "x.patch");
        yield return Case("empty file", "", "x.patch: empty file, no patch in it", "build", "x.patch");
        yield return Case("outside drivers/tee", "--- a/fs/ext4/super.c\n+++ b/fs/ext4/super.c\n@@ -1 +1 @@\n-a\n+b\n",
            "x.patch: touches fs/ext4/super.c, outside drivers/tee/", "build", "x.patch");
        yield return Case("truncated hunk", "--- a/drivers/tee/optee/call.c\n+++ b/drivers/tee/optee/call.c\n@@ -1,3 +1,3 @@\n-a\n",
            "x.patch: drivers/tee/optee/call.c: hunk #1 at line 3 is truncated or malformed", "build", "x.patch");
        yield return Case("no diff in the message", "From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] words\n\nonly words\n",
            "x.patch (\"[PATCH] words\"): contains no diff", "build", "x.patch");
        yield return Case("missing file", null, "nothere.patch: no such file", "build", "/nonexistent/nothere.patch");
        yield return Case("unknown board", null, "unknown QEMU board 'no-such-board'", "build", "bug-01", "--board", "no-such-board");
        yield return Case("run: empty file", "", "x.patch: empty file, no patch in it", "run", "x.patch");
        yield return Case("run: binary file", "\0\u0001ELF", "x.patch: binary file", "run", "x.patch");
        yield return Case("run: outside drivers/tee", "--- a/fs/ext4/super.c\n+++ b/fs/ext4/super.c\n@@ -1 +1 @@\n-a\n+b\n",
            "x.patch: touches fs/ext4/super.c, outside drivers/tee/", "run", "x.patch");
        yield return Case("run: unknown policy", null, "--expect-policy: 'nope' is not a model policy", "run", "bug-01", "--expect-policy", "nope");
        yield return Case("run: unknown claimed policy", "Claims-Policy: bogus\n--- a/drivers/tee/optee/call.c\n+++ b/drivers/tee/optee/call.c\n@@ -1 +1 @@\n-a\n+b\n",
            "Claims-Policy: 'bogus' is not a model policy", "run", "x.patch");
        yield return Case("run: no board instances", null, "--instances: give 1 to 8", "run", "bug-01", "--instances", "0");
        yield return Case("run: no control runs", null, "--control-runs: give 1 to 20", "run", "bug-01", "--control-runs", "0");
        yield return Case("run: a board without a kernel source", null, "a kernel tree named in a board file is not supported yet", "run", "bug-01", "--board", "example-rpi3");
        yield return Case("run: unknown board", null, "patch runs build against a kernel source HilHarness fetches itself", "run", "bug-01", "--board", "no-such-board");
    }

    [TestCaseSource(nameof(BadInput))]
    public void Bad_input_is_one_line_and_exit_2(string? fileText, string expected, string[] args)
    {
        var dir = Path.Combine(Path.GetTempPath(), "hil-patch-cli-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            var file = Path.Combine(dir, "x.patch");
            if (fileText is not null) File.WriteAllText(file, fileText);
            var real = args.Select(a => a == "x.patch" ? file : a == "bug-01" ? Corpus("bug-01-lost-forward-wakeup.patch") : a).Prepend("patch").ToArray();
            var r = Hil(real);
            var what = $"hil {string.Join(' ', real)}: exit {r.Code}\n{r.Out}{r.Err}";
            Assert.That(r.Code, Is.EqualTo(2), what);
            Assert.That(r.Err, Does.Contain(expected), what);
            Assert.That(r.Err, Does.Not.Contain("internal error").And.Not.Contain("   at "), what);
            var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            // One line; the parser's own complaints add its usual hint line.
            Assert.That(lines, Has.Length.LessThanOrEqualTo(args.Length == 1 || args.Contains("--frob") ? 2 : 1), what);
            Assert.That(r.Out, Is.Empty, what);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
