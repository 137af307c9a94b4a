using Hil.Kernel;
using Hil.Qemu.Provisioning;

namespace Hil.Patches;

/// <summary>
/// The facts a patch build needs about one board's kernel, read from its provisioned image and
/// manifest (never guessed): the exact Debian package version, the private apt configuration and
/// suite it came from, and the module-kit packages (headers, kbuild) already verified in the pool.
/// </summary>
public sealed record BoardKernel
{
    public required string Board { get; init; }
    /// <summary>6.12.118+deb13-arm64: what uname -r says and what vermagic must start with.</summary>
    public required string Release { get; init; }
    /// <summary>6.12.118-1: the version of the Debian 'linux' source package the kernel was built from.</summary>
    public required string PackageVersion { get; init; }
    /// <summary>trixie (the Debian release whose archive and compiler built it).</summary>
    public required string Distribution { get; init; }
    /// <summary>The private apt configuration (arm64) that resolved the kernel: it also carries the source.</summary>
    public required string AptConfiguration { get; init; }
    /// <summary>The suite the kernel came from (e.g. trixie-security).</summary>
    public required string KernelSuite { get; init; }
    /// <summary>linux-headers-RELEASE (arm64).</summary>
    public required ResolvedPackage ArchHeaders { get; init; }
    /// <summary>linux-headers-…-common (all).</summary>
    public required ResolvedPackage CommonHeaders { get; init; }
    /// <summary>The amd64 linux-kbuild of the same version (Debian's own, not the bookworm stand-in).</summary>
    public required ResolvedPackage Kbuild { get; init; }
    public required ProvisionedImage Image { get; init; }

    /// <summary>"6.12" of "6.12.118-1": Debian names its kernel source package after it (linux-source-6.12).</summary>
    public string UpstreamSeries
    {
        get
        {
            var parts = PackageVersion.Split('.', '-', '+');
            return parts.Length >= 2 ? $"{parts[0]}.{parts[1]}" : throw new PatchEnvironmentException($"cannot read a kernel series from version '{PackageVersion}'");
        }
    }

    public override string ToString() => $"{Board}: linux {PackageVersion} ({Release}, {KernelSuite})";

    /// <summary>The QEMU board's kernel, from the image it currently points at.</summary>
    public static BoardKernel ForQemuBoard(HilCache cache, string board)
    {
        BoardRecipe recipe;
        try { recipe = BoardRecipe.Find(board); }
        catch (ProvisioningException ex) { throw new PatchRejectedException(PatchRejection.Board, ex.Message); }
        var image = QemuProvisioner.Current(cache, recipe)
            ?? throw new PatchRejectedException(PatchRejection.Board, $"{board} is not provisioned (or its image is incomplete); run: tools/hil provision --board {board}");
        if (!File.Exists(Path.Combine(image.ModuleKitDirectory, "kit.json")))
            throw new PatchRejectedException(PatchRejection.Board, $"{board} has no module kit ({image.ModuleKitDirectory}/kit.json missing); run: tools/hil provision --board {board} --force");
        var manifest = Manifest.Load(image.Directory);
        return FromManifest(image, manifest, recipe.KernelSuiteConfig);
    }

    internal static BoardKernel FromManifest(ProvisionedImage image, Manifest manifest, string aptConfiguration)
    {
        var where = Path.Combine(image.Directory, Manifest.JsonName);
        ManifestPackage One(string what, Func<ManifestPackage, bool> match) =>
            manifest.Packages.SingleOrDefault(match)
            ?? throw new PatchRejectedException(PatchRejection.Board, $"{where}: no {what} package listed; the board has no module kit this build can use");
        var kernel = One("kernel", p => p.Role == "kernel");
        var release = image.KernelRelease;
        var arch = One($"linux-headers-{release}", p => p.Package == "linux-headers-" + release);
        var common = One("linux-headers-…-common", p => p.Role == "module kit" && p.Package.StartsWith("linux-headers-", StringComparison.Ordinal) &&
                                                      p.Package.EndsWith("-common", StringComparison.Ordinal) && p.Version == kernel.Version);
        // The kit may also list a bookworm kbuild stand-in (another version): Debian's own has the kernel's version.
        var kbuild = One("linux-kbuild (same version as the kernel)", p => p.Role == "module kit" &&
                                                      p.Package.StartsWith("linux-kbuild-", StringComparison.Ordinal) && p.Version == kernel.Version);
        return new BoardKernel
        {
            Board = image.Board,
            Release = release,
            PackageVersion = kernel.Version,
            Distribution = kernel.Suite.Split('-')[0],
            AptConfiguration = aptConfiguration,
            KernelSuite = kernel.Suite,
            ArchHeaders = Resolved(arch),
            CommonHeaders = Resolved(common),
            Kbuild = Resolved(kbuild),
            Image = image,
        };
    }

    /// <summary>A manifest row as the pool knows it (the pool names files by package, version and architecture).</summary>
    private static ResolvedPackage Resolved(ManifestPackage p) => new(p.Package, p.Version, p.Architecture, p.Suite, p.Sha256, 0);
}
