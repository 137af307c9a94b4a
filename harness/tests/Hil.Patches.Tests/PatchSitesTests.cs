using Hil.Workloads.Kmod;

namespace Hil.Patches.Tests;

/// <summary>
/// The ftrace patch-site check on readelf output of a real optee.ko (the control build: 88 sites,
/// all aligned), and on the same output with one site or one section made misaligned — the kind
/// of module that crashed Debian's 6.12 kernel at insmod when host gcc-12 built it.
/// </summary>
public class PatchSitesTests
{
    private static IReadOnlyList<ElfSection> Sections(string text) => ReadElfOutput.Sections(text);

    [Test]
    public void The_control_module_has_88_aligned_patch_sites()
    {
        var sections = Sections(File.ReadAllText(Repo.Fixture("optee-control.sections.txt")));
        var sites = PatchSites.Read(File.ReadAllText(Repo.Fixture("optee-control.patchable-relocations.txt")), sections);
        Assert.That(sites, Has.Count.EqualTo(88));
        Assert.That(sites.Select(s => s.Section).Distinct(), Is.SupersetOf(new[] { ".text", ".init.text" }));
        Assert.That(PatchSites.Problems(sites, sections), Is.Empty);
    }

    [Test]
    public void A_site_off_an_8_byte_boundary_is_named()
    {
        var sections = Sections(File.ReadAllText(Repo.Fixture("optee-control.sections.txt")));
        var relocs = File.ReadAllText(Repo.Fixture("optee-control.patchable-relocations.txt"))
            .Replace(" .text + 60\n", " .text + 64\n");
        var problems = PatchSites.Problems(PatchSites.Read(relocs, sections), sections);
        Assert.That(problems, Is.EqualTo(new[] { "patch site .text+0x64 is not 8-byte aligned" }));
    }

    [Test]
    public void A_site_in_a_section_aligned_to_4_is_named()
    {
        // gcc-12's cold functions: .text.unlikely with section alignment 4.
        var text = File.ReadAllText(Repo.Fixture("optee-control.sections.txt"));
        var line = text.Split('\n').First(l => l.Contains(" .text.unlikely ") && l.Contains("PROGBITS"));
        var sections = Sections(text.Replace(line, line[..^1] + "4"));
        var sites = PatchSites.Read(File.ReadAllText(Repo.Fixture("optee-control.patchable-relocations.txt")), sections);
        var problems = PatchSites.Problems(sites, sections);
        Assert.That(problems, Is.Not.Empty);
        Assert.That(problems, Has.All.Contains(".text.unlikely").And.All.Contains("aligned to 4"));
    }

    [Test]
    public void Relocations_of_other_sections_are_not_sites()
    {
        var sections = Sections(File.ReadAllText(Repo.Fixture("optee-control.sections.txt")));
        var other = "Relocation section '.rela.text' at offset 0x1 contains 1 entry:\n" +
                    "    Offset             Info             Type               Symbol's Value  Symbol's Name + Addend\n" +
                    "0000000000000004  0000000800000101 R_AARCH64_CALL26       0000000000000000 .text + 3\n";
        Assert.That(PatchSites.Read(other, sections), Is.Empty);
    }

    [Test]
    public void Compiler_errors_are_quoted_without_the_build_folder()
    {
        var output = "make[3]: Entering directory\n" +
                     "/build/k-patched-1/drivers/tee/optee/call.c: In function 'optee_cq_wait_final':\n" +
                     "/build/k-patched-1/drivers/tee/optee/call.c:170:32: error: expected expression before ';' token\n" +
                     "  170 |         cq->free_thread_count++ +;\n" +
                     "/build/k-patched-1/drivers/tee/optee/call.c:171:9: warning: unused\n" +
                     "make[3]: *** [scripts/Makefile.build:229: call.o] Error 1\n";
        var errors = DriverBuilder.CompilerErrors(output, "/build/k-patched-1/");
        Assert.That(errors, Is.EqualTo(new[] { "drivers/tee/optee/call.c:170:32: error: expected expression before ';' token" }));
    }
}
