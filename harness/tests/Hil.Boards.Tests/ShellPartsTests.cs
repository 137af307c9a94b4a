using System.Diagnostics;
using Hil.Boards.Shell;

namespace Hil.Boards.Tests;

/// <summary>The pieces of the console shell that can be checked against real tools directly.</summary>
[TestFixture]
public sealed class ShellPartsTests
{
    private static string Sh(string commandLine, byte[]? stdin = null)
    {
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(commandLine);
        using var p = Process.Start(psi)!;
        if (stdin is not null) p.StandardInput.BaseStream.Write(stdin);
        p.StandardInput.Close();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return output;
    }

    [Test]
    public void Quoted_arguments_reach_a_real_shell_unchanged_and_cannot_inject()
    {
        string[] args = ["A=b", "plain", "", " ", "it's", "'", "''", "\"", "$(id)", "`id`", "${HOME}", "a;b", "a|b", "a&&b", "*", "?", "~", "~root", "-n", "\\", "\\n", "new\nline", "tab\there", "grüße", "#comment"];
        var output = Sh("printf '%s\\036' " + ShellQuote.Join(args));
        Assert.That(output.Split('\x1e')[..^1], Is.EqualTo(args));
        Assert.That(ShellQuote.Quote("simple-path/file_1.txt"), Is.EqualTo("simple-path/file_1.txt"));
        Assert.That(ShellQuote.Quote("A=b"), Is.EqualTo("'A=b'"));
    }

    [TestCase(0), TestCase(1), TestCase(255), TestCase(256), TestCase(4096), TestCase(70_000)]
    public void Cksum_matches_the_posix_cksum_tool(int size)
    {
        var data = new byte[size];
        new Random(size).NextBytes(data);
        var tool = Sh("cksum", data).Split(' ');
        Assert.That(PosixCksum.Compute(data).ToString(), Is.EqualTo(tool[0]));
        Assert.That(tool[1].Trim(), Is.EqualTo(size.ToString()));
    }

    [Test]
    public void Kernel_lines_are_found_anywhere_even_inside_words_and_markers_and_can_be_put_back()
    {
        var kernel = "[   12.345678] usb 1-1: new device\r\n";
        var text = "hel" + kernel + "lo\n\x1eHIL:a" + kernel + "b:1:e\x1e\n[    3.000000] printed by the command\n";
        var clean = KernelLogFilter.Clean(text, out var removed);
        Assert.That(clean, Is.EqualTo("hello\n\x1eHIL:ab:1:e\x1e\n"));
        Assert.That(removed, Has.Count.EqualTo(3));
        // The command's own kernel-like line is among the candidates that keep it.
        var candidates = KernelLogFilter.Candidates(clean, 0, clean.Length, removed).Select(c => c.Body).ToList();
        Assert.That(candidates, Does.Contain(clean + "[    3.000000] printed by the command\n"));
        Assert.That(candidates, Has.Count.EqualTo(8));
        // A line without the printk shape, or one that would cross a marker byte, is not a kernel line.
        Assert.That(KernelLogFilter.Strip("[ 1.5] not printk\n"), Is.EqualTo("[ 1.5] not printk\n"));
        Assert.That(KernelLogFilter.Strip("[    1.000000] a\u001Eb\n"), Is.EqualTo("[    1.000000] a\u001Eb\n"));
    }
}
