using Hil.Kernel;

namespace Hil.Qemu.Provisioning;

/// <summary>
/// The secure-boot chain every QEMU board shares: TF-A BL1/BL2/BL31 built from Debian's source
/// package, OP-TEE OS as BL32 and U-Boot as BL33 taken from Debian's binary packages. TF-A's BL1
/// loads the others by name from QEMU's working folder through semihosting (no FIP).
/// </summary>
public static class FirmwareBuilder
{
    /// <summary>
    /// TF-A make arguments. Why each: PLAT/SPD pick QEMU virt with the OP-TEE dispatcher;
    /// BL32_RAM_LOCATION=tdram because Debian's OP-TEE header loads at 0x0e100000 (SEC_DRAM);
    /// GICv3 matches the machine's gic-version=3; DEBUG=1 keeps BL1/BL2/BL31 INFO logs as boot evidence;
    /// CFLAGS/LDFLAGS as Debian's own debian/rules passes them (a gcc-12 array-bounds quirk).
    /// </summary>
    public static readonly IReadOnlyList<string> TfaMakeArguments =
    [
        "CROSS_COMPILE=aarch64-linux-gnu-", "PLAT=qemu", "SPD=opteed", "BL32_RAM_LOCATION=tdram",
        "QEMU_USE_GIC_DRIVER=QEMU_GICV3", "DEBUG=1", "CFLAGS=--param=min-pagesize=0", "LDFLAGS=",
    ];

    /// <summary>Firmware file names BL1 asks semihosting for, and where each comes from.</summary>
    public static readonly IReadOnlyList<string> Files =
        ["bl1.bin", "bl2.bin", "bl31.bin", "bl32.bin", "bl32_extra1.bin", "bl32_extra2.bin", "bl33.bin"];

    public static async Task BuildAsync(string target, string sourceDir, ResolvedSource tfa, DebPool pool,
        ResolvedPackage opteeOs, ResolvedPackage uboot, CancellationToken ct)
    {
        var work = Path.Combine(target, "work");
        var src = Path.Combine(work, "tfa");
        await ExternalTool.RunAsync("dpkg-source", ["-x", Path.Combine(sourceDir, tfa.DscFile), src], work.CreateDir(), ct: ct);
        var jobs = Math.Max(1, Environment.ProcessorCount).ToString();
        var log = Path.Combine(target, "tfa-build.log");
        await using (var logStream = File.Create(log))
        {
            await ExternalTool.RunAsync("make", ["-C", src, .. TfaMakeArguments, "-j" + jobs, "bl1", "bl2", "bl31"],
                ct: ct, stdoutSink: logStream);
        }
        var built = Path.Combine(src, "build", "qemu", "debug");
        foreach (var f in new[] { "bl1.bin", "bl2.bin", "bl31.bin" })
            File.Copy(Path.Combine(built, f), Path.Combine(target, f));

        var optee = Path.Combine(work, "optee-os");
        await pool.ExtractAsync(opteeOs, optee, ct);
        var opteeDir = Path.Combine(optee, "usr/lib/optee/vexpress-qemu_armv8a");
        Copy(Path.Combine(opteeDir, "tee-header_v2.bin"), Path.Combine(target, "bl32.bin"), opteeOs);
        Copy(Path.Combine(opteeDir, "tee-pager_v2.bin"), Path.Combine(target, "bl32_extra1.bin"), opteeOs);
        // Debian builds OP-TEE without a pager, so this part is empty; BL2 still asks for the file.
        Copy(Path.Combine(opteeDir, "tee-pageable_v2.bin"), Path.Combine(target, "bl32_extra2.bin"), opteeOs);

        var ub = Path.Combine(work, "u-boot");
        await pool.ExtractAsync(uboot, ub, ct);
        Copy(Path.Combine(ub, "usr/lib/u-boot/qemu_arm64/u-boot.bin"), Path.Combine(target, "bl33.bin"), uboot);

        Directory.Delete(work, recursive: true);
    }

    private static void Copy(string from, string to, ResolvedPackage origin)
    {
        if (!File.Exists(from))
            throw new ProvisioningException($"{origin} no longer ships {from[(from.IndexOf("/usr/", StringComparison.Ordinal))..]}; the firmware layout changed");
        File.Copy(from, to);
    }

    internal static string CreateDir(this string path) { Directory.CreateDirectory(path); return path; }
}
