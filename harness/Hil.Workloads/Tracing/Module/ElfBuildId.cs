using System.Buffers.Binary;
using System.Text;

namespace Hil.Workloads.Tracing.Module;

/// <summary>
/// The GNU build ID of an ELF file, and of the module a running kernel loaded
/// (/sys/module/NAME/notes/.note.gnu.build-id): equal IDs prove that the .ko disassembled on the
/// host is the code the probes land in. Offsets computed from another build would probe the
/// wrong instructions, silently.
/// </summary>
public static class ElfBuildId
{
    /// <summary>The build ID of a 64-bit little-endian ELF file (a kernel module), or null if it has none.</summary>
    public static string? OfFile(string path) => OfElf(File.ReadAllBytes(path), path);

    public static string? OfElf(byte[] elf, string what)
    {
        if (elf.Length < 64 || elf[0] != 0x7F || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F' || elf[4] != 2 || elf[5] != 1)
            throw new DisassemblyException($"{what}: not a 64-bit little-endian ELF file");
        var shoff = (long)BinaryPrimitives.ReadUInt64LittleEndian(elf.AsSpan(0x28));
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(0x3A));
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(0x3C));
        int shstrndx = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(0x3E));
        (uint Name, long Offset, long Size) Section(int i)
        {
            var h = elf.AsSpan((int)(shoff + (long)i * shentsize));
            return (BinaryPrimitives.ReadUInt32LittleEndian(h), (long)BinaryPrimitives.ReadUInt64LittleEndian(h[0x18..]),
                (long)BinaryPrimitives.ReadUInt64LittleEndian(h[0x20..]));
        }
        var names = Section(shstrndx);
        for (var i = 0; i < shnum; i++)
        {
            var s = Section(i);
            var at = (int)(names.Offset + s.Name);
            var end = Array.IndexOf(elf, (byte)0, at);
            if (Encoding.ASCII.GetString(elf, at, end - at) != ".note.gnu.build-id") continue;
            return FromNote(elf.AsSpan((int)s.Offset, (int)s.Size));
        }
        return null;
    }

    /// <summary>
    /// The build ID in a raw ELF note (what sysfs shows): namesz, descsz, type, "GNU\0", then the ID.
    /// </summary>
    public static string? FromNote(ReadOnlySpan<byte> note)
    {
        if (note.Length < 12) return null;
        var namesz = (int)BinaryPrimitives.ReadUInt32LittleEndian(note);
        var descsz = (int)BinaryPrimitives.ReadUInt32LittleEndian(note[4..]);
        var type = BinaryPrimitives.ReadUInt32LittleEndian(note[8..]);
        var desc = 12 + ((namesz + 3) & ~3);
        if (type != 3 /* NT_GNU_BUILD_ID */ || note.Length < desc + descsz) return null;
        return Convert.ToHexStringLower(note.Slice(desc, descsz));
    }

    /// <summary>The build ID from a hex dump of the note (od -An -tx1 output, whitespace ignored).</summary>
    public static string? FromHexDump(string hex)
    {
        var digits = new string(hex.Where(Uri.IsHexDigit).ToArray());
        if (digits.Length == 0 || digits.Length % 2 != 0) return null;
        return FromNote(Convert.FromHexString(digits));
    }
}
