using Hil.Kernel;

namespace Hil.Qemu.Provisioning;

/// <summary>How a kernel's out-of-tree module build must be coaxed on a bookworm host (see the facts file).</summary>
public sealed record KitWorkarounds(
    // The headers' kbuild binaries need a newer glibc than the host's: take them from this suite's kbuild of the same major line.
    string? BinariesFromSuiteConfig,
    string? BinariesPackagePattern,
    // make variables that switch off options the host's gcc-12 / pahole 1.24 do not have.
    IReadOnlyDictionary<string, string> MakeVariables);

/// <summary>
/// What makes one QEMU board: which Debian suite its kernel comes from and which driver policy
/// that kernel implements. Firmware and user space are the same for every board.
/// </summary>
public sealed record BoardRecipe(
    string Board,
    string KernelSuiteConfig,      // private apt configuration (arm64) holding the kernel
    string KbuildSuiteConfig,      // private apt configuration (amd64) holding the matching linux-kbuild
    string KernelPolicy,           // call-queue policy the kernel implements (see the spec)
    bool ModulesCompressed,
    KitWorkarounds Kit)
{
    public static readonly BoardRecipe Mainline = new(
        "qemu-optee", "trixie-arm64", "trixie-amd64", "mainline", ModulesCompressed: true,
        new KitWorkarounds("bookworm-amd64", @"^linux-kbuild-6\.12\.[0-9]+\+deb12$",
            new Dictionary<string, string>
            {
                // gcc-12 lacks -fmin-function-alignment; empty makes Kbuild use -falign-functions.
                ["CONFIG_CC_HAS_MIN_FUNCTION_ALIGNMENT"] = "",
                // bookworm's pahole is 1.24; the kernel's .config says 1.30 and would pass --btf_features.
                ["CONFIG_PAHOLE_VERSION"] = "124",
            }));

    public static readonly BoardRecipe Legacy = new(
        "qemu-optee-6.1", "bookworm-arm64", "bookworm-amd64", "legacy", ModulesCompressed: false,
        new KitWorkarounds(null, null, new Dictionary<string, string>()));

    public static IReadOnlyList<BoardRecipe> All { get; } = [Mainline, Legacy];

    public static BoardRecipe Find(string board) =>
        All.FirstOrDefault(r => r.Board == board)
        ?? throw new ProvisioningException($"unknown QEMU board '{board}'; known: {string.Join(", ", All.Select(r => r.Board))}");

    /// <summary>OP-TEE 4.5 vexpress-qemu_armv8a runs two secure threads, whatever the kernel.</summary>
    public const int ExpectedThreadCount = 2;

    /// <summary>Kernel modules /init loads, by module name; dependencies are added from modules.dep.</summary>
    public static readonly IReadOnlyList<string> BootModules = ["tee", "optee", "virtio_pci", "virtio_net"];

    /// <summary>
    /// Target user space, all from trixie arm64. Listed rather than taken from the Depends closure,
    /// which would drag in adduser, perl and the like that an initramfs does not need.
    /// </summary>
    public static readonly IReadOnlyList<string> UserSpacePackages =
    [
        "busybox-static",                  // the shell and every basic tool
        "dropbear-bin",                    // SSH server
        "tee-supplicant", "libteec2", "libckteec0t64", // OP-TEE normal-world services
        "optee-test-qemu",                 // xtest and its test TAs
        // runtime libraries of the above
        "libc6", "libgcc-s1", "libssl3t64", "zlib1g", "libzstd1", "libcrypt1",
        "libtomcrypt1", "libtommath1", "libgmp10",
    ];

    /// <summary>Firmware: OP-TEE OS (BL32) and U-Boot (BL33); TF-A is built from its source package.</summary>
    public static readonly IReadOnlyList<string> FirmwarePackages = ["optee-os", "u-boot-qemu"];

    /// <summary>Headers and library for cross-building a libteec client later.</summary>
    public static readonly IReadOnlyList<string> LibteecPackages = ["optee-client-dev", "libteec2", "libckteec0t64"];

    public const string TfaSourcePackage = "arm-trusted-firmware";
}
