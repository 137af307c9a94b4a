namespace Hil.Workloads;

/// <summary>
/// Lines of space-separated key=value words, as the module and the holder print them. "-" stands
/// for "no value" (a call that has not started has no request time).
/// </summary>
public sealed class KeyValueLine
{
    private readonly Dictionary<string, string> _values;

    private KeyValueLine(string text, Dictionary<string, string> values)
    {
        Text = text;
        _values = values;
    }

    public string Text { get; }
    public IReadOnlyDictionary<string, string> Values => _values;

    /// <summary>Parses the words after an optional leading tag (e.g. "call"); a word without '=' is a format error.</summary>
    public static KeyValueLine Parse(string line, int skipWords = 0)
    {
        var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var w in words.Skip(skipWords))
        {
            var eq = w.IndexOf('=');
            if (eq <= 0) throw new FormatException($"'{w}' is not key=value in: {line}");
            if (!values.TryAdd(w[..eq], w[(eq + 1)..])) throw new FormatException($"key '{w[..eq]}' appears twice in: {line}");
        }
        return new KeyValueLine(line, values);
    }

    public string Get(string key) =>
        _values.TryGetValue(key, out var v) ? v : throw new FormatException($"no '{key}=' in: {Text}");

    public string? Optional(string key) => _values.TryGetValue(key, out var v) && v != "-" ? v : null;

    public T Number<T>(string key) where T : System.Numerics.INumber<T> =>
        T.TryParse(Get(key), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n)
            ? n : throw new FormatException($"'{key}={Get(key)}' is not a number in: {Text}");

    public T? OptionalNumber<T>(string key) where T : struct, System.Numerics.INumber<T> =>
        Optional(key) is null ? null : Number<T>(key);

    /// <summary>A 0x-prefixed 32-bit hexadecimal value (TEE result codes), or null for "-".</summary>
    public uint? OptionalHex(string key)
    {
        var v = Optional(key);
        if (v is null) return null;
        if (!v.StartsWith("0x", StringComparison.Ordinal) ||
            !uint.TryParse(v.AsSpan(2), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture, out var n))
            throw new FormatException($"'{key}={v}' is not 0x-hexadecimal in: {Text}");
        return n;
    }
}
