using System.Globalization;
using Hil.Workloads.Tracing.Module;

namespace Hil.Workloads.Tracing.Planning;

/// <summary>A register's value in terms of something known: "entry value of x1, plus 16".</summary>
public readonly record struct SymbolicValue(string Base, long Offset)
{
    public static SymbolicValue Argument(int n) => new($"arg{n}", 0);
    public override string ToString() => Offset == 0 ? Base : $"{Base}{(Offset < 0 ? "-" : "+")}0x{Math.Abs(Offset):x}";
}

/// <summary>
/// Just enough arm64 data flow to follow a pointer through a function's straight-line code: moves,
/// adds of constants, and everything else as "unknown". Calls clobber the caller-saved registers
/// (x0–x18, x30), so a value that survives a call is one the compiler kept in x19–x28. Branches are
/// ignored: the planner only asks about paths the compiler lays out straight (function entry to
/// the first call; a call's argument set up just before it), and every answer is then checked by
/// the board's trace against the model.
/// </summary>
public sealed class RegisterValues
{
    private readonly Dictionary<int, SymbolicValue> _x = [];

    /// <summary>At a function's entry: x0..x7 hold its arguments.</summary>
    public static RegisterValues AtEntry()
    {
        var r = new RegisterValues();
        for (var i = 0; i < 8; i++) r._x[i] = SymbolicValue.Argument(i);
        return r;
    }

    public SymbolicValue? this[int reg] => _x.TryGetValue(reg, out var v) ? v : null;

    /// <summary>The callee-saved register (x19–x28) holding <paramref name="value"/>, if any.</summary>
    public int? CalleeSavedHolding(SymbolicValue value)
    {
        for (var r = 19; r <= 28; r++) if (this[r] == value) return r;
        return null;
    }

    /// <summary>Registers after running <paramref name="f"/>'s instructions [from, to).</summary>
    public static RegisterValues Run(DisassembledFunction f, int to, RegisterValues? start = null, int from = 0)
    {
        var r = start ?? AtEntry();
        for (var i = from; i < to; i++) r.Step(f.Instructions[i]);
        return r;
    }

    public void Step(Instruction ins)
    {
        var m = ins.Mnemonic;
        var a = ins.Args;
        if (m is "bl" or "blr")
        {
            for (var i = 0; i <= 18; i++) _x.Remove(i);
            _x.Remove(30);
            return;
        }
        if (m == "mov" && a.Count == 2 && Register(a[0]) is { Wide: true } d && Register(a[1]) is { Wide: true } s)
        {
            Set(d.Number, this[s.Number]);
            return;
        }
        if (m is "add" or "sub" && a.Count == 3 && Register(a[0]) is { Wide: true } d2 && Register(a[1]) is { Wide: true } s2 && Immediate(a[2]) is { } imm)
        {
            var v = this[s2.Number];
            Set(d2.Number, v is { } sv ? sv with { Offset = sv.Offset + (m == "add" ? imm : -imm) } : null);
            return;
        }
        foreach (var w in Written(ins)) _x.Remove(w);
    }

    private void Set(int reg, SymbolicValue? v)
    {
        if (v is { } x) _x[reg] = x; else _x.Remove(reg);
    }

    /// <summary>General-purpose registers an instruction writes (destination, load pairs, base writeback).</summary>
    public static IEnumerable<int> Written(Instruction ins)
    {
        var m = ins.Mnemonic;
        var a = ins.Args;
        // Writeback addressing ("[x20, #32]!" or "[x20], #16") changes the base register.
        var mem = a.FirstOrDefault(x => x.StartsWith('['));
        if (mem is not null && (mem.EndsWith('!') || a[^1] != mem) && Register(mem.Trim('[', ']', '!').Split(',')[0]) is { } wb)
            yield return wb.Number;
        if (IsNoWrite(m) || a.Count == 0) yield break;
        if (Register(a[0]) is { } d) yield return d.Number;
        if (m is "ldp" or "ldpsw" or "ldnp" or "ldaxp" or "ldxp" && a.Count > 1 && Register(a[1]) is { } d2) yield return d2.Number;
    }

    /// <summary>Whether the instruction reads register <paramref name="reg"/> (as x or w) as a source.</summary>
    public static bool Reads(Instruction ins, int reg)
    {
        var a = ins.Args;
        var sources = IsNoWrite(ins.Mnemonic) ? a : a.Skip(ins.Mnemonic is "ldp" or "ldpsw" ? 2 : 1);
        foreach (var op in sources)
            foreach (var tok in op.Split([' ', ',', '[', ']', '!', '#'], StringSplitOptions.RemoveEmptyEntries))
                if (Register(tok) is { } r && r.Number == reg) return true;
        return false;
    }

    private static bool IsNoWrite(string m) =>
        m.StartsWith("st", StringComparison.Ordinal) || m is "cmp" or "cmn" or "tst" or "ccmp" or "ccmn" or "b" or "br" or "ret" or "nop"
            or "cbz" or "cbnz" or "tbz" or "tbnz" or "prfm" or "dmb" or "dsb" or "isb" or "hint" or "bti"
            or "paciasp" or "autiasp" or "pacibsp" or "autibsp"
        || m.StartsWith("b.", StringComparison.Ordinal);

    public readonly record struct Reg(int Number, bool Wide);

    /// <summary>x0–x30 / w0–w30 (not sp, xzr/wzr).</summary>
    public static Reg? Register(string token)
    {
        token = token.Trim();
        if (token.Length < 2 || token[0] is not ('x' or 'w')) return null;
        if (!int.TryParse(token.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n > 30) return null;
        return new Reg(n, token[0] == 'x');
    }

    /// <summary>"#0x10" or "#16" (an optional shift is not followed: such adds are not field offsets).</summary>
    public static long? Immediate(string token)
    {
        token = token.Trim();
        if (!token.StartsWith('#')) return null;
        var t = token[1..];
        var neg = t.StartsWith('-');
        if (neg) t = t[1..];
        long v;
        if (t.StartsWith("0x", StringComparison.Ordinal)) { if (!long.TryParse(t.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out v)) return null; }
        else if (!long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out v)) return null;
        return neg ? -v : v;
    }

    /// <summary>"[x19, #52]" → (19, 52); "[x19]" → (19, 0); null for other addressing.</summary>
    public static (int Base, long Offset)? Memory(string operand)
    {
        if (!operand.StartsWith('[') || operand.EndsWith('!')) return null;
        var parts = operand.Trim('[', ']').Split(',', StringSplitOptions.TrimEntries);
        if (Register(parts[0]) is not { Wide: true } b) return null;
        if (parts.Length == 1) return (b.Number, 0);
        return parts.Length == 2 && Immediate(parts[1]) is { } off ? (b.Number, off) : null;
    }
}
