using System.Text.Json;
using System.Text.Json.Serialization;

namespace Hil.Patches;

/// <summary>
/// One OP-TEE driver the suites run on instead of the board's own: the control (the unpatched
/// source built the same way) or a patched build, the modules to swap in, and the policy its
/// traces are judged by.
/// </summary>
public sealed record DriverUnderTest
{
    /// <summary>Short name, used in fixture names and result folders ("control", "bug-01-…").</summary>
    public required string Name { get; init; }
    /// <summary>"control" or "patched".</summary>
    public required string Role { get; init; }
    /// <summary>
    /// The model policy the traces are judged by (what the patch claims). Null: the driver's own,
    /// told from its code like a stock driver's (the control).
    /// </summary>
    public string? Policy { get; init; }
    /// <summary>Where <see cref="Policy"/> came from ("--expect-policy", "the patch's Claims-Policy trailer", …).</summary>
    public string? PolicyFrom { get; init; }
    /// <summary>The patches, in order, as given (empty for the control).</summary>
    public IReadOnlyList<string> Series { get; init; } = [];
    public required IReadOnlyList<DriverModuleFile> Modules { get; init; }

    [JsonIgnore] public bool IsControl => Role == "control";

    /// <summary>The optee.ko of this driver (the tracer plans its probes from it).</summary>
    [JsonIgnore] public DriverModuleFile Optee => Modules.First(m => m.Name == "optee");

    public IReadOnlyList<BuiltDriverModule> ToBuilt() =>
        [.. Modules.Select(m => new BuiltDriverModule(m.Name, m.Path, m.BuildId, "", new FileInfo(m.Path).Length, 0))];

    public static DriverUnderTest From(string name, string role, DriverBuild build, IReadOnlyList<string> series, string? policy, string? policyFrom) => new()
    {
        Name = name, Role = role, Policy = policy, PolicyFrom = policyFrom, Series = series,
        Modules = [.. build.Modules.Select(m => new DriverModuleFile(m.Name, m.Path, m.BuildId))],
    };
}

/// <summary>A built module: name (optee, tee), host path, GNU build ID.</summary>
public sealed record DriverModuleFile(string Name, string Path, string BuildId);

/// <summary>
/// The drivers a patch run hands to the on-board suites (<c>HIL_DRIVERS</c> names the file): the
/// suites then run every fixture once per driver, swapping each in on the running board.
/// </summary>
public sealed record DriverManifest
{
    public const string EnvVar = "HIL_DRIVERS";
    public const string FormatName = "hil-drivers/1";
    /// <summary>The NUnit category of the tests a patch run runs on every driver.</summary>
    public const string SuiteCategory = "CallQueue";

    public string Format { get; init; } = FormatName;
    public required string Board { get; init; }
    public required IReadOnlyList<DriverUnderTest> Drivers { get; init; }

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public void Write(string path) => File.WriteAllText(path, JsonSerializer.Serialize(this, Json));

    /// <summary>Reads and checks a manifest; any problem is one line naming the file and the field.</summary>
    public static DriverManifest Read(string path)
    {
        DriverManifest? m;
        try
        {
            m = JsonSerializer.Deserialize<DriverManifest>(File.ReadAllText(path), Json);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException or NotSupportedException)
        {
            throw new FormatException($"{EnvVar} {path}: {ex.Message.Split('\n')[0]}");
        }
        if (m is null) throw new FormatException($"{EnvVar} {path}: empty");
        if (m.Format != FormatName) throw new FormatException($"{EnvVar} {path}: format: '{m.Format}' is not {FormatName}");
        if (m.Drivers is not { Count: > 0 }) throw new FormatException($"{EnvVar} {path}: drivers: none listed");
        for (var i = 0; i < m.Drivers.Count; i++)
        {
            var d = m.Drivers[i];
            var where = $"{EnvVar} {path}: drivers[{i}]";
            if (string.IsNullOrWhiteSpace(d.Name) || d.Name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
                throw new FormatException($"{where}.name: '{d.Name}' (letters, digits, '-', '_', '.')");
            if (m.Drivers.Take(i).Any(o => o.Name == d.Name)) throw new FormatException($"{where}.name: '{d.Name}' is listed twice");
            if (d.Role is not ("control" or "patched")) throw new FormatException($"{where}.role: '{d.Role}' (control or patched)");
            if (d.Modules is not { Count: > 0 } || d.Modules.All(x => x.Name != "optee")) throw new FormatException($"{where}.modules: no optee module");
            foreach (var mod in d.Modules)
            {
                if (!File.Exists(mod.Path)) throw new FormatException($"{where}.modules: {mod.Name}: {mod.Path} does not exist");
                if (string.IsNullOrEmpty(mod.BuildId)) throw new FormatException($"{where}.modules: {mod.Name}: no build_id");
            }
        }
        return m;
    }
}
