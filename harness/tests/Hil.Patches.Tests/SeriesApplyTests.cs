namespace Hil.Patches.Tests;

/// <summary>
/// Applying a series with the real GNU patch to a small tree of our own: a hunk that does not
/// apply is named by patch, file and hunk; a refusal leaves the tree as the previous patch left it.
/// </summary>
public class SeriesApplyTests
{
    private const string File1 = "drivers/tee/optee/call.c";
    private const string Source = "linux 6.12.118-1";

    private static TempDir Tree()
    {
        var dir = new TempDir();
        dir.Write(File1, string.Concat(Enumerable.Range(1, 40).Select(i => $"line {i}\n")));
        return dir;
    }

    /// <summary>A git-style diff of call.c changing "line N" to "LINE N" for each N, one hunk each.</summary>
    private static string Diff(params (int Line, string Context)[] changes)
    {
        var s = $"diff --git a/{File1} b/{File1}\n--- a/{File1}\n+++ b/{File1}\n";
        foreach (var (n, ctx) in changes)
            s += $"@@ -{n - 1},3 +{n - 1},3 @@\n {ctx}{n - 1}\n-line {n}\n+LINE {n}\n line {n + 1}\n";
        return s;
    }

    private static PatchSeries Series(TempDir dir, params (string Name, string Text)[] patches) =>
        PatchSeries.Load(patches.Select(p => dir.Write("in/" + p.Name, p.Text)).ToList());

    [Test]
    public async Task A_series_that_applies_changes_the_tree_patch_after_patch()
    {
        using var tree = Tree();
        using var files = new TempDir();
        var series = Series(files, ("0001-a.patch", Diff((5, "line "))), ("0002-b.patch", Diff((20, "line "))));
        await SeriesApplier.ApplyAsync(series, tree.Path, Source, CancellationToken.None);
        var text = File.ReadAllText(Path.Combine(tree.Path, File1));
        Assert.That(text, Does.Contain("LINE 5\n").And.Contain("LINE 20\n").And.Contain("line 6\n"));
        Assert.That(Directory.GetFiles(tree.Path, "*.orig", SearchOption.AllDirectories), Is.Empty);
        Assert.That(Directory.GetFiles(tree.Path, "*.rej", SearchOption.AllDirectories), Is.Empty);
    }

    [Test]
    public async Task A_hunk_that_does_not_apply_is_named_by_patch_file_and_hunk()
    {
        using var tree = Tree();
        using var files = new TempDir();
        // Hunk #2's context says "line 29" where the tree has "line 29"... but its removed line is wrong.
        var bad = Diff((5, "line "), (30, "line ")).Replace("-line 30\n", "-line thirty\n");
        var series = Series(files, ("0001-bad.patch", bad));
        var ex = (await Assert.ThrowsAsync<PatchRejectedException>(() => SeriesApplier.ApplyAsync(series, tree.Path, Source, CancellationToken.None)))!;
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.DoesNotApply));
        Assert.That(ex.Message, Is.EqualTo($"0001-bad.patch: {File1}: hunk #2 (@@ -29,3 +29,3 @@, line 9 of the patch) does not apply to {Source}"));
        // Checked with --dry-run first: hunk #1 was not applied either.
        Assert.That(File.ReadAllText(Path.Combine(tree.Path, File1)), Does.Not.Contain("LINE 5"));
    }

    [Test]
    public async Task The_second_patch_of_a_series_is_named_when_it_fails_on_what_the_first_changed()
    {
        using var tree = Tree();
        using var files = new TempDir();
        // Both patches change line 10; after the first, the second's context is gone.
        var series = Series(files, ("0001-first.patch", Diff((10, "line "))), ("0002-second.patch", Diff((10, "line "))));
        var ex = (await Assert.ThrowsAsync<PatchRejectedException>(() => SeriesApplier.ApplyAsync(series, tree.Path, Source, CancellationToken.None)))!;
        Assert.That(ex.Message, Does.StartWith("0002-second.patch: " + File1 + ": "));
        Assert.That(ex.Message, Does.Contain("already applied").Or.Contain("hunk #1"));
    }

    [Test]
    public async Task Context_that_is_only_close_is_refused_no_fuzz()
    {
        using var tree = Tree();
        using var files = new TempDir();
        // The leading context line differs: GNU patch's default fuzz would place the hunk anyway.
        var fuzzy = Diff((15, "line ")).Replace(" line 14\n", " line fourteen\n");
        var series = Series(files, ("fuzzy.patch", fuzzy));
        var ex = (await Assert.ThrowsAsync<PatchRejectedException>(() => SeriesApplier.ApplyAsync(series, tree.Path, Source, CancellationToken.None)))!;
        Assert.That(ex.Message, Does.Contain("hunk #1 (@@ -14,3 +14,3 @@"));
    }

    [Test]
    public async Task A_file_the_source_does_not_have_is_named()
    {
        using var tree = Tree();
        using var files = new TempDir();
        var text = Diff((5, "line ")).Replace(File1, "drivers/tee/optee/nothere.c");
        var series = Series(files, ("ghost.patch", text));
        var ex = (await Assert.ThrowsAsync<PatchRejectedException>(() => SeriesApplier.ApplyAsync(series, tree.Path, Source, CancellationToken.None)))!;
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.DoesNotApply));
        Assert.That(ex.Message, Is.EqualTo($"ghost.patch: drivers/tee/optee/nothere.c: no such file in {Source}"));
    }

    [Test]
    public async Task A_patch_already_in_the_source_is_named_as_such()
    {
        using var tree = Tree();
        using var files = new TempDir();
        var series = Series(files, ("once.patch", Diff((7, "line "))));
        await SeriesApplier.ApplyAsync(series, tree.Path, Source, CancellationToken.None);
        var ex = (await Assert.ThrowsAsync<PatchRejectedException>(() => SeriesApplier.ApplyAsync(series, tree.Path, Source, CancellationToken.None)))!;
        Assert.That(ex.Message, Is.EqualTo($"once.patch: {File1}: already applied to {Source} (or reversed)"));
    }

    [Test]
    public void Patch_runs_with_an_argument_vector_that_never_reaches_a_shell()
    {
        var p = PatchSeries.ParseFile("x.patch", Diff((5, "line "))).Single();
        var args = SeriesApplier.Arguments(p, "/tmp/a tree; rm -rf /", "/tmp/p.patch", dryRun: true);
        // The odd folder name is one argument, never split or interpreted.
        Assert.That(args, Does.Contain("/tmp/a tree; rm -rf /"));
        Assert.That(args, Does.Contain("--fuzz=0").And.Contain("--dry-run").And.Contain("-p1").And.Contain("--batch"));
    }
}
