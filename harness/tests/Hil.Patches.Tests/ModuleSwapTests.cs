namespace Hil.Patches.Tests;

/// <summary>Reading the loaded module's build ID back from the raw note the kernel exposes in /sys/module/NAME/notes.</summary>
public class ModuleSwapTests
{
    [Test]
    public void The_build_id_is_read_from_a_raw_gnu_note()
    {
        // namesz 4, descsz 20, type 3 (NT_GNU_BUILD_ID), "GNU\0", then the 20-byte ID: as od -An -tx1 prints it, spaces removed.
        const string id = "27952a88c8992a0c48d7299da08f88e664d8a3c1";
        var note = "04000000" + "14000000" + "03000000" + "474e5500" + id;
        Assert.That(ModuleSwap.BuildIdOfNote(note), Is.EqualTo(id));
    }

    [Test]
    public void A_short_or_odd_note_gives_no_build_id()
    {
        Assert.That(ModuleSwap.BuildIdOfNote(""), Is.Empty);
        Assert.That(ModuleSwap.BuildIdOfNote("0400000014000000030000"), Is.Empty);
        // descsz says 20 bytes but only 4 follow: not a build ID to believe.
        Assert.That(ModuleSwap.BuildIdOfNote("04000000" + "14000000" + "03000000" + "474e5500" + "deadbeef"), Is.Empty);
    }
}
