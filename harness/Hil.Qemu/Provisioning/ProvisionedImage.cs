using System.Text.Json;
using Hil.Kernel;

namespace Hil.Qemu.Provisioning;

/// <summary>How to reach the board's SSH server and check that it is the one we provisioned.</summary>
public sealed record SshAccess(
    string User,
    /// <summary>Path of the root private key (mode 0600, never copied elsewhere).</summary>
    string PrivateKeyPath,
    /// <summary>"SHA256:…" of the image's dropbear host key: the only key a client may accept.</summary>
    string HostKeyFingerprint,
    /// <summary>"ssh-ed25519 AAAA…" of that host key (for a known_hosts line).</summary>
    string HostKeyPublic,
    string GuestAddress);

/// <summary>
/// A provisioned QEMU board image: every file QEMU needs, the facts suites rely on, SSH access
/// and the module kit. Saved as image.json in the image folder; paths are absolute.
/// </summary>
public sealed record ProvisionedImage
{
    public const string FileName = "image.json";

    public required string Board { get; init; }
    public required string Directory { get; init; }
    public required string CacheKey { get; init; }
    public required string Soc { get; init; }
    public required string KernelRelease { get; init; }
    public required string KernelPackageVersion { get; init; }
    /// <summary>Call-queue policy of this kernel's OP-TEE driver (mainline / legacy).</summary>
    public required string KernelPolicy { get; init; }
    public required int ExpectedThreadCount { get; init; }
    public required string OpteeVersion { get; init; }
    /// <summary>Firmware files BL1 loads by name from QEMU's working folder (= <see cref="Directory"/>).</summary>
    public required IReadOnlyList<string> FirmwareFiles { get; init; }
    public required string KernelImage { get; init; }
    public required string Initrd { get; init; }
    public required string KernelCommandLine { get; init; }
    /// <summary>
    /// U-Boot commands that place the 37 MB kernel above OP-TEE's static SHM at 0x42000000; sent
    /// after interrupting autoboot (the board file's bootloader stage).
    /// </summary>
    public required IReadOnlyList<string> BootloaderCommands { get; init; }
    public required SshAccess Ssh { get; init; }
    public required string ModuleKitDirectory { get; init; }
    public required LibteecSysroot Libteec { get; init; }
    public required DateTimeOffset CreatedUtc { get; init; }

    public string Bios => Path.Combine(Directory, "bl1.bin");
    public string ManifestPath => Path.Combine(Directory, Manifest.JsonName);
    public string ManifestTablePath => Path.Combine(Directory, Manifest.TableName);

    public ModuleKit LoadModuleKit() => ModuleKit.Load(ModuleKitDirectory);

    public static ProvisionedImage Load(string imageDirectory)
    {
        var path = Path.Combine(imageDirectory, FileName);
        if (!File.Exists(path)) throw new ProvisioningException($"{path} not found: the image is not provisioned");
        return JsonSerializer.Deserialize<ProvisionedImage>(File.ReadAllText(path), Json.Options)
            ?? throw new ProvisioningException($"{path} is empty");
    }

    /// <summary>Writes image.json into <paramref name="folder"/> (the image is built beside its final place, then renamed).</summary>
    public void SaveTo(string folder) => File.WriteAllText(Path.Combine(folder, FileName), JsonSerializer.Serialize(this, Json.Options));
}
