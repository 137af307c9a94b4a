using System.Globalization;
using System.Text.RegularExpressions;

namespace Hil.Workloads.Tracing.Module;

/// <summary>The disassembly is not what the planner can read: names the listing line.</summary>
public sealed class DisassemblyException(string message) : TracingException(message);

/// <summary>One arm64 instruction of a function, as objdump printed it.</summary>
/// <param name="Offset">Byte offset from the function's symbol: what a kprobe writes as func+offset.</param>
/// <param name="Relocation">Symbol of the relocation applied here (a call to another module's function), if any.</param>
/// <param name="Target">objdump's own &lt;symbol&gt; annotation (intra-module calls and branches).</param>
public sealed record Instruction(ulong Address, int Offset, string Mnemonic, string Operands, string? Relocation, string? Target)
{
    /// <summary>The function a bl calls: the relocation wins (an unrelocated bl prints a bogus target).</summary>
    public string? CallTarget => Mnemonic == "bl" ? Relocation ?? PlainSymbol(Target) : null;

    /// <summary>Operands split at top-level commas ("x0, [x19, #16]" → "x0", "[x19, #16]").</summary>
    public IReadOnlyList<string> Args
    {
        get
        {
            var list = new List<string>();
            var depth = 0;
            var start = 0;
            for (var i = 0; i < Operands.Length; i++)
            {
                var c = Operands[i];
                if (c == '[') depth++;
                else if (c == ']') depth--;
                else if (c == ',' && depth == 0)
                {
                    list.Add(Operands[start..i].Trim());
                    start = i + 1;
                }
            }
            if (Operands.Length > start) list.Add(Operands[start..].Trim());
            return list;
        }
    }

    private static string? PlainSymbol(string? t) => t is null || t.Contains('+') || t.Contains('-') ? null : t;

    public override string ToString() => $"+0x{Offset:x} {Mnemonic} {Operands}";
}

/// <summary>A function symbol of the module with its instructions in address order.</summary>
public sealed record DisassembledFunction(string Name, string Section, ulong Start, IReadOnlyList<Instruction> Instructions)
{
    public int IndexAtOffset(int offset)
    {
        for (var i = 0; i < Instructions.Count; i++) if (Instructions[i].Offset == offset) return i;
        return -1;
    }
}

/// <summary>
/// The text of <c>objdump -dr</c> for one kernel module, parsed into functions. Only the shape
/// the planner needs: per function its instructions with their offsets from the symbol, and the
/// call relocations (a module's calls to kernel functions are unresolved until it is loaded, so
/// the relocation names the callee).
/// </summary>
public sealed partial class ObjdumpListing
{
    private readonly Dictionary<string, DisassembledFunction> _functions;

    private ObjdumpListing(Dictionary<string, DisassembledFunction> functions, string source)
    {
        _functions = functions;
        Source = source;
    }

    public string Source { get; }
    public IReadOnlyCollection<DisassembledFunction> Functions => _functions.Values;

    public DisassembledFunction? Find(string name) => _functions.GetValueOrDefault(name);

    public DisassembledFunction Require(string name) => Find(name)
        ?? throw new DisassemblyException($"{Source}: no function {name} in the disassembly");

    [GeneratedRegex(@"^([0-9a-f]{8,16}) <(.+)>:$")]
    private static partial Regex FunctionHeader();

    [GeneratedRegex(@"^\s*([0-9a-f]+):\t(?:[0-9a-f]{8}(?: [0-9a-f]{8})*\s*\t)?(\S+)(?:\t(.*))?$")]
    private static partial Regex InstructionLine();

    [GeneratedRegex(@"^\s*([0-9a-f]+): (R_AARCH64_\w+)\t(\S+?)(?:[+-]0x[0-9a-f]+)?$")]
    private static partial Regex RelocationLine();

    [GeneratedRegex(@"^Disassembly of section (\S+):$")]
    private static partial Regex SectionHeader();

    [GeneratedRegex(@"<([^>]+)>\s*$")]
    private static partial Regex TargetAnnotation();

    public static ObjdumpListing Parse(string text, string source)
    {
        var functions = new Dictionary<string, DisassembledFunction>();
        string section = "";
        string? name = null;
        ulong start = 0;
        var current = new List<Instruction>();
        var lineNo = 0;

        void Flush()
        {
            // A name seen twice (static functions of the same name in two sections) keeps the first:
            // kprobes resolve func+off through kallsyms, which has the same ambiguity.
            if (name is not null && current.Count > 0) functions.TryAdd(name, new DisassembledFunction(name, section, start, current));
            name = null;
            current = [];
        }

        foreach (var raw in text.Split('\n'))
        {
            lineNo++;
            var line = raw.TrimEnd('\r');
            if (line.Length == 0) continue;
            if (SectionHeader().Match(line) is { Success: true } s) { Flush(); section = s.Groups[1].Value; continue; }
            if (FunctionHeader().Match(line) is { Success: true } f)
            {
                Flush();
                name = f.Groups[2].Value;
                start = ulong.Parse(f.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                continue;
            }
            if (RelocationLine().Match(line) is { Success: true } r)
            {
                var at = ulong.Parse(r.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                var i = current.FindLastIndex(x => x.Address == at);
                if (i >= 0 && current[i].Relocation is null) current[i] = current[i] with { Relocation = r.Groups[3].Value };
                continue;
            }
            if (InstructionLine().Match(line) is { Success: true } m)
            {
                if (name is null) continue;   // .plt and other symbol-less code
                var addr = ulong.Parse(m.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                var operands = m.Groups[3].Success ? StripComment(m.Groups[3].Value) : "";
                string? target = null;
                if (TargetAnnotation().Match(operands) is { Success: true } t)
                {
                    target = t.Groups[1].Value;
                    operands = operands[..t.Index].TrimEnd();
                }
                if (addr < start) throw new DisassemblyException($"{source}:{lineNo}: address {addr:x} before its function {name} at {start:x}");
                current.Add(new Instruction(addr, (int)(addr - start), m.Groups[2].Value, operands, null, target));
            }
        }
        Flush();
        if (functions.Count == 0) throw new DisassemblyException($"{source}: no functions found (is this objdump -dr output of an arm64 module?)");
        return new ObjdumpListing(functions, source);
    }

    private static string StripComment(string operands)
    {
        var i = operands.IndexOf("//", StringComparison.Ordinal);
        return (i >= 0 ? operands[..i] : operands).Trim();
    }
}
