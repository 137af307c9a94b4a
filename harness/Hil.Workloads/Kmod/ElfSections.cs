using System.Globalization;
using System.Text.RegularExpressions;

namespace Hil.Workloads.Kmod;

/// <summary>One section header as `readelf -SW` prints it.</summary>
public sealed record ElfSection(int Index, string Name, string Type, long Size, string Flags, long Alignment)
{
    public bool Executable => Flags.Contains('X');
}

/// <summary>One FUNC symbol as `readelf -sW` prints it (Value is the offset in its section for a .ko).</summary>
public sealed record ElfFunction(string Name, ulong Value, string SectionIndex);

/// <summary>Reads the parts of readelf's output the alignment check needs.</summary>
public static partial class ReadElfOutput
{
    // "  [ 1] .text   PROGBITS  0000000000000000 000040 0024c8 00  AX  0   0  8" (flags may be empty)
    [GeneratedRegex(@"^\s*\[\s*(?<nr>\d+)\]\s+(?<name>\S+)\s+(?<type>\S+)\s+[0-9a-fA-F]+\s+[0-9a-fA-F]+\s+(?<size>[0-9a-fA-F]+)\s+[0-9a-fA-F]+\s(?<flags>[A-Za-z ]*?)\s+\d+\s+\d+\s+(?<al>\d+)\s*$")]
    private static partial Regex SectionLine();

    // "    37: 0000000000000008    44 FUNC    LOCAL  DEFAULT    1 match_optee"
    [GeneratedRegex(@"^\s*\d+:\s+(?<value>[0-9a-fA-F]+)\s+\d+\s+FUNC\s+\S+\s+\S+\s+(?<ndx>\S+)\s+(?<name>\S+)\s*$")]
    private static partial Regex FunctionLine();

    public static IReadOnlyList<ElfSection> Sections(string readelfSections)
    {
        var list = new List<ElfSection>();
        foreach (var line in readelfSections.Split('\n'))
        {
            var m = SectionLine().Match(line.TrimEnd('\r'));
            if (!m.Success) continue;
            list.Add(new ElfSection(int.Parse(m.Groups["nr"].Value, CultureInfo.InvariantCulture), m.Groups["name"].Value, m.Groups["type"].Value,
                long.Parse(m.Groups["size"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture), m.Groups["flags"].Value.Trim(),
                long.Parse(m.Groups["al"].Value, CultureInfo.InvariantCulture)));
        }
        if (list.Count == 0) throw new FormatException("no section headers in readelf -SW output");
        return list;
    }

    public static IReadOnlyList<ElfFunction> Functions(string readelfSymbols) =>
        readelfSymbols.Split('\n').Select(l => FunctionLine().Match(l.TrimEnd('\r'))).Where(m => m.Success)
            .Select(m => new ElfFunction(m.Groups["name"].Value, ulong.Parse(m.Groups["value"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture), m.Groups["ndx"].Value))
            .ToList();
}

/// <summary>
/// The deploy gate against the gcc-12/gcc-14 trap: Debian's 6.12 kernel patches every module
/// function entry for ftrace CALL_OPS and BUGs (kernel crash at insmod) on one that is not 8-byte
/// aligned. A module may only go to a board when every code section is aligned to at least 8 and
/// every function starts at a multiple of 8 within it.
/// </summary>
public static class ModuleAlignment
{
    public const int Required = 8;

    /// <summary>
    /// arm64's module linker script reserves these as 1-byte placeholders that the module loader
    /// replaces with its own allocations; they hold no code of ours.
    /// </summary>
    public static readonly IReadOnlySet<string> LoaderPlaceholders = new HashSet<string>(StringComparer.Ordinal)
        { ".plt", ".init.plt", ".text.ftrace_trampoline" };

    /// <summary>Every way the module breaks the rule; empty when it may be deployed.</summary>
    public static IReadOnlyList<string> Problems(IReadOnlyList<ElfSection> sections, IReadOnlyList<ElfFunction> functions)
    {
        var problems = new List<string>();
        foreach (var s in sections.Where(s => s.Executable))
        {
            if (s.Size == 0) continue;   // an empty section has no entry to patch
            if (LoaderPlaceholders.Contains(s.Name) && s.Size <= 1) continue;
            if (s.Alignment < Required)
                problems.Add($"code section {s.Name} is aligned to {s.Alignment} (needs {Required})");
        }
        var code = sections.Where(s => s.Executable).Select(s => s.Index.ToString(CultureInfo.InvariantCulture)).ToHashSet();
        foreach (var f in functions.Where(f => code.Contains(f.SectionIndex) && f.Value % Required != 0))
            problems.Add($"function {f.Name} starts at offset 0x{f.Value:x} of section [{f.SectionIndex}] (not a multiple of {Required})");
        if (!sections.Any(s => s.Executable && s.Size > 0 && !LoaderPlaceholders.Contains(s.Name)))
            problems.Add("no code section at all: not a module build");
        return problems;
    }
}
