using System.IO.Compression;
using System.Text;

namespace Hil.Qemu.Provisioning;

/// <summary>
/// Writes an initramfs as a gzip-compressed cpio "newc" archive, the format the kernel unpacks.
/// Written here rather than with the cpio tool so that owners are root, times are fixed (same
/// input, same bytes) and device nodes such as /dev/console need no mknod on the host.
/// </summary>
public sealed class CpioWriter : IDisposable
{
    private const uint IfReg = 0x8000, IfDir = 0x4000, IfLnk = 0xA000, IfChr = 0x2000;
    private readonly Stream _out;
    private uint _inode = 1;
    private long _written;

    public CpioWriter(Stream gzipTarget) =>
        _out = new GZipStream(gzipTarget, CompressionLevel.Optimal, leaveOpen: false);

    /// <summary>Adds the tree below <paramref name="root"/> (symlinks kept as links, never followed).</summary>
    public void AddTree(string root)
    {
        foreach (var (rel, full) in Walk(root, ""))
        {
            var info = new FileInfo(full);
            if (info.LinkTarget is { } target)
                Add(rel, IfLnk | 0x1FF, Encoding.UTF8.GetBytes(target));
            else if (Directory.Exists(full))
                Add(rel, IfDir | (uint)File.GetUnixFileMode(full), []);
            else
                Add(rel, IfReg | (uint)File.GetUnixFileMode(full), File.ReadAllBytes(full));
        }
    }

    public void AddCharDevice(string path, uint mode, int major, int minor) =>
        Add(path, IfChr | mode, [], major, minor);

    private static IEnumerable<(string Rel, string Full)> Walk(string root, string prefix)
    {
        // Ordinal order puts every folder before its contents and makes the archive reproducible.
        var entries = Directory.EnumerateFileSystemEntries(Path.Combine(root, prefix))
            .Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal);
        foreach (var name in entries)
        {
            var rel = prefix.Length == 0 ? name : prefix + "/" + name;
            var full = Path.Combine(root, rel);
            yield return (rel, full);
            if (new FileInfo(full).LinkTarget is null && Directory.Exists(full))
                foreach (var child in Walk(root, rel)) yield return child;
        }
    }

    private void Add(string name, uint mode, byte[] data, int rdevMajor = 0, int rdevMinor = 0)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name + "\0");
        var nlink = (mode & 0xF000) == IfDir ? 2u : 1u;
        var header = new StringBuilder("070701");
        foreach (var v in new uint[] { _inode++, mode, 0, 0, nlink, 0, (uint)data.Length, 0, 0, (uint)rdevMajor, (uint)rdevMinor, (uint)nameBytes.Length, 0 })
            header.Append(v.ToString("X8"));
        Write(Encoding.ASCII.GetBytes(header.ToString()));
        Write(nameBytes);
        Pad();
        Write(data);
        Pad();
    }

    private void Write(byte[] b) { _out.Write(b); _written += b.Length; }
    private void Pad() { while (_written % 4 != 0) { _out.WriteByte(0); _written++; } }

    public void Dispose()
    {
        Add("TRAILER!!!", 0, []);
        _out.Dispose();
    }
}
