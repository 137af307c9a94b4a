using System.Globalization;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Hil.Boards.BoardFiles;

/// <summary>
/// Reads fields of a YAML representation model while keeping line numbers, so every error can say
/// file, line and field. Errors are collected, not thrown, to report all of them in one go.
/// </summary>
internal sealed class YamlFields(string file, List<BoardFileError> errors)
{
    public string File { get; } = file;

    public void Error(YamlNode? node, string field, string message) =>
        errors.Add(new BoardFileError(File, node is null ? 1 : (int)node.Start.Line, node is null ? 1 : (int)node.Start.Column, field, message));

    public YamlMap? Map(YamlNode node, string path)
    {
        if (node is YamlMappingNode m) return new YamlMap(this, m, path);
        Error(node, path.Length == 0 ? "(root)" : path, "expected a mapping (key: value lines)");
        return null;
    }
}

/// <summary>One mapping of the board file; remembers which keys were read to reject unknown (misspelt) ones.</summary>
internal sealed partial class YamlMap(YamlFields f, YamlMappingNode node, string path)
{
    private readonly HashSet<string> _read = [];

    public YamlMappingNode Node => node;
    public string Path => path;

    private string Field(string key) => path.Length == 0 ? key : $"{path}.{key}";

    public YamlNode? Raw(string key)
    {
        _read.Add(key);
        return node.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;
    }

    public bool Has(string key) => node.Children.ContainsKey(new YamlScalarNode(key));

    public string? Str(string key, bool required = false)
    {
        var v = Raw(key);
        if (v is null)
        {
            if (required) f.Error(node, Field(key), "is required");
            return null;
        }
        if (v is YamlScalarNode { Value: { } s } && s.Length > 0) return s;
        f.Error(v, Field(key), v is YamlScalarNode ? "must not be empty" : "expected a single value");
        return null;
    }

    public int? Int(string key, int min, int max)
    {
        var s = Str(key);
        if (s is null) return null;
        if (int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max) return n;
        f.Error(Raw(key), Field(key), $"expected a whole number from {min} to {max}, got '{s}'");
        return null;
    }

    public bool? Bool(string key)
    {
        var s = Str(key);
        if (s is null) return null;
        switch (s.ToLowerInvariant())
        {
            case "true" or "yes" or "on": return true;
            case "false" or "no" or "off": return false;
            default:
                f.Error(Raw(key), Field(key), $"expected true or false, got '{s}'");
                return null;
        }
    }

    [GeneratedRegex(@"^(?<n>\d+(\.\d+)?)\s*(?<u>ms|s|m|h)?$")]
    private static partial Regex DurationPattern();

    private const double MaxDurationSeconds = 7 * 24 * 3600;

    /// <summary>Durations are "500ms", "30s", "2m", "1h" or a plain number of seconds.</summary>
    public TimeSpan? Duration(string key, TimeSpan? max = null)
    {
        var s = Str(key);
        if (s is null) return null;
        var m = DurationPattern().Match(s.Trim());
        if (!m.Success)
        {
            f.Error(Raw(key), Field(key), $"expected a duration such as 500ms, 30s, 2m, got '{s}'");
            return null;
        }
        var n = double.Parse(m.Groups["n"].Value, CultureInfo.InvariantCulture);
        var seconds = m.Groups["u"].Value switch
        {
            "ms" => n / 1000,
            "m" => n * 60,
            "h" => n * 3600,
            _ => n,
        };
        // TimeSpan overflows near 29,000 years; no wait of a lab is longer than a week.
        if (seconds > MaxDurationSeconds)
        {
            f.Error(Raw(key), Field(key), $"'{s}' is longer than a week; no board step waits that long");
            return null;
        }
        var t = TimeSpan.FromSeconds(seconds);
        if (t <= TimeSpan.Zero || (max is { } mx && t > mx))
        {
            f.Error(Raw(key), Field(key), $"must be more than 0{(max is { } x ? $" and at most {x.TotalSeconds:0}s" : "")}");
            return null;
        }
        return t;
    }

    /// <summary>A list of strings; a single scalar is taken as a one-element list.</summary>
    public IReadOnlyList<string>? StrList(string key)
    {
        var v = Raw(key);
        switch (v)
        {
            case null: return null;
            case YamlScalarNode { Value: { Length: > 0 } s }: return [s];
            case YamlSequenceNode seq:
                var list = new List<string>();
                foreach (var item in seq.Children)
                {
                    if (item is YamlScalarNode { Value: { } s2 }) list.Add(s2);
                    else f.Error(item, Field(key), "list items must be single values");
                }
                if (list.Count == 0) f.Error(v, Field(key), "must not be an empty list");
                return list;
            default:
                f.Error(v, Field(key), "expected a value or a list of values");
                return null;
        }
    }

    public YamlMap? Map(string key, bool required = false)
    {
        var v = Raw(key);
        if (v is null)
        {
            if (required) f.Error(node, Field(key), "is required");
            return null;
        }
        return f.Map(v, Field(key));
    }

    /// <summary>A flat map of string values (facts, driver settings).</summary>
    public Dictionary<string, string> StrMap(string key)
    {
        var result = new Dictionary<string, string>();
        var v = Raw(key);
        if (v is null) return result;
        if (v is not YamlMappingNode m)
        {
            f.Error(v, Field(key), "expected a mapping of names to values");
            return result;
        }
        foreach (var (k, val) in m.Children)
        {
            if (k is YamlScalarNode { Value: { } ks } && val is YamlScalarNode { Value: { } vs }) result[ks] = vs;
            else f.Error(val, Field(key), "entries must be name: value");
        }
        return result;
    }

    /// <summary>
    /// A secret: <c>{ env: NAME }</c> or <c>{ file: path }</c>. An inline value is refused, so a
    /// password can never be committed in a board file.
    /// </summary>
    public SecretRef? Secret(string key, string baseDir)
    {
        var v = Raw(key);
        if (v is null) return null;
        if (v is YamlScalarNode)
        {
            f.Error(v, Field(key), "secrets are never written inline; use { env: VARIABLE } or { file: path }");
            return null;
        }
        var m = f.Map(v, Field(key));
        if (m is null) return null;
        var env = m.Str("env");
        var file = m.Str("file");
        m.Done();
        if ((env is null) == (file is null))
        {
            f.Error(v, Field(key), "give exactly one of env: or file:");
            return null;
        }
        // From now on the variable holds a secret: children that do not need it do not get it.
        if (env is not null) Secrets.ChildEnvironment.RegisterSecretVariable(env);
        var path = file is null ? null : BoardPaths.Resolve(file, baseDir);
        // Checked now, not at the first login an hour into a run: a secret that is not there is the
        // file's (or the environment's) mistake. Only presence is checked; the value is never read here.
        if (env is not null && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(env)))
            f.Error(m.Raw("env"), $"{Field(key)}.env", $"environment variable {env} is not set (the secret is read from it)");
        if (path is not null && !File.Exists(path))
            f.Error(m.Raw("file"), $"{Field(key)}.file", Directory.Exists(path) ? $"{path} is a folder, not a secret file" : $"secret file {path} does not exist");
        return new SecretRef(env, path);
    }

    /// <summary>Reports keys nobody read: almost always a typo that would otherwise be silently ignored.</summary>
    public void Done()
    {
        foreach (var (k, _) in node.Children)
        {
            if (k is not YamlScalarNode { Value: { } name } || _read.Contains(name)) continue;
            var near = _read.OrderBy(r => Levenshtein(r, name)).FirstOrDefault();
            var hint = near is not null && Levenshtein(near, name) <= 2 ? $" (did you mean '{near}'?)" : $" (known: {string.Join(", ", _read.Order())})";
            f.Error(k, Field(name), "unknown field" + hint);
        }
    }

    private static int Levenshtein(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (var j = 0; j <= b.Length; j++) d[0, j] = j;
        for (var i = 1; i <= a.Length; i++)
        for (var j = 1; j <= b.Length; j++)
            d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }
}

internal static partial class BoardPaths
{
    [System.Text.RegularExpressions.GeneratedRegex(@"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")]
    private static partial System.Text.RegularExpressions.Regex Variable();

    /// <summary>
    /// Board-file paths are relative to the board file; "~/" is the user's home; ${NAME} and
    /// ${NAME:-default} take an environment variable (a lab's files live under $HIL_CACHE or a
    /// lab-wide folder). A variable that is unset and has no default stays as written, so the
    /// error about the missing file shows it.
    /// </summary>
    public static string Resolve(string path, string baseDir)
    {
        path = Variable().Replace(path, m =>
            Environment.GetEnvironmentVariable(m.Groups[1].Value) is { Length: > 0 } v ? v
            : m.Groups[2].Success ? m.Groups[2].Value : m.Value);
        if (path.StartsWith("~/", StringComparison.Ordinal))
            path = System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path[2..]);
        return System.IO.Path.GetFullPath(path, baseDir);
    }
}
