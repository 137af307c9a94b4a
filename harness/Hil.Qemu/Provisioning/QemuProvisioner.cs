using System.Diagnostics;
using System.Text.Json;
using Hil.Kernel;
using Serilog;

namespace Hil.Qemu.Provisioning;

public sealed record ProvisionOptions
{
    /// <summary>Rebuild every piece of the asked boards even when the cache has it (downloads stay verified in the pool).</summary>
    public bool Force { get; init; }
    /// <summary>Ask the mirror for current versions even when a provisioned image exists (picks up point releases).</summary>
    public bool Refresh { get; init; }
    public string Mirror { get; init; } = Environment.GetEnvironmentVariable("HIL_DEBIAN_MIRROR") is { Length: > 0 } m ? m : "http://deb.debian.org/debian";
    public string SecurityMirror { get; init; } = Environment.GetEnvironmentVariable("HIL_DEBIAN_SECURITY_MIRROR") is { Length: > 0 } m ? m : "http://deb.debian.org/debian-security";
    /// <summary>Install missing host packages (as root) before starting.</summary>
    public bool EnsureHostPackages { get; init; } = true;
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromMinutes(30);
}

/// <summary>What a provisioning run produced and did.</summary>
public sealed record ProvisionResult(IReadOnlyList<ProvisionedImage> Images, IReadOnlyList<StepRecord> Steps, TimeSpan Elapsed)
{
    /// <summary>True when the run fetched or compiled anything (false for a warm run).</summary>
    public bool DidWork => Steps.Any(s => s.Kind is StepKind.Download or StepKind.Build or StepKind.Resolve);
}

/// <summary>
/// Provisions QEMU OP-TEE boards from Debian packages: resolve exact versions with private apt
/// configurations, download and verify, build TF-A, make module kits and the libteec sysroot,
/// assemble each board's image with fresh keys, and point the board at it. Every piece sits in
/// the cache under a key of its exact inputs, so a second run finds everything and does nothing.
/// </summary>
public sealed class QemuProvisioner(HilCache cache, ProvisionOptions options, ILogger log, IProvisionProgress progress)
{
    public const string Soc = "qemu-virt";
    public const string KernelCommandLine = "console=ttyAMA0,115200";
    /// <summary>See ProvisionedImage.BootloaderCommands: keeps the kernel off OP-TEE's static SHM at 0x42000000.</summary>
    public static readonly IReadOnlyList<string> BootloaderCommands =
        ["setenv kernel_addr_r 0x46000000", "setenv ramdisk_addr_r 0x50000000", "boot"];

    private readonly DebPool _pool = new(cache);
    private readonly List<StepRecord> _steps = [];
    private readonly HashSet<string> _updated = [];
    private readonly HashSet<string> _rebuiltThisRun = [];
    private Dictionary<string, PrivateApt>? _apts;

    public Task<ProvisionResult> ProvisionAsync(IReadOnlyList<BoardRecipe> boards, CancellationToken ct) =>
        progress.RunAsync(async _ =>
        {
            var sw = Stopwatch.StartNew();
            if (options.EnsureHostPackages)
                await StepAsync("host", "host packages", StepKind.Check, () => HostPrerequisites.EnsureAsync(log, ct));
            using var held = await ProvisionLock.AcquireAsync(cache, log, options.LockTimeout, ct);
            cache.RemovePartials();
            var images = new List<ProvisionedImage>();
            foreach (var b in boards)
            {
                if (!options.Force && !options.Refresh && TryReuse(b) is { } reused)
                {
                    _steps.Add(new StepRecord(b.Board, $"reuse {Path.GetFileName(reused.Directory)}", StepKind.Reuse, TimeSpan.Zero));
                    log.Information("provision: {Board} is provisioned at {Dir} (no network, no build)", b.Board, reused.Directory);
                    PublishAccess(cache, reused);
                    images.Add(reused);
                    continue;
                }
                images.Add(await ProvisionBoardAsync(b, ct));
            }
            return new ProvisionResult(images, _steps.ToList(), sw.Elapsed);
        });

    /// <summary>The inputs of a board that are ours rather than Debian's: changing any of them changes every key.</summary>
    public static string RecipeKey(BoardRecipe b) => HilCache.KeyOf(
    [
        $"initramfs recipe v{InitramfsBuilder.RecipeVersion}", InitramfsBuilder.InitTemplate,
        string.Join(' ', FirmwareBuilder.TfaMakeArguments), string.Join(' ', BoardRecipe.UserSpacePackages),
        string.Join(' ', BoardRecipe.BootModules), string.Join(' ', BoardRecipe.FirmwarePackages),
        string.Join(' ', BoardRecipe.LibteecPackages), KernelCommandLine, string.Join(';', BootloaderCommands),
        string.Join(' ', b.Kit.MakeVariables.Select(kv => kv.Key + "=" + kv.Value)), b.KernelPolicy,
    ]);

    private sealed record Pointer(string Image, string RecipeKey);

    /// <summary>The image the board points at, if it is complete and made by the current recipe. Reads only local files.</summary>
    public ProvisionedImage? TryReuse(BoardRecipe b)
    {
        var path = cache.BoardPointer(b.Board);
        if (!File.Exists(path)) return null;
        try
        {
            var ptr = JsonSerializer.Deserialize<Pointer>(File.ReadAllText(path), Json.Options);
            if (ptr is null || ptr.RecipeKey != RecipeKey(b) || !Directory.Exists(ptr.Image)) return null;
            var image = ProvisionedImage.Load(ptr.Image);
            if (Manifest.Load(ptr.Image).Verify(ptr.Image, hashes: false).Count > 0) return null;
            if (!File.Exists(Path.Combine(image.ModuleKitDirectory, "kit.json")) || !Directory.Exists(image.Libteec.Directory)) return null;
            return image;
        }
        catch (Exception ex) when (ex is JsonException or ProvisioningException or IOException)
        {
            log.Warning("provision: ignoring unreadable {Pointer}: {Error}", path, ex.Message);
            return null;
        }
    }

    /// <summary>The image a board currently points at (no provisioning); null if none.</summary>
    public static ProvisionedImage? Current(HilCache cache, BoardRecipe b) =>
        new QemuProvisioner(cache, new ProvisionOptions(), Serilog.Core.Logger.None, new LogProvisionProgress(Serilog.Core.Logger.None)).TryReuse(b);

    private Dictionary<string, PrivateApt> Apts()
    {
        if (_apts is not null) return _apts;
        AptSource Main(string suite, bool src = false) => new(options.Mirror, suite, src);
        AptSource Sec(string suite) => new(options.SecurityMirror, suite);
        PrivateApt Make(string name, string arch, params AptSource[] s) => new(name, cache.Apt(name), arch, s);
        _apts = new[]
        {
            // deb-src only where a source package is needed (TF-A): Sources indexes are large.
            Make("trixie-arm64", "arm64", Main("trixie", src: true), Main("trixie-updates"), Sec("trixie-security")),
            Make("trixie-amd64", "amd64", Main("trixie"), Main("trixie-updates"), Sec("trixie-security")),
            Make("bookworm-arm64", "arm64", Main("bookworm"), Main("bookworm-updates"), Sec("bookworm-security")),
            Make("bookworm-amd64", "amd64", Main("bookworm"), Main("bookworm-updates"), Sec("bookworm-security"), Main("bookworm-backports")),
        }.ToDictionary(a => a.Name);
        return _apts;
    }

    private async Task<PrivateApt> AptAsync(string board, string name, CancellationToken ct)
    {
        var apt = Apts()[name];
        if (_updated.Add(name))
        {
            apt.WriteConfiguration();
            await StepAsync(board, $"apt update ({name})", StepKind.Resolve, () => apt.UpdateAsync(ct));
        }
        return apt;
    }

    private async Task<ProvisionedImage> ProvisionBoardAsync(BoardRecipe b, CancellationToken ct)
    {
        // 1. Resolve every input to an exact version.
        var trixie = await AptAsync(b.Board, "trixie-arm64", ct);
        var kernelApt = await AptAsync(b.Board, b.KernelSuiteConfig, ct);
        var kbuildApt = await AptAsync(b.Board, b.KbuildSuiteConfig, ct);
        var binApt = b.Kit.BinariesFromSuiteConfig is { } bc ? await AptAsync(b.Board, bc, ct) : null;

        var inputs = new List<(PrivateApt Apt, ResolvedPackage Pkg, string Role)>();
        ResolvedSource tfa = null!;
        ResolvedPackage kernel = null!, kbuild = null!;
        ResolvedPackage? glibcReplacement = null;
        var headers = new List<ResolvedPackage>();
        await StepAsync(b.Board, "resolve package versions", StepKind.Resolve, async () =>
        {
            foreach (var p in await trixie.ResolveAsync(BoardRecipe.FirmwarePackages, ct)) inputs.Add((trixie, p, "firmware"));
            foreach (var p in await trixie.ResolveAsync(BoardRecipe.UserSpacePackages, ct)) inputs.Add((trixie, p, "user space"));
            foreach (var p in await trixie.ResolveAsync(BoardRecipe.LibteecPackages.Except(BoardRecipe.UserSpacePackages).ToList(), ct)) inputs.Add((trixie, p, "libteec"));
            tfa = await trixie.ResolveSourceAsync(BoardRecipe.TfaSourcePackage, ct);

            // The metapackage names this suite's current kernel ABI; never pin the ABI number.
            var meta = await kernelApt.DependsAsync("linux-image-arm64", ct);
            var (imageName, imageVersion) = meta.FirstOrDefault(d => d.Name.StartsWith("linux-image-", StringComparison.Ordinal));
            if (imageName is null) throw new ProvisioningException($"linux-image-arm64 in {kernelApt.Name} depends on no linux-image-*");
            kernel = (await kernelApt.ResolveAsync([imageName], ct))[0];
            if (imageVersion is not null && kernel.Version != imageVersion)
                throw new ProvisioningException($"{kernelApt.Name}: linux-image-arm64 wants {imageName}={imageVersion} but the candidate is {kernel.Version}");
            inputs.Add((kernelApt, kernel, "kernel"));
            var release = imageName["linux-image-".Length..];

            var archHeaders = (await kernelApt.ResolveAsync(["linux-headers-" + release], ct))[0];
            var hdrDeps = await kernelApt.DependsAsync(archHeaders.Name, ct);
            var common = hdrDeps.FirstOrDefault(d => d.Name.StartsWith("linux-headers-", StringComparison.Ordinal) && d.Name.EndsWith("-common", StringComparison.Ordinal)).Name
                ?? throw new ProvisioningException($"{archHeaders} names no -common headers package");
            var kbuildName = hdrDeps.FirstOrDefault(d => d.Name.StartsWith("linux-kbuild-", StringComparison.Ordinal)).Name
                ?? throw new ProvisioningException($"{archHeaders} names no linux-kbuild package");
            headers.Add(archHeaders);
            headers.Add((await kernelApt.ResolveAsync([common], ct))[0]);
            foreach (var h in headers) inputs.Add((kernelApt, h, "module kit"));
            kbuild = (await kbuildApt.ResolveAsync([kbuildName], ct))[0];
            inputs.Add((kbuildApt, kbuild, "module kit"));

            if (binApt is not null && b.Kit.BinariesPackagePattern is { } pattern)
            {
                var names = await binApt.SearchNamesAsync(pattern, ct);
                if (names.Count == 0) throw new ProvisioningException($"no package matching {pattern} in {binApt.Name}");
                var candidates = await binApt.ResolveAsync(names, ct);
                var best = candidates[0];
                foreach (var c in candidates.Skip(1))
                    if (await PrivateApt.VersionGreaterAsync(c.Version, best.Version, ct)) best = c;
                glibcReplacement = best;
                inputs.Add((binApt, best, "module kit"));
            }
        });
        var byRole = (string role) => inputs.Where(i => i.Role == role).Select(i => i.Pkg).ToList();
        ResolvedPackage Pkg(string name) => inputs.First(i => i.Pkg.Name == name).Pkg;

        // 2. Download what the pool lacks (apt verifies against the signed index; the pool checks sha256 again).
        if (inputs.Any(i => !_pool.Has(i.Pkg)))
            await StepAsync(b.Board, "download packages", StepKind.Download, async () =>
            {
                foreach (var group in inputs.GroupBy(i => i.Apt))
                    await _pool.EnsureAsync(group.Key, group.Select(i => i.Pkg).ToList(), ct);
            });
        var sourceDir = Path.Combine(cache.Sources, $"{tfa.Name}_{tfa.Version.Replace(':', '_')}");
        if (!Directory.Exists(sourceDir))
            await StepAsync(b.Board, $"download {tfa.Name} {tfa.Version} source", StepKind.Download, () =>
                HilCache.BuildAtomicallyAsync(sourceDir, async t =>
                {
                    await trixie.DownloadSourceAsync(tfa, t, ct);
                    foreach (var (file, sha) in tfa.Files)
                    {
                        var actual = HilCache.Sha256OfFile(Path.Combine(t, file));
                        if (actual != sha) throw new ProvisioningException($"{file}: sha256 {actual} does not match the Sources index ({sha})");
                    }
                }));

        // 3. Shared pieces, each keyed by its own inputs.
        var opteeOs = Pkg("optee-os");
        var uboot = Pkg("u-boot-qemu");
        var fwKey = HilCache.KeyOf([$"tfa {tfa.Version} {tfa.Files.First(f => f.File == tfa.DscFile).Sha256}",
            string.Join(' ', FirmwareBuilder.TfaMakeArguments), Line(opteeOs), Line(uboot)]);
        var fwDir = cache.Firmware($"tfa-{tfa.Version.Replace(':', '_')}-{fwKey}");
        await BuildPieceAsync(b.Board, fwDir, $"build TF-A {tfa.Version} (bl1, bl2, bl31)", t =>
            FirmwareBuilder.BuildAsync(t, sourceDir, tfa, _pool, opteeOs, uboot, ct));

        var release = kernel.Name["linux-image-".Length..];
        var kitKey = HilCache.KeyOf(headers.Append(kbuild).Concat(glibcReplacement is null ? [] : [glibcReplacement]).Select(Line)
            .Concat(b.Kit.MakeVariables.Select(kv => kv.Key + "=" + kv.Value)).Append("kit v1"));
        var kitDir = cache.Kit(release, kitKey);
        await BuildPieceAsync(b.Board, kitDir, $"module kit for {release}", t =>
            ModuleKitBuilder.BuildAsync(t, kitDir, release, _pool, headers, kbuild, glibcReplacement, b.Kit, ct));

        var teecPkgs = BoardRecipe.LibteecPackages.Select(Pkg).ToList();
        var teecKey = HilCache.KeyOf(teecPkgs.Select(Line));
        var teecDir = cache.Libteec($"optee-client-{Pkg("libteec2").Version.Replace(':', '_')}-{teecKey}");
        await BuildPieceAsync(b.Board, teecDir, "libteec headers and library (arm64)", async t =>
        {
            foreach (var p in teecPkgs) await _pool.ExtractAsync(p, t, ct);
            if (!File.Exists(Path.Combine(t, "usr/include/tee_client_api.h")))
                throw new ProvisioningException($"{Pkg("optee-client-dev")} has no usr/include/tee_client_api.h");
        });

        // 4. The board's own image: firmware, kernel, initramfs with fresh keys, manifest.
        var recipeKey = RecipeKey(b);
        var imageKey = HilCache.KeyOf(inputs.Select(i => Line(i.Pkg)).Order(StringComparer.Ordinal)
            .Concat([recipeKey, fwKey, kitKey, teecKey]));
        var imageDir = cache.Image(b.Board, imageKey);
        await BuildPieceAsync(b.Board, imageDir, $"image {b.Board} (kernel {release})", async t =>
        {
            var keys = Path.Combine(t, "keys").CreateDir();
            File.SetUnixFileMode(keys, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var rootKey = await Ed25519KeyPair.GenerateAsync(Path.Combine(keys, "root_ed25519"), $"hil-root@{b.Board}-{imageKey}", ct);
            var hostKey = await Ed25519KeyPair.GenerateAsync(Path.Combine(keys, "host_ed25519"), $"hil-host@{b.Board}-{imageKey}", ct);

            var work = Path.Combine(t, "work");
            var kparts = await InitramfsBuilder.ExtractKernelAsync(_pool, kernel, work, ct);
            File.Copy(kparts.ImagePath, Path.Combine(t, "Image"));
            foreach (var f in FirmwareBuilder.Files) File.Copy(Path.Combine(fwDir, f), Path.Combine(t, f));
            await InitramfsBuilder.BuildAsync(Path.Combine(t, "rootfs.cpio.gz"), b.Board, work, _pool,
                byRole("user space"), kparts, Path.Combine(keys, "host_ed25519"), rootKey, ct);
            Directory.Delete(work, recursive: true);

            var packages = inputs.Select(i => new ManifestPackage(i.Pkg.Name, i.Pkg.Version, i.Pkg.Architecture, i.Pkg.Suite, i.Role,
                    "debs/" + i.Pkg.DebFileName, HilCache.Sha256OfFile(_pool.PathOf(i.Pkg))))
                .Concat(tfa.Files.Select(f => new ManifestPackage(tfa.Name, tfa.Version, "source", tfa.Suite, "firmware (built)",
                    $"sources/{Path.GetFileName(sourceDir)}/{f.File}", HilCache.Sha256OfFile(Path.Combine(sourceDir, f.File)))))
                .ToList();
            foreach (var p in packages.Where(p => p.Architecture != "source"))
            {
                var expected = inputs.First(i => i.Pkg.Name == p.Package).Pkg.Sha256;
                if (p.Sha256 != expected) throw new ProvisioningException($"{p.File}: sha256 {p.Sha256} differs from the index ({expected})");
            }
            // Private keys are listed nowhere: only their paths are published (image.json).
            var files = Directory.EnumerateFiles(t, "*", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(t, f))
                .Where(f => f is not ("keys/root_ed25519" or "keys/host_ed25519"))
                .Order(StringComparer.Ordinal)
                .Select(f => new ManifestFile(f, new FileInfo(Path.Combine(t, f)).Length, HilCache.Sha256OfFile(Path.Combine(t, f))))
                .ToList();
            new Manifest(b.Board, imageKey, recipeKey, packages, files).Write(t);

            new ProvisionedImage
            {
                Board = b.Board,
                Directory = imageDir,
                CacheKey = imageKey,
                Soc = Soc,
                KernelRelease = release,
                KernelPackageVersion = kernel.Version,
                KernelPolicy = b.KernelPolicy,
                ExpectedThreadCount = BoardRecipe.ExpectedThreadCount,
                OpteeVersion = opteeOs.Version,
                FirmwareFiles = FirmwareBuilder.Files,
                KernelImage = Path.Combine(imageDir, "Image"),
                Initrd = Path.Combine(imageDir, "rootfs.cpio.gz"),
                KernelCommandLine = KernelCommandLine,
                BootloaderCommands = BootloaderCommands,
                Ssh = new SshAccess("root", Path.Combine(imageDir, "keys/root_ed25519"), hostKey.Fingerprint,
                    hostKey.PublicLine, InitramfsBuilder.GuestAddress),
                ModuleKitDirectory = kitDir,
                Libteec = new LibteecSysroot(teecDir, Path.Combine(teecDir, "usr/include"),
                    Path.Combine(teecDir, "usr/lib/aarch64-linux-gnu"), Pkg("libteec2").Version),
                CreatedUtc = DateTimeOffset.UtcNow,
            }.SaveTo(t);
        });

        // 5. Point the board at it (atomically: write beside, then rename over).
        var ptrPath = cache.BoardPointer(b.Board);
        Directory.CreateDirectory(Path.GetDirectoryName(ptrPath)!);
        var tmp = $"{ptrPath}.partial-{Environment.ProcessId}";
        await File.WriteAllTextAsync(tmp, JsonSerializer.Serialize(new Pointer(imageDir, recipeKey), Json.Options), ct);
        File.Move(tmp, ptrPath, overwrite: true);
        var image = ProvisionedImage.Load(imageDir);
        PublishAccess(cache, image);
        log.Information("provision: {Board} ready at {Dir}", b.Board, imageDir);
        return image;
    }

    /// <summary>
    /// Stable paths a board file can name: boards/BOARD/known_hosts pins the image's host key for any
    /// forwarded loopback port, boards/BOARD/root_ed25519 links to the image's root key (no copy of the secret).
    /// </summary>
    public static void PublishAccess(HilCache cache, ProvisionedImage image)
    {
        var dir = cache.BoardAccess(image.Board);
        Directory.CreateDirectory(dir);
        var parts = image.Ssh.HostKeyPublic.Split(' ');
        var kh = Path.Combine(dir, "known_hosts");
        File.WriteAllText(kh + ".partial", $"[127.0.0.1]:* {parts[0]} {parts[1]}\n");
        File.Move(kh + ".partial", kh, overwrite: true);
        var key = Path.Combine(dir, "root_ed25519");
        if (File.Exists(key) || new FileInfo(key).LinkTarget is not null) File.Delete(key);
        File.CreateSymbolicLink(key, image.Ssh.PrivateKeyPath);
    }

    private static string Line(ResolvedPackage p) => $"{p.Name} {p.Version} {p.Architecture} {p.Sha256}";

    /// <summary>Builds a keyed piece unless it exists (or rebuilds it once per run under --force).</summary>
    private async Task BuildPieceAsync(string board, string dir, string description, Func<string, Task> build)
    {
        if (options.Force && Directory.Exists(dir) && _rebuiltThisRun.Add(dir))
            Directory.Delete(dir, recursive: true);
        if (Directory.Exists(dir)) { _steps.Add(new StepRecord(board, $"reuse {description}", StepKind.Reuse, TimeSpan.Zero)); return; }
        _rebuiltThisRun.Add(dir);
        await StepAsync(board, description, StepKind.Build, () => HilCache.BuildAtomicallyAsync(dir, build));
    }

    private async Task StepAsync(string board, string description, StepKind kind, Func<Task> body)
    {
        var sw = Stopwatch.StartNew();
        using (progress.Begin($"{board}: {description}"))
            await body();
        _steps.Add(new StepRecord(board, description, kind, sw.Elapsed));
    }
}
