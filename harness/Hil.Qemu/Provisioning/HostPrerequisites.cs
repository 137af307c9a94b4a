using Hil.Kernel;
using Serilog;

namespace Hil.Qemu.Provisioning;

/// <summary>
/// Host packages provisioning and launching need. Installed through the system's apt when missing
/// and running as root; otherwise a clear message names the packages to install.
/// </summary>
public static class HostPrerequisites
{
    /// <summary>Package, and why it is needed.</summary>
    public static readonly IReadOnlyList<(string Package, string Why)> Packages =
    [
        ("qemu-system-arm", "qemu-system-aarch64 runs the board"),
        ("gcc-aarch64-linux-gnu", "cross compiler for TF-A and kernel modules"),
        ("binutils-aarch64-linux-gnu", "cross linker"),
        ("make", "TF-A and Kbuild"),
        ("dpkg-dev", "dpkg-source unpacks the TF-A source package"),
        ("xz-utils", "decompresses .ko.xz modules"),
        ("openssh-client", "ssh-keygen makes the image's keys"),
        ("dwarves", "pahole for module BTF in the module kits"),
        ("debian-archive-keyring", "verifies the Debian archives of the private apt configurations"),
        ("gpgv", "apt's signature checks"),
    ];

    public static async Task<IReadOnlyList<string>> MissingAsync(CancellationToken ct)
    {
        var missing = new List<string>();
        foreach (var (pkg, _) in Packages)
        {
            var r = await ExternalTool.RunAsync("dpkg-query", ["-W", "-f=${Status}", pkg], check: false, ct: ct);
            if (r.ExitCode != 0 || !r.Stdout.Contains("install ok installed")) missing.Add(pkg);
        }
        return missing;
    }

    public static async Task EnsureAsync(ILogger log, CancellationToken ct)
    {
        var missing = await MissingAsync(ct);
        if (missing.Count == 0) return;
        if (Environment.UserName != "root")
            throw new ProvisioningException(
                $"missing host packages: {string.Join(' ', missing)}; install them as root: sudo apt-get install -y {string.Join(' ', missing)}");
        log.Information("provision: installing host packages {Packages}", string.Join(' ', missing));
        var env = new Dictionary<string, string> { ["DEBIAN_FRONTEND"] = "noninteractive" };
        await ExternalTool.RunAsync("apt-get", ["-q", "update"], environment: env, ct: ct);
        await ExternalTool.RunAsync("apt-get", ["install", "-y", "-q", "--no-install-recommends", .. missing], environment: env, ct: ct);
    }
}
