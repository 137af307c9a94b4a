using System.Diagnostics;
using System.Text.Json;
using Hil.Kernel;
using Hil.Qemu.Provisioning;
using Hil.Workloads;
using Serilog;

namespace Hil.Patches;

/// <summary>
/// The board kernel's own drivers/tee/, unpacked from Debian's linux-source-X.Y package of the
/// kernel's exact version (the 'linux' source package's tree with Debian's patches applied, as
/// the kernel was built). <see cref="Tree"/> holds drivers/tee/ and nothing else: the rest of the
/// kernel comes from the headers in the build root.
/// </summary>
public sealed record KernelSource
{
    public required string Directory { get; init; }
    /// <summary>The folder that holds drivers/tee/ (series paths are relative to it).</summary>
    public required string Tree { get; init; }
    public required string Package { get; init; }
    public required string Version { get; init; }
    public required string Sha256 { get; init; }
    public required string Key { get; init; }
    public bool Reused { get; init; }
    /// <summary>Cold only: fetching the .deb (resolve + download + verify), and unpacking drivers/tee/ out of it.</summary>
    public TimeSpan? Download { get; init; }
    public TimeSpan? Unpack { get; init; }

    /// <summary>"linux 6.12.118-1", for messages.</summary>
    public string Name => $"linux {Version}";

    private const string InfoFile = "source.json";
    /// <summary>The part of the kernel tree that is unpacked; a series may touch nothing else.</summary>
    public const string Subtree = "drivers/tee";

    /// <summary>Ensures the source is in the cache (patches/sources/PKG_VERSION-KEY) and returns it.</summary>
    public static async Task<KernelSource> EnsureAsync(HilCache cache, BoardKernel kernel, ILogger log, CancellationToken ct)
    {
        var package = $"linux-source-{kernel.UpstreamSeries}";
        var name = $"{package}_{kernel.PackageVersion.Replace(':', '_')}-{HilCache.KeyOf([package, kernel.PackageVersion, Subtree, "source v1"])}";
        var builds = PatchCache.For(cache);
        TimeSpan? download = null, unpack = null;
        var (dir, reused) = await builds.GetOrBuildAsync("sources", name, async target =>
        {
            var aptRoot = cache.Apt(kernel.AptConfiguration);
            if (!File.Exists(Path.Combine(aptRoot, "apt.conf")))
                throw new PatchRejectedException(PatchRejection.Board, $"{kernel.Board}: its apt configuration {aptRoot} is missing; run: tools/hil provision --board {kernel.Board}");
            // The lists and the pool are provisioning's: hold its lock while reading or refreshing them.
            using var held = await ProvisionLock.AcquireAsync(cache, log, TimeSpan.FromMinutes(30), ct);
            // The configuration provisioning wrote (and updated) for this board: read it, never rewrite it.
            var apt = new PrivateApt(kernel.AptConfiguration, aptRoot, "arm64", [new AptSource("(provisioned)", kernel.KernelSuite)]);
            var pool = new DebPool(cache);
            var sw = Stopwatch.StartNew();
            ResolvedPackage deb;
            try
            {
                deb = await apt.ResolveExactAsync(package, kernel.PackageVersion, ct);
            }
            catch (ProvisioningException)
            {
                // Lists older than the kernel's upload: refresh them once (the private configuration only).
                log.Information("patch: {Package}={Version} not in the lists of {Apt}; updating them", package, kernel.PackageVersion, apt.Name);
                await apt.UpdateAsync(ct);
                deb = await apt.ResolveExactAsync(package, kernel.PackageVersion, ct);
            }
            if (!pool.Has(deb)) log.Information("patch: downloading {Deb} ({Size} MB) through {Apt}", deb.DebFileName, deb.Size >> 20, apt.Name);
            await pool.EnsureAsync(apt, [deb], ct);
            // Present in the pool means verified at download; verify again since the tree is cached for good.
            var sha = HilCache.Sha256OfFile(pool.PathOf(deb));
            if (sha != deb.Sha256) throw new PatchEnvironmentException($"{pool.PathOf(deb)}: sha256 {sha} does not match the index ({deb.Sha256})");
            download = sw.Elapsed;

            sw.Restart();
            var tree = Path.Combine(target, "tree");
            await UnpackAsync(pool.PathOf(deb), package, tree, target, ct);
            unpack = sw.Elapsed;
            if (!System.IO.Directory.Exists(Path.Combine(tree, Subtree, "optee")))
                throw new PatchEnvironmentException($"{deb.DebFileName} has no {Subtree}/optee");

            var files = System.IO.Directory.EnumerateFiles(tree, "*", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(target, f)).Order(StringComparer.Ordinal)
                .Select(f => new ManifestFile(f, new FileInfo(Path.Combine(target, f)).Length, HilCache.Sha256OfFile(Path.Combine(target, f))))
                .ToList();
            new Manifest(kernel.Board, name, "source v1",
                [new ManifestPackage(deb.Name, deb.Version, deb.Architecture, deb.Suite, "patch source (drivers/tee)", "debs/" + deb.DebFileName, sha)],
                files).Write(target);
            await File.WriteAllTextAsync(Path.Combine(target, InfoFile), JsonSerializer.Serialize(new Info(deb.Name, deb.Version, sha,
                download.Value.TotalSeconds, unpack.Value.TotalSeconds)), ct);
        });
        var info = JsonSerializer.Deserialize<Info>(await File.ReadAllTextAsync(Path.Combine(dir, InfoFile), ct))
            ?? throw new PatchEnvironmentException($"{dir}/{InfoFile} is empty");
        if (reused)
        {
            // A cached tree is used as it is: check it against its manifest (sizes; hashes are cheap for ~40 files).
            var bad = Manifest.Load(dir).Verify(dir, hashes: true);
            if (bad.Count > 0) throw new PatchEnvironmentException($"{dir}: the cached source changed ({string.Join(", ", bad.Take(3))}); delete the folder to fetch it again");
        }
        return new KernelSource
        {
            Directory = dir, Tree = Path.Combine(dir, "tree"), Package = info.Package, Version = info.Version, Sha256 = info.Sha256,
            Key = name, Reused = reused, Download = download, Unpack = unpack,
        };
    }

    private sealed record Info(string Package, string Version, string Sha256, double DownloadSeconds, double UnpackSeconds);

    /// <summary>
    /// The package holds one tarball (usr/src/linux-source-X.Y.tar.xz, ~150 MB): unpack the .deb
    /// beside, then only linux-source-X.Y/drivers/tee/ out of the tarball.
    /// </summary>
    private static async Task UnpackAsync(string deb, string package, string tree, string scratchParent, CancellationToken ct)
    {
        var scratch = Path.Combine(scratchParent, "deb");
        await ExternalTool.RunAsync("dpkg-deb", ["-x", deb, scratch], ct: ct);
        var tarball = Path.Combine(scratch, "usr/src", package + ".tar.xz");
        if (!File.Exists(tarball)) throw new PatchEnvironmentException($"{Path.GetFileName(deb)} has no usr/src/{package}.tar.xz");
        System.IO.Directory.CreateDirectory(tree);
        await ExternalTool.RunAsync("tar", ["-xJf", tarball, "-C", tree, "--strip-components=1", $"{package}/{Subtree}"], ct: ct);
        System.IO.Directory.Delete(scratch, recursive: true);
    }

    /// <summary>Copies drivers/tee/ into <paramref name="root"/> (a fresh folder), for a series to patch.</summary>
    public void CopyTreeTo(string root)
    {
        var from = Path.Combine(Tree, Subtree);
        foreach (var d in System.IO.Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories).Prepend(from))
            System.IO.Directory.CreateDirectory(Path.Combine(root, Subtree, Path.GetRelativePath(from, d)));
        foreach (var f in System.IO.Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(f, Path.Combine(root, Subtree, Path.GetRelativePath(from, f)));
    }
}

/// <summary>Where patch validation keeps its pieces: &lt;cache&gt;/patches/{sources,buildroots,builds}/NAME.</summary>
public static class PatchCache
{
    // Below the provisioning cache's own two-level pieces, so its clean-up of *.partial-* never sees ours.
    public static BuildCache For(HilCache cache) => new(Path.Combine(cache.Root, "patches"));
}
