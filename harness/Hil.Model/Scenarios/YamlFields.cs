using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Hil.Model.Scenarios;

/// <summary>
/// Typed access to one YAML mapping that remembers where each value came from, so every
/// complaint names file, line and field. Unknown keys are refused (a typo must not be ignored).
/// </summary>
internal sealed class YamlFields
{
    private readonly YamlMappingNode _map;
    private readonly string _source;
    private readonly string _path;

    public YamlFields(YamlNode node, string source, string path)
    {
        _source = source;
        _path = path;
        _map = node as YamlMappingNode ?? throw Error(node, path, "expected a mapping (key: value lines)");
    }

    public long Line => _map.Start.Line;

    public void AllowOnly(params string[] keys)
    {
        foreach (var k in _map.Children.Keys)
        {
            var name = (k as YamlScalarNode)?.Value ?? "?";
            if (keys.Contains(name)) continue;
            // A key that is not a plain word (it may hold ':' or spaces) is quoted in the problem, so
            // the message keeps its file:line: field: problem shape.
            var plain = name.Length is > 0 and <= 40 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-');
            var shown = name.Length > 40 ? name[..40] + "…" : name;
            throw plain
                ? Error(k, Field(name), $"unknown field; expected one of: {string.Join(", ", keys)}")
                : Error(k, Field("(key)"), $"unknown field '{shown}'; expected one of: {string.Join(", ", keys)}");
        }
    }

    public YamlNode? Node(string key) =>
        _map.Children.TryGetValue(new YamlScalarNode(key), out var n) ? n : null;

    public string Field(string key) => _path.Length == 0 ? key : $"{_path}.{key}";

    public string? String(string key)
    {
        var n = Node(key);
        if (n is null) return null;
        if (n is not YamlScalarNode s) throw Error(n, Field(key), "expected a single value");
        return s.Value;
    }

    public string RequiredString(string key) =>
        String(key) is { Length: > 0 } v ? v : throw Error(Node(key) ?? _map, Field(key), "required");

    public int? Int(string key, int min, int max)
    {
        var s = String(key);
        if (s is null) return null;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
            throw Error(Node(key)!, Field(key), $"'{s}' is not a whole number");
        if (v < min || v > max) throw Error(Node(key)!, Field(key), $"{v} is out of range {min}..{max}");
        return v;
    }

    /// <summary>Milliseconds (decimals allowed) as whole microseconds.</summary>
    public long? Millis(string key)
    {
        var s = String(key);
        if (s is null) return null;
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || double.IsNaN(v) || double.IsInfinity(v))
            throw Error(Node(key)!, Field(key), $"'{s}' is not a number of milliseconds");
        if (v < 0) throw Error(Node(key)!, Field(key), "must not be negative");
        if (v > 1e9) throw Error(Node(key)!, Field(key), "more than 10^9 ms");
        return (long)Math.Round(v * 1000);
    }

    public bool? Bool(string key)
    {
        var s = String(key);
        if (s is null) return null;
        return s.ToLowerInvariant() switch
        {
            "true" or "yes" or "on" => true,
            "false" or "no" or "off" => false,
            _ => throw Error(Node(key)!, Field(key), $"'{s}' is not true or false"),
        };
    }

    public IReadOnlyList<YamlNode> Sequence(string key)
    {
        var n = Node(key);
        if (n is null) return [];
        if (n is not YamlSequenceNode seq) throw Error(n, Field(key), "expected a list");
        return seq.Children.ToList();
    }

    /// <summary>A list of scalars; a single scalar is taken as a one-element list.</summary>
    public IReadOnlyList<(string Value, YamlNode Node)> Scalars(string key)
    {
        var n = Node(key);
        if (n is null) return [];
        if (n is YamlScalarNode one) return [(one.Value ?? "", one)];
        if (n is not YamlSequenceNode seq) throw Error(n, Field(key), "expected a list of names");
        return seq.Children.Select(c => c is YamlScalarNode s ? (s.Value ?? "", (YamlNode)s)
            : throw Error(c, Field(key), "expected a name")).ToList();
    }

    public ScenarioException Error(YamlNode node, string field, string problem) => new(_source, node.Start.Line, field, problem);
}
