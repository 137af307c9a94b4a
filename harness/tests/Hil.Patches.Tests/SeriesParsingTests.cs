namespace Hil.Patches.Tests;

/// <summary>Series as reviewers hand them over, and every refusal, each one line naming what is wrong.</summary>
public class SeriesParsingTests
{
    private const string CallC = "drivers/tee/optee/call.c";

    private static string PlainDiff(string oldPath, string newPath, string oldLabelSuffix = "", string newLabelSuffix = "") => $"""
        --- {oldPath}{oldLabelSuffix}
        +++ {newPath}{newLabelSuffix}
        @@ -167,3 +167,3 @@ void optee_cq_wait_final(struct optee_call_queue *cq,
         	/* Wake up one eventual waiting task */
        -	optee_cq_complete_one(cq);
        +	optee_cq_complete_one(cq); /* once */
         

        """;

    private static PatchRejectedException Refused(string name, string text) =>
        Assert.Throws<PatchRejectedException>(() => PatchSeries.ParseFile(name, text))!;

    [Test]
    public void A_format_patch_file_is_one_patch_with_its_subject_files_and_hunks()
    {
        var file = Repo.Patch("bug-01-lost-forward-wakeup.patch");
        var series = PatchSeries.Load([file]);

        Assert.That(series.Patches, Has.Count.EqualTo(1));
        var p = series.Patches[0];
        Assert.That(p.Subject, Is.EqualTo("[PATCH] optee: simplify optee_cq_wait_final()"));
        Assert.That(p.Name, Does.StartWith("bug-01-lost-forward-wakeup.patch").And.Contains("simplify"));
        Assert.That(p.StripLevel, Is.EqualTo(1));
        Assert.That(p.Files.Select(f => f.Path), Is.EqualTo(new[] { CallC }));
        Assert.That(p.Files[0].Hunks, Has.Count.EqualTo(1));
        Assert.That(p.Files[0].Hunks[0].OldStart, Is.EqualTo(167));
        Assert.That(p.Files[0].Hunks[0].OldCount, Is.EqualTo(15));
        Assert.That(p.Files[0].Hunks[0].NewCount, Is.EqualTo(6));
        // Only the diff goes to patch(1): no mail headers, no message, no diffstat.
        Assert.That(p.Diff, Does.StartWith("diff --git a/drivers/tee/optee/call.c b/drivers/tee/optee/call.c\n"));
        Assert.That(p.Diff, Does.Not.Contain("Breaks:").And.Not.Contain("Subject:"));
        Assert.That(series.TouchesTeeCore, Is.False);
    }

    [Test]
    public void Every_corpus_patch_parses_touches_only_the_driver_and_says_what_it_breaks_or_claims()
    {
        var files = Directory.GetFiles(Repo.Patches, "*.patch").Order().ToList();
        Assert.That(files.Count(f => Path.GetFileName(f).StartsWith("bug-")), Is.GreaterThanOrEqualTo(8));
        Assert.That(files.Select(Path.GetFileName), Does.Contain("v9-one-reserved-thread.patch"));
        foreach (var f in files)
        {
            var p = PatchSeries.Load([f]).Patches.Single();
            Assert.That(p.Files.All(x => x.Path.StartsWith("drivers/tee/optee/")), f);
            // A bug patch says what it breaks; the v9 design says which policy it claims instead.
            Assert.That(p.Trailer("Breaks") ?? p.Trailer("Claims-Policy"), Is.Not.Null, f);
            if (Path.GetFileName(f).StartsWith("bug-")) Assert.That(p.Trailer("Breaks"), Is.Not.Null, f);
        }
    }

    [Test]
    public void A_signature_after_the_last_hunk_is_not_part_of_the_diff()
    {
        var text = File.ReadAllText(Repo.Patch("bug-03-close-keeps-reservation.patch")) + "-- \n2.39.5\n\n";
        var p = PatchSeries.ParseFile("signed.patch", text).Single();
        Assert.That(p.Diff, Does.Not.Contain("2.39.5"));
        Assert.That(p.Diff, Does.EndWith("\n \treturn 0;\n }\n \n"));
    }

    [Test]
    public void An_mbox_of_a_series_gives_its_patches_in_order_and_skips_the_cover_letter()
    {
        var cover = """
            From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
            From: A Reviewer <a@example.org>
            Date: Mon, 7 Dec 2026 03:30:00 +0000
            Subject: [PATCH v2 0/2] optee: two call queue
             changes

            Two changes, one per patch.

            """;
        var mbox = cover + "\n" + File.ReadAllText(Repo.Patch("bug-04-close-without-wakeup.patch")) + "\n"
                   + File.ReadAllText(Repo.Patch("bug-05-fifo-wakeup.patch"));
        using var dir = new TempDir();
        var series = PatchSeries.Load([dir.Write("series.mbox", mbox)]);

        Assert.That(series.Patches, Has.Count.EqualTo(2));
        Assert.That(series.Patches[0].Name, Does.Contain("message 2").And.Contains("no need to wake a waiter"));
        Assert.That(series.Patches[1].Name, Does.Contain("message 3").And.Contains("arrival order"));
        Assert.That(series.TouchedFiles, Is.EqualTo(new[] { CallC }));
    }

    [Test]
    public void A_folded_subject_is_joined()
    {
        var text = "From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] optee: a\n long subject\n\n"
                   + PlainDiff("a/" + CallC, "b/" + CallC);
        Assert.That(PatchSeries.ParseFile("x.patch", text).Single().Subject, Is.EqualTo("[PATCH] optee: a long subject"));
    }

    [Test]
    public void A_plain_diff_with_timestamps_and_top_folders_is_stripped_one_level()
    {
        var text = "Some words before the diff.\n" + PlainDiff("linux-6.12.orig/" + CallC, "linux-6.12/" + CallC,
            "\t2026-12-07 03:00:00.000000000 +0000", "\t2026-12-07 03:01:00.000000000 +0000");
        var p = PatchSeries.ParseFile("plain.diff", text).Single();
        Assert.That(p.StripLevel, Is.EqualTo(1));
        Assert.That(p.Files.Single().Path, Is.EqualTo(CallC));
        Assert.That(p.Subject, Is.EqualTo("plain.diff"));
        Assert.That(p.Diff, Does.StartWith("--- linux-6.12.orig/"));
    }

    [Test]
    public void A_plain_diff_from_the_tree_root_is_applied_with_p0()
    {
        var p = PatchSeries.ParseFile("p0.diff", PlainDiff(CallC, CallC)).Single();
        Assert.That(p.StripLevel, Is.EqualTo(0));
        Assert.That(p.Files.Single().Path, Is.EqualTo(CallC));
    }

    [Test]
    public void A_change_to_the_tee_core_asks_for_tee_ko_too()
    {
        var text = PlainDiff("a/drivers/tee/tee_core.c", "b/drivers/tee/tee_core.c");
        using var dir = new TempDir();
        var series = PatchSeries.Load([dir.Write("core.diff", text)]);
        Assert.That(series.TouchesTeeCore, Is.True);
    }

    [Test]
    public void The_content_key_follows_the_diff_not_the_message()
    {
        var a = PatchSeries.ParseFile("a.patch", "From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001\nSubject: one\n\n" + PlainDiff("a/" + CallC, "b/" + CallC)).Single();
        var b = PatchSeries.ParseFile("b.patch", "From 2222222222222222222222222222222222222222 Mon Sep 17 00:00:00 2001\nSubject: two\n\n" + PlainDiff("a/" + CallC, "b/" + CallC)).Single();
        var c = PatchSeries.ParseFile("c.patch", PlainDiff("a/" + CallC, "b/" + CallC).Replace("/* once */", "/* twice */")).Single();
        Assert.That(a.Sha256, Is.EqualTo(b.Sha256));
        Assert.That(a.Sha256, Is.Not.EqualTo(c.Sha256));
    }

    // ---- refusals: each a PatchRejectedException (exit 2 in the CLI), one line naming the patch and the file ----

    [Test]
    public void An_empty_file_is_refused()
    {
        using var dir = new TempDir();
        var ex = Assert.Throws<PatchRejectedException>(() => PatchSeries.Load([dir.Write("empty.patch", "")]))!;
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.Empty));
        Assert.That(ex.Message, Is.EqualTo("empty.patch: empty file, no patch in it"));
    }

    [Test]
    public void A_blank_file_is_refused_as_empty()
    {
        var ex = Refused("blank.patch", "\n \n\t\n");
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.Empty));
    }

    [Test]
    public void A_message_without_a_diff_is_refused_as_empty()
    {
        var ex = Refused("nodiff.patch", "From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] optee: words only\n\nJust a message.\n");
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.Empty));
        Assert.That(ex.Message, Is.EqualTo("nodiff.patch (\"[PATCH] optee: words only\"): contains no diff"));
    }

    [Test]
    public void A_cover_letter_alone_is_refused_as_empty()
    {
        var ex = Refused("cover.mbox", "From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001\nSubject: [PATCH 0/3] optee: a series\n\nWords.\n");
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.Empty));
        Assert.That(ex.Message, Does.Contain("only a cover letter"));
    }

    [Test]
    public void A_binary_file_is_refused()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "optee.ko");
        File.WriteAllBytes(path, [0x7F, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1, 0, 0, 0]);
        var ex = Assert.Throws<PatchRejectedException>(() => PatchSeries.Load([path]))!;
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.Binary));
        Assert.That(ex.Message, Is.EqualTo("optee.ko: binary file (NUL byte at offset 7), not a text patch"));
    }

    [Test]
    public void A_git_binary_patch_is_refused_naming_the_file()
    {
        var text = """
            diff --git a/drivers/tee/optee/blob.bin b/drivers/tee/optee/blob.bin
            new file mode 100644
            index 0000000..1234567
            GIT binary patch
            literal 4
            LcmZQzWMT#Y01f~L

            literal 0
            HcmV?d00001

            """;
        var ex = Refused("blob.patch", text);
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.Binary));
        Assert.That(ex.Message, Does.StartWith("blob.patch: drivers/tee/optee/blob.bin: binary change"));
    }

    [Test]
    public void A_binary_files_differ_line_is_refused()
    {
        var text = "diff --git a/drivers/tee/optee/fw.bin b/drivers/tee/optee/fw.bin\nindex 1..2 100644\nBinary files a/drivers/tee/optee/fw.bin and b/drivers/tee/optee/fw.bin differ\n";
        var ex = Refused("fw.patch", text);
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.Binary));
        Assert.That(ex.Message, Does.Contain("drivers/tee/optee/fw.bin"));
    }

    [Test]
    public void A_file_outside_drivers_tee_is_refused_naming_it()
    {
        var ex = Refused("tpm.patch", PlainDiff("a/drivers/char/tpm/tpm-chip.c", "b/drivers/char/tpm/tpm-chip.c"));
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.OutsideTree));
        Assert.That(ex.Message, Does.StartWith("tpm.patch: touches drivers/char/tpm/tpm-chip.c, outside drivers/tee/"));
    }

    [Test]
    public void One_file_outside_the_tree_refuses_the_whole_patch()
    {
        var text = PlainDiff("a/" + CallC, "b/" + CallC) + PlainDiff("a/include/linux/tee_core.h", "b/include/linux/tee_core.h");
        var ex = Refused("two.patch", text);
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.OutsideTree));
        Assert.That(ex.Message, Does.Contain("include/linux/tee_core.h"));
    }

    [Test]
    public void A_path_climbing_out_of_drivers_tee_is_refused()
    {
        var ex = Refused("climb.patch", PlainDiff("a/drivers/tee/../../Makefile", "b/drivers/tee/../../Makefile"));
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.OutsideTree));
        Assert.That(ex.Message, Does.Contain("drivers/tee/../../Makefile").And.Contains("leaves the tree"));
    }

    [Test]
    public void A_new_file_outside_the_tree_is_refused_though_its_old_side_is_dev_null()
    {
        var text = "--- /dev/null\n+++ b/scripts/evil.sh\n@@ -0,0 +1 @@\n+echo hi\n";
        var ex = Refused("new.patch", text);
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.OutsideTree));
        Assert.That(ex.Message, Does.Contain("scripts/evil.sh"));
    }

    [Test]
    public void A_truncated_hunk_is_refused_naming_the_file_hunk_and_line()
    {
        var text = "--- a/" + CallC + "\n+++ b/" + CallC + "\n@@ -10,4 +10,4 @@\n context\n-old\n+new\n";
        var ex = Refused("cut.patch", text);
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.Malformed));
        Assert.That(ex.Message, Does.StartWith($"cut.patch: {CallC}: hunk #1 at line 3 is truncated or malformed"));
    }

    [Test]
    public void A_missing_file_and_a_folder_are_refused_as_unreadable()
    {
        using var dir = new TempDir();
        var missing = Assert.Throws<PatchRejectedException>(() => PatchSeries.Load([Path.Combine(dir.Path, "nope.patch")]))!;
        Assert.That(missing.Reason, Is.EqualTo(PatchRejection.Unreadable));
        Assert.That(missing.Message, Does.EndWith("nope.patch: no such file"));
        var folder = Assert.Throws<PatchRejectedException>(() => PatchSeries.Load([dir.Path]))!;
        Assert.That(folder.Reason, Is.EqualTo(PatchRejection.Unreadable));
        Assert.That(folder.Message, Does.Contain("folder"));
    }

    [Test]
    public void No_file_at_all_is_refused()
    {
        var ex = Assert.Throws<PatchRejectedException>(() => PatchSeries.Load([]))!;
        Assert.That(ex.Reason, Is.EqualTo(PatchRejection.Empty));
    }

    [Test]
    public void Every_refusal_is_one_line()
    {
        var cases = new[]
        {
            ("a", ""), ("b", PlainDiff("a/x/y.c", "b/x/y.c")), ("c", "--- a/" + CallC + "\n+++ b/" + CallC + "\n@@ -1,3 +1,3 @@\n x\n"),
        };
        foreach (var (name, text) in cases)
            Assert.That(Refused(name, text).Message, Does.Not.Contain("\n"), name);
    }
}
