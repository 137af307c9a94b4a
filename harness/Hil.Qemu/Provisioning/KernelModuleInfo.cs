using System.Buffers.Binary;
using System.Text;
using Hil.Kernel;

namespace Hil.Qemu.Provisioning;

/// <summary>
/// The ".modinfo" section of a kernel module (an ELF64 little-endian object): name, vermagic,
/// depends=… . Debian's packages carry no modules.dep (depmod makes it at install time), so the
/// load order comes from here.
/// </summary>
public sealed class KernelModuleInfo
{
    public IReadOnlyList<KeyValuePair<string, string>> Fields { get; }
    /// <summary>Alignment of each executable section, by name (a crash cause on 6.12, see kmod-facts).</summary>
    public IReadOnlyDictionary<string, ulong> CodeSectionAlignment { get; }

    private KernelModuleInfo(List<KeyValuePair<string, string>> fields, Dictionary<string, ulong> codeAlign)
    {
        Fields = fields; CodeSectionAlignment = codeAlign;
    }

    public string? this[string key] => Fields.FirstOrDefault(f => f.Key == key).Value;

    public IReadOnlyList<string> Depends =>
        (this["depends"] ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public static KernelModuleInfo Read(string path) => Parse(File.ReadAllBytes(path), path);

    public static KernelModuleInfo Parse(byte[] elf, string what)
    {
        if (elf.Length < 64 || elf[0] != 0x7F || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F' || elf[4] != 2 || elf[5] != 1)
            throw new ProvisioningException($"{what}: not a 64-bit little-endian ELF kernel module");
        var shoff = (long)BinaryPrimitives.ReadUInt64LittleEndian(elf.AsSpan(0x28));
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(0x3A));
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(0x3C));
        int shstrndx = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(0x3E));
        var sections = Enumerable.Range(0, shnum).Select(i => Header.Read(elf, shoff + (long)i * shentsize)).ToList();
        var strtab = sections[shstrndx];

        var fields = new List<KeyValuePair<string, string>>();
        var code = new Dictionary<string, ulong>();
        foreach (var sh in sections)
        {
            var name = CString(elf, strtab.Offset + sh.NameOffset);
            if ((sh.Flags & 0x4) != 0 /* SHF_EXECINSTR */ && sh.Size > 0) code[name] = sh.Align;
            if (name != ".modinfo") continue;
            foreach (var entry in Encoding.UTF8.GetString(elf, (int)sh.Offset, (int)sh.Size).Split('\0', StringSplitOptions.RemoveEmptyEntries))
            {
                var eq = entry.IndexOf('=');
                if (eq > 0) fields.Add(new(entry[..eq], entry[(eq + 1)..]));
            }
        }
        return new KernelModuleInfo(fields, code);
    }

    private static string CString(byte[] b, long at)
    {
        var end = Array.IndexOf(b, (byte)0, (int)at);
        return Encoding.ASCII.GetString(b, (int)at, end - (int)at);
    }

    private readonly record struct Header(uint NameOffset, ulong Flags, long Offset, long Size, ulong Align)
    {
        public static Header Read(byte[] elf, long at)
        {
            var h = elf.AsSpan((int)at);
            return new Header(BinaryPrimitives.ReadUInt32LittleEndian(h), BinaryPrimitives.ReadUInt64LittleEndian(h[0x08..]),
                (long)BinaryPrimitives.ReadUInt64LittleEndian(h[0x18..]), (long)BinaryPrimitives.ReadUInt64LittleEndian(h[0x20..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[0x30..]));
        }
    }
}
