using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Hil.Kernel;
using Hil.Qemu.Provisioning;
using Serilog;

namespace Hil.Patches;

/// <summary>
/// A Debian root of the kernel's own release (trixie for 6.12) in which the driver is built
/// exactly as Debian built it: that release's cross compiler (gcc-14, which aligns every function
/// to 8 bytes — the host's gcc-12 leaves cold ones misaligned and the module crashes the kernel at
/// insmod), Debian's kbuild and the kernel's arm64 headers. Made once with debootstrap
/// (--variant=minbase) and kept under patches/buildroots/ keyed by its inputs; every build runs in
/// it through chroot with an argument vector.
/// </summary>
public sealed partial record BuildRoot
{
    public required string Directory { get; init; }
    /// <summary>The root file system (what chroot enters).</summary>
    public required string Root { get; init; }
    public required string Key { get; init; }
    public required string KernelRelease { get; init; }
    /// <summary>Inside the root: /usr/src/linux-headers-RELEASE (make -C).</summary>
    public required string HeadersInRoot { get; init; }
    /// <summary>aarch64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0 — as the kernel's .config names its compiler.</summary>
    public required string Compiler { get; init; }
    public bool Reused { get; init; }
    public TimeSpan? Created { get; init; }
    /// <summary>
    /// make variables for every build: none when Debian cross-built the kernel (6.12's .config
    /// names aarch64-linux-gnu-gcc-14, which the headers use as they are); for a kernel built
    /// natively on arm64 (6.1: "gcc-12") the same compiler version as the cross compiler.
    /// </summary>
    public IReadOnlyList<string> MakeVariables { get; init; } = [];
    /// <summary>
    /// The kernel patches every function entry with ftrace CALL_OPS and BUGs on a misaligned one
    /// (CONFIG_DYNAMIC_FTRACE_WITH_CALL_OPS=y: Debian 6.12). 6.1 has no such requirement: its
    /// modules have functions on 4-byte boundaries and load fine.
    /// </summary>
    public bool RequiresAlignedPatchSites { get; init; } = true;

    private const string InfoFile = "buildroot.json";
    private const string Keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    public const string RecipeVersion = "buildroot v1";  // unchanged: 6.12 roots made before the headers fix are identical

    /// <summary>Host paths a build root needs beyond the Debian packages tools/prereqs installs.</summary>
    public static readonly IReadOnlyList<string> HostTools = ["debootstrap", "chroot", "dpkg-deb"];

    public static async Task<BuildRoot> EnsureAsync(HilCache cache, BoardKernel kernel, string mirror, string securityMirror,
        ILogger log, CancellationToken ct)
    {
        var key = HilCache.KeyOf(new[] { kernel.ArchHeaders, kernel.CommonHeaders, kernel.Kbuild }
            .Select(p => $"{p.Name} {p.Version} {p.Architecture} {p.Sha256}")
            .Concat([kernel.Distribution, mirror, securityMirror, RecipeVersion]));
        var name = $"{kernel.Distribution}-{kernel.Release}-{key}";
        var headers = "/usr/src/linux-headers-" + kernel.Release;
        TimeSpan? created = null;
        var (dir, reused) = await PatchCache.For(cache).GetOrBuildAsync("buildroots", name, async target =>
        {
            var sw = Stopwatch.StartNew();
            var root = Path.Combine(target, "root");
            try
            {
                await CreateAsync(cache, kernel, root, headers, mirror, securityMirror, log, ct);
            }
            finally
            {
                // debootstrap mounts /proc and /sys in the target while it works; a failure can leave them.
                await UnmountBelowAsync(root, ct);
            }
            var compiler = await CompilerAsync(root, headers, ct);
            created = sw.Elapsed;
            await File.WriteAllTextAsync(Path.Combine(target, InfoFile), JsonSerializer.Serialize(new Info(kernel.Release, compiler, created.Value.TotalSeconds)), ct);
        });
        var info = JsonSerializer.Deserialize<Info>(await File.ReadAllTextAsync(Path.Combine(dir, InfoFile), ct))
            ?? throw new PatchEnvironmentException($"{dir}/{InfoFile} is empty");
        var result = new BuildRoot
        {
            Directory = dir, Root = Path.Combine(dir, "root"), Key = name, KernelRelease = info.KernelRelease,
            HeadersInRoot = headers, Compiler = info.Compiler, Reused = reused, Created = created,
            MakeVariables = await MakeVariablesAsync(Path.Combine(dir, "root"), headers, ct),
            RequiresAlignedPatchSites = (await File.ReadAllTextAsync(Path.Combine(dir, "root", headers.TrimStart('/'), ".config"), ct))
                .Contains("\nCONFIG_DYNAMIC_FTRACE_WITH_CALL_OPS=y\n", StringComparison.Ordinal),
        };
        if (!File.Exists(result.HostPath(headers + "/Makefile")))
            throw new PatchEnvironmentException($"{result.Root}: no {headers}/Makefile; delete {dir} to make the build root again");
        return result;
    }

    private sealed record Info(string KernelRelease, string Compiler, double CreatedSeconds);

    /// <summary>A path inside the root, seen from the host.</summary>
    public string HostPath(string pathInRoot) => Path.Combine(Root, pathInRoot.TrimStart('/'));

    private static async Task CreateAsync(HilCache cache, BoardKernel kernel, string root, string headers, string mirror,
        string securityMirror, ILogger log, CancellationToken ct)
    {
        if ((await ExternalTool.RunAsync("id", ["-u"], ct: ct)).Stdout.Trim() != "0")
            throw new PatchEnvironmentException("making the build root needs root (debootstrap and chroot); run as root");
        var dist = kernel.Distribution;
        log.Information("patch: making the {Dist} build root for {Kernel} (debootstrap --variant=minbase)", dist, kernel.Release);
        // The archive keyring checks the Release files; no stdin (ExternalTool closes it), so nothing can prompt.
        await Run("debootstrap", ["--variant=minbase", "--keyring=" + Keyring, dist, root, mirror], ct);

        // The kernel's packages come from the security suite: the root's apt must see it (and updates).
        await File.WriteAllTextAsync(Path.Combine(root, "etc/apt/sources.list.d/hil-kernel.list"),
            $"# Written by HilHarness: the suites Debian's {dist} kernels come from.\n" +
            $"deb {mirror} {dist}-updates main\ndeb {securityMirror} {dist}-security main\n", ct);

        // The exact packages of the board's module kit, from the verified pool (never the archive's newer ones).
        var pool = new DebPool(cache);
        foreach (var p in new[] { kernel.ArchHeaders, kernel.CommonHeaders, kernel.Kbuild })
        {
            if (!pool.Has(p)) throw new PatchEnvironmentException($"{pool.PathOf(p)} is missing from the package pool; run: tools/hil provision --board {kernel.Board}");
            var sha = HilCache.Sha256OfFile(pool.PathOf(p));
            if (sha != p.Sha256) throw new PatchEnvironmentException($"{pool.PathOf(p)}: sha256 {sha} does not match the board's manifest ({p.Sha256})");
        }
        // arm64 headers: unpacked, not installed (installing would pull the arm64 kbuild and arm64 libc).
        // Unpacked beside and only usr/src moved in: older packages (6.1) also ship lib/modules/…, and
        // unpacking that over the root would replace its merged-/usr 'lib' symlink with a folder (then
        // no program in the root finds its loader).
        var unpacked = Path.Combine(Path.GetDirectoryName(root)!, "arch-headers");
        await pool.ExtractAsync(kernel.ArchHeaders, unpacked, ct);
        var from = Path.Combine(unpacked, headers.TrimStart('/'));
        if (!System.IO.Directory.Exists(from)) throw new PatchEnvironmentException($"{kernel.ArchHeaders} has no {headers}");
        System.IO.Directory.Move(from, Path.Combine(root, headers.TrimStart('/')));
        System.IO.Directory.Delete(unpacked, recursive: true);
        var gcc = await CompilerPackageAsync(root, headers, ct);

        var debs = Path.Combine(root, "tmp/hil-debs");
        System.IO.Directory.CreateDirectory(debs);
        foreach (var p in new[] { kernel.CommonHeaders, kernel.Kbuild }) File.Copy(pool.PathOf(p), Path.Combine(debs, p.DebFileName));
        var env = new Dictionary<string, string> { ["DEBIAN_FRONTEND"] = "noninteractive" };
        await Run("chroot", [root, "apt-get", "-q", "update"], ct, env);
        await Run("chroot", [root, "apt-get", "-q", "-y", "--no-install-recommends", "install", "make", gcc, "binutils-aarch64-linux-gnu",
            .. new[] { kernel.CommonHeaders, kernel.Kbuild }.Select(p => "/tmp/hil-debs/" + p.DebFileName)], ct, env);
        await Run("chroot", [root, "apt-get", "clean"], ct, env);
        System.IO.Directory.Delete(debs, recursive: true);
    }

    /// <summary>
    /// gcc-N-aarch64-linux-gnu, N read from the kernel's own .config (CONFIG_GCC_VERSION=140200 → 14):
    /// the driver must be built by the compiler that built the kernel.
    /// </summary>
    private static async Task<string> CompilerPackageAsync(string root, string headers, CancellationToken ct)
    {
        var config = Path.Combine(root, headers.TrimStart('/'), ".config");
        if (!File.Exists(config)) throw new PatchEnvironmentException($"the kernel headers have no .config ({config})");
        var m = GccVersion().Match(await File.ReadAllTextAsync(config, ct));
        if (!m.Success) throw new PatchEnvironmentException($"{config}: no CONFIG_GCC_VERSION (was the kernel built with gcc?)");
        return $"gcc-{int.Parse(m.Groups[1].Value) / 10000}-aarch64-linux-gnu";
    }

    private static async Task<IReadOnlyList<string>> MakeVariablesAsync(string root, string headers, CancellationToken ct)
    {
        var config = await File.ReadAllTextAsync(Path.Combine(root, headers.TrimStart('/'), ".config"), ct);
        var text = CompilerText().Match(config);
        if (text.Success && text.Groups[1].Value.StartsWith("aarch64-linux-gnu-", StringComparison.Ordinal)) return [];
        var major = (await CompilerPackageAsync(root, headers, ct)).Split('-')[1];
        return ["ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-", $"CC=aarch64-linux-gnu-gcc-{major}"];
    }

    private static async Task<string> CompilerAsync(string root, string headers, CancellationToken ct)
    {
        var gcc = (await CompilerPackageAsync(root, headers, ct)).Replace("gcc-", "").Replace("-aarch64-linux-gnu", "");
        var r = await Run("chroot", [root, $"aarch64-linux-gnu-gcc-{gcc}", "--version"], ct);
        return r.Stdout.Split('\n')[0].Trim();
    }

    /// <summary>Unmounts whatever is mounted below <paramref name="root"/> (deepest first), so it can be deleted safely.</summary>
    internal static async Task UnmountBelowAsync(string root, CancellationToken ct)
    {
        if (!File.Exists("/proc/self/mountinfo")) return;
        var full = Path.GetFullPath(root).TrimEnd('/') + "/";
        var mounts = (await File.ReadAllLinesAsync("/proc/self/mountinfo", ct))
            .Select(l => l.Split(' ')).Where(f => f.Length > 4).Select(f => f[4].Replace("\\040", " "))
            .Where(m => (m + "/").StartsWith(full, StringComparison.Ordinal)).OrderByDescending(m => m.Length).ToList();
        foreach (var m in mounts) await ExternalTool.RunAsync("umount", ["--lazy", m], check: false, ct: CancellationToken.None);
    }

    private static async Task<ToolResult> Run(string tool, IReadOnlyList<string> args, CancellationToken ct, IReadOnlyDictionary<string, string>? env = null)
    {
        try { return await ExternalTool.RunAsync(tool, args, environment: env, ct: ct); }
        catch (ExternalToolException ex) { throw new PatchEnvironmentException($"making the build root failed: {ex.Message}", ex); }
    }

    [GeneratedRegex(@"^CONFIG_CC_VERSION_TEXT=""([^""]*)""$", RegexOptions.Multiline)]
    private static partial Regex CompilerText();

    [GeneratedRegex(@"^CONFIG_GCC_VERSION=(\d+)$", RegexOptions.Multiline)]
    private static partial Regex GccVersion();
}
