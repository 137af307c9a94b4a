using System.Text.Json;
using System.Text.Json.Serialization;

namespace Hil.Kernel;

/// <summary>
/// What it takes to build an out-of-tree module for one Debian arm64 kernel on this amd64 host:
/// the kernel's headers and amd64 kbuild, unpacked (never installed) and patched as the facts
/// file describes, plus the make variables that must accompany every build.
/// A QEMU image makes its kit when provisioned; a real board names one with facts.module_kit.
/// </summary>
public sealed record ModuleKit
{
    public required string KernelRelease { get; init; }
    /// <summary>Folder to pass as make -C.</summary>
    public required string HeadersDirectory { get; init; }
    /// <summary>Variables for every make invocation (ARCH, CROSS_COMPILE, CC and the workarounds).</summary>
    public required IReadOnlyDictionary<string, string> MakeVariables { get; init; }
    /// <summary>Why each workaround is there, for a person reading kit.json.</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>make's argument vector for building the module in <paramref name="moduleDirectory"/>.</summary>
    public IReadOnlyList<string> MakeArguments(string moduleDirectory, string target = "modules") =>
        ["-C", HeadersDirectory, "M=" + Path.GetFullPath(moduleDirectory), .. MakeVariables.Select(kv => $"{kv.Key}={kv.Value}"), target];

    public static ModuleKit Load(string kitDirectory) =>
        JsonSerializer.Deserialize<ModuleKit>(File.ReadAllText(Path.Combine(kitDirectory, "kit.json")), Json.Options)
        ?? throw new ProvisioningException($"{kitDirectory}/kit.json is empty");
}

internal static class Json
{
    public static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };
}
