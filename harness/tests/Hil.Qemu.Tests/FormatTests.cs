using System.Buffers.Binary;
using System.Text;
using Hil.Kernel;
using Hil.Qemu.Provisioning;

namespace Hil.Qemu.Tests;

/// <summary>The file formats provisioning writes or reads, checked against the real tools.</summary>
public class FormatTests
{
    [Test]
    public void Deb822StanzasKeepContinuationLines()
    {
        var text = "Package: a\nVersion: 1\nChecksums-Sha256:\n aa 1 a.dsc\n bb 2 a.tar.xz\n\nPackage: b\nVersion: 2\n";
        var s = PrivateApt.ParseStanzas(text).ToList();
        Assert.That(s, Has.Count.EqualTo(2));
        Assert.That(s[0]["Checksums-Sha256"].Split('\n'), Has.Length.EqualTo(3));
        Assert.That(s[1]["Version"], Is.EqualTo("2"));
    }

    [Test]
    public async Task CpioArchiveIsReadByGnuCpio()
    {
        var dir = TestEnv.TempDir("cpio");
        var root = Directory.CreateDirectory(Path.Combine(dir, "root")).FullName;
        Directory.CreateDirectory(Path.Combine(root, "usr/bin"));
        File.WriteAllText(Path.Combine(root, "usr/bin/tool"), "#!/bin/sh\n");
        File.SetUnixFileMode(Path.Combine(root, "usr/bin/tool"), (UnixFileMode)0x1ED);
        File.CreateSymbolicLink(Path.Combine(root, "bin"), "usr/bin");
        var archive = Path.Combine(dir, "a.cpio.gz");
        await using (var f = File.Create(archive))
        using (var w = new CpioWriter(f))
        {
            w.AddTree(root);
            w.AddCharDevice("dev/console", 0x180, 5, 1);
        }
        var listing = await ExternalTool.RunAsync("sh", ["-c", "gzip -dc \"$1\" | cpio -itv --quiet", "sh", archive]);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(listing.Stdout, Does.Match(@"-rwxr-xr-x +1 root +root +10 .* usr/bin/tool"));
            Assert.That(listing.Stdout, Does.Contain("bin -> usr/bin"));
            Assert.That(listing.Stdout, Does.Match(@"crw------- .* 5, +1 .* dev/console"));
        }
        Directory.Delete(dir, true);
    }

    [Test]
    public async Task DropbearKeyIsTheOpenSshKeyReframed()
    {
        var dir = TestEnv.TempDir("key");
        var pair = await Ed25519KeyPair.GenerateAsync(Path.Combine(dir, "k"), "test", CancellationToken.None);
        var db = Ed25519KeyPair.ToDropbear(Path.Combine(dir, "k"));
        var typeLen = BinaryPrimitives.ReadInt32BigEndian(db);
        var type = Encoding.ASCII.GetString(db, 4, typeLen);
        var keyLen = BinaryPrimitives.ReadInt32BigEndian(db.AsSpan(4 + typeLen));
        var pub = db.AsSpan(8 + typeLen + 32, 32).ToArray();
        var fp = (await ExternalTool.RunAsync("ssh-keygen", ["-lf", Path.Combine(dir, "k.pub")])).Stdout;
        using (Assert.EnterMultipleScope())
        {
            Assert.That(type, Is.EqualTo("ssh-ed25519"));
            Assert.That(keyLen, Is.EqualTo(64));
            Assert.That(db, Has.Length.EqualTo(8 + typeLen + 64));
            Assert.That(pub, Is.EqualTo(pair.PublicBlob[^32..]), "second half is the public key");
            Assert.That(fp, Does.Contain(pair.Fingerprint));
        }
        Directory.Delete(dir, true);
    }
}
