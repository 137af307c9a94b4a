using Hil.Workloads.Kmod;

namespace Hil.Workloads.Tests;

/// <summary>The deploy gate against misaligned ftrace patch sites, on real readelf output.</summary>
public class KmodAlignmentTests
{
    // hil_cq.ko for 6.12.118+deb13-arm64 (readelf -SW, the code-relevant part).
    private const string GoodSections = """
        There are 53 section headers, starting at offset 0x87340:

        Section Headers:
          [Nr] Name              Type            Address          Off    Size   ES Flg Lk Inf Al
          [ 0]                   NULL            0000000000000000 000000 000000 00      0   0  0
          [ 1] .text             PROGBITS        0000000000000000 000040 002444 00  AX  0   0  8
          [ 2] .rela.text        RELA            0000000000000000 044ea0 002508 18   I 50   1  8
          [ 3] .init.text        PROGBITS        0000000000000000 002488 00013c 00  AX  0   0  8
          [ 4] .rela.init.text   RELA            0000000000000000 0473a8 000378 18   I 50   3  8
          [ 5] .exit.text        PROGBITS        0000000000000000 0025c8 0000e4 00  AX  0   0  8
          [ 9] __patchable_function_entries PROGBITS        00000000000000d0 002780 0000a0 00 WAL  1   0  8
          [11] .data             PROGBITS        0000000000000170 002820 000000 00  WA  0   0  1
          [16] .gnu.linkonce.this_module PROGBITS        0000000000000000 002840 000500 00  WA  0   0 64
          [18] .plt              PROGBITS        0000000000000000 002d40 000001 00  AX  0   0  1
          [19] .init.plt         PROGBITS        0000000000000000 002d41 000001 00   A  0   0  1
          [20] .text.ftrace_trampoline PROGBITS        0000000000000000 002d42 000001 00  AX  0   0  1
          [25] .modinfo          PROGBITS        0000000000000000 003e70 000109 00   A  0   0  1
        Key to Flags:
          W (write), A (alloc), X (execute), M (merge), S (strings), I (info),
        """;

    private const string GoodSymbols = """
        Symbol table '.symtab' contains 149 entries:
           Num:    Value          Size Type    Bind   Vis      Ndx Name
             0: 0000000000000000     0 NOTYPE  LOCAL  DEFAULT  UND 
             1: 0000000000000000     0 SECTION LOCAL  DEFAULT    1 .text
            37: 0000000000000008    44 FUNC    LOCAL  DEFAULT    1 match_optee
            48: 0000000000000008   308 FUNC    LOCAL  DEFAULT    3 hil_init
            59: 0000000000000000   228 FUNC    LOCAL  DEFAULT    5 hil_exit
            60: 00000000000012b8   584 FUNC    LOCAL  DEFAULT    1 call_thread
           104: 0000000000000000   228 FUNC    GLOBAL DEFAULT    5 cleanup_module
           120: 0000000000000000     0 NOTYPE  GLOBAL DEFAULT  UND tee_client_open_session
        """;

    // A module with an unmarked __cold function built the same way: gcc-12 aligns the cold and
    // init sections to 4, the crash the research notes describe.
    private const string ColdSections = """
          [Nr] Name              Type            Address          Off    Size   ES Flg Lk Inf Al
          [ 0]                   NULL            0000000000000000 000000 000000 00      0   0  0
          [ 1] .text             PROGBITS        0000000000000000 000040 000000 00  AX  0   0  1
          [ 2] .text.unlikely    PROGBITS        0000000000000000 000040 00003c 00  AX  0   0  4
          [ 3] .rela.text.unlikely RELA            0000000000000000 0158f8 000048 18   I 40   2  8
          [ 4] .init.text        PROGBITS        0000000000000000 00007c 000030 00  AX  0   0  4
          [ 6] __patchable_function_entries PROGBITS        0000000000000030 0000b0 000010 00 WAL  2   0  8
          [13] .plt              PROGBITS        0000000000000000 000600 000001 00  AX  0   0  1
          [15] .text.ftrace_trampoline PROGBITS        0000000000000000 000602 000001 00  AX  0   0  1
        """;

    private const string ColdSymbols = """
            33: 0000000000000008    52 FUNC    LOCAL  DEFAULT    2 rarely.constprop.0
            35: 0000000000000008    40 FUNC    LOCAL  DEFAULT    4 cold_init
            53: 0000000000000008    40 FUNC    GLOBAL DEFAULT    4 init_module
        """;

    [Test]
    public void SectionHeadersParseIncludingLongNamesAndEmptyFlags()
    {
        var s = ReadElfOutput.Sections(GoodSections);
        Assert.That(s.Select(x => x.Name), Does.Contain("__patchable_function_entries").And.Contain(".text.ftrace_trampoline"));
        var text = s.Single(x => x.Name == ".text");
        Assert.That((text.Index, text.Size, text.Flags, text.Alignment, text.Executable), Is.EqualTo((1, 0x2444L, "AX", 8L, true)));
        Assert.That(s.Any(x => x.Index == 0), Is.False, "the nameless NULL header is no section to check");
        Assert.That(s.Single(x => x.Name == ".data").Flags, Is.EqualTo("WA"));
        Assert.That(s.Single(x => x.Name == ".gnu.linkonce.this_module").Alignment, Is.EqualTo(64));
        Assert.That(ReadElfOutput.Functions(GoodSymbols).Select(f => f.Name), Is.EqualTo(new[] { "match_optee", "hil_init", "hil_exit", "call_thread", "cleanup_module" }));
    }

    [Test]
    public void TheRealModulePasses() =>
        Assert.That(ModuleAlignment.Problems(ReadElfOutput.Sections(GoodSections), ReadElfOutput.Functions(GoodSymbols)), Is.Empty);

    [Test]
    public void ColdAndInitSectionsAlignedTo4AreRefused()
    {
        var problems = ModuleAlignment.Problems(ReadElfOutput.Sections(ColdSections), ReadElfOutput.Functions(ColdSymbols));
        Assert.That(problems, Is.EqualTo(new[]
        {
            "code section .text.unlikely is aligned to 4 (needs 8)",
            "code section .init.text is aligned to 4 (needs 8)",
        }));
    }

    [Test]
    public void AMisplacedFunctionIsRefusedEvenInAnAlignedSection()
    {
        var symbols = GoodSymbols.Replace("00000000000012b8   584 FUNC", "00000000000012bc   584 FUNC", StringComparison.Ordinal);
        var problems = ModuleAlignment.Problems(ReadElfOutput.Sections(GoodSections), ReadElfOutput.Functions(symbols));
        Assert.That(problems, Is.EqualTo(new[] { "function call_thread starts at offset 0x12bc of section [1] (not a multiple of 8)" }));
    }

    [Test]
    public void PlaceholdersOnlyPassWhileTheyAreOneByte()
    {
        var grown = GoodSections.Replace("002d40 000001 00  AX  0   0  1", "002d40 000040 00  AX  0   0  1", StringComparison.Ordinal);
        Assert.That(ModuleAlignment.Problems(ReadElfOutput.Sections(grown), []), Is.EqualTo(new[] { "code section .plt is aligned to 1 (needs 8)" }));
        Assert.Throws<FormatException>(() => ReadElfOutput.Sections("readelf: Error: not an ELF file"));
    }
}
