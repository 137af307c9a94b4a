using System.Text;
using System.Text.Json;
using Hil.Kernel;
using Serilog;

namespace Hil.Workloads.Kmod;

/// <summary>A hil_cq.ko built for one kernel, checked for alignment, ready to deploy.</summary>
public sealed record BuiltModule(
    string Path,
    string KernelRelease,
    /// <summary>The module's vermagic (first word is the kernel release it loads into).</summary>
    string VerMagic,
    /// <summary>Whether the kernel's headers declare tee_client_system_session() (Linux 6.8+), as compiled in.</summary>
    bool SystemSessionsCompiled,
    string Key,
    bool Reused);

/// <summary>
/// Builds tools/kmod (hil_cq) out of tree for a board kernel with that kernel's module kit (the
/// headers, kbuild and make variables provisioning prepared), strips its debug info, and refuses
/// it unless every code section and function is 8-byte aligned (see <see cref="ModuleAlignment"/>).
/// Builds are cached by kernel release and source content.
/// </summary>
public sealed class KmodBuilder(BuildCache cache, ILogger log)
{
    public const string ModuleName = "hil_cq";
    public const string SourceDirectory = "tools/kmod";
    public static readonly IReadOnlyList<string> SourceFiles = ["hil_cq.c", "Kbuild", "Makefile"];
    private const string KoFile = ModuleName + ".ko";
    private const string BuildInfoFile = "build.json";

    /// <summary>make's argument vector: the kit's own (make -C headers M=dir VARS modules).</summary>
    public static IReadOnlyList<string> MakeArguments(ModuleKit kit, string moduleDirectory) => kit.MakeArguments(moduleDirectory);

    /// <summary>The binutils prefix of the kit (aarch64-linux-gnu-), for strip and readelf.</summary>
    public static string ToolPrefix(ModuleKit kit) =>
        kit.MakeVariables.TryGetValue("CROSS_COMPILE", out var p) && p.Length > 0 ? p : "aarch64-linux-gnu-";

    public async Task<BuiltModule> BuildAsync(ModuleKit kit, SourceSet? source = null, CancellationToken ct = default)
    {
        source ??= SourceSet.Find(SourceDirectory, SourceFiles);
        var key = source.ContentKey([$"kernel {kit.KernelRelease}", $"headers {kit.HeadersDirectory}",
            .. kit.MakeVariables.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}"), "build v1"]);
        var (dir, reused) = await cache.GetOrBuildAsync("kmod", $"{kit.KernelRelease}-{key}", async target =>
        {
            var src = System.IO.Path.Combine(target, "src");
            source.CopyTo(src);
            var args = MakeArguments(kit, src);
            log.Information("kmod: building {Module} for {Kernel}: {Command}", ModuleName, kit.KernelRelease, ExternalTool.Describe("make", args));
            await RunToolAsync("make", args, $"building {ModuleName} for {kit.KernelRelease}", ct).ConfigureAwait(false);
            var ko = System.IO.Path.Combine(src, KoFile);
            if (!File.Exists(ko)) throw new WorkloadBuildException($"make finished but produced no {KoFile} in {src}");
            // Debug info is 90% of the file and never used on the board; BTF and symbols stay.
            await RunToolAsync(ToolPrefix(kit) + "strip", ["--strip-debug", ko], "stripping " + KoFile, ct).ConfigureAwait(false);
            // A misaligned build never even reaches the cache.
            await CheckAlignmentAsync(kit, ko, ct).ConfigureAwait(false);
            File.Move(ko, System.IO.Path.Combine(target, KoFile));
            var info = ModInfo.Read(System.IO.Path.Combine(target, KoFile));
            await File.WriteAllTextAsync(System.IO.Path.Combine(target, BuildInfoFile), JsonSerializer.Serialize(info), ct).ConfigureAwait(false);
        }).ConfigureAwait(false);

        var path = System.IO.Path.Combine(dir, KoFile);
        // Checked again on every use: a cached file is deployed just the same, whoever put it there.
        if (reused) await CheckAlignmentAsync(kit, path, ct).ConfigureAwait(false);
        var modinfo = JsonSerializer.Deserialize<ModInfo>(await File.ReadAllTextAsync(System.IO.Path.Combine(dir, BuildInfoFile), ct).ConfigureAwait(false))
            ?? throw new WorkloadBuildException($"{dir}/{BuildInfoFile} is empty");
        if (modinfo.VerMagic.Split(' ')[0] != kit.KernelRelease)
            throw new WorkloadBuildException($"{path}: vermagic '{modinfo.VerMagic}' does not name kernel {kit.KernelRelease}");
        log.Information("kmod: {Module} for {Kernel} {How} ({Path}, system sessions {Sys})", ModuleName, kit.KernelRelease,
            reused ? "reused from the cache" : "built", path, modinfo.SystemSessions);
        return new BuiltModule(path, kit.KernelRelease, modinfo.VerMagic, modinfo.SystemSessions == "supported", key, reused);
    }

    /// <summary>Refuses a module whose code is not 8-byte aligned (it would crash a 6.12 kernel at insmod).</summary>
    public static async Task CheckAlignmentAsync(ModuleKit kit, string koPath, CancellationToken ct)
    {
        var readelf = ToolPrefix(kit) + "readelf";
        var sections = await RunToolAsync(readelf, ["-SW", koPath], "reading the sections of " + koPath, ct).ConfigureAwait(false);
        var symbols = await RunToolAsync(readelf, ["-sW", koPath], "reading the symbols of " + koPath, ct).ConfigureAwait(false);
        var problems = ModuleAlignment.Problems(ReadElfOutput.Sections(sections), ReadElfOutput.Functions(symbols));
        if (problems.Count > 0)
            throw new ModuleAlignmentException($"{System.IO.Path.GetFileName(koPath)} for {kit.KernelRelease}", koPath, problems);
    }

    private static async Task<string> RunToolAsync(string tool, IReadOnlyList<string> args, string what, CancellationToken ct)
    {
        try
        {
            return (await ExternalTool.RunAsync(tool, args, ct: ct).ConfigureAwait(false)).Stdout;
        }
        catch (ExternalToolException ex)
        {
            throw new WorkloadBuildException($"{what} failed: {ex.Message}", ex);
        }
    }

    /// <summary>The strings of a module's .modinfo that matter here.</summary>
    internal sealed record ModInfo(string VerMagic, string SystemSessions)
    {
        public static ModInfo Read(string koPath)
        {
            var text = Encoding.Latin1.GetString(File.ReadAllBytes(koPath));
            string Value(string key)
            {
                var i = text.IndexOf("\0" + key + "=", StringComparison.Ordinal);
                if (i < 0) throw new WorkloadBuildException($"{koPath} has no {key}= in its .modinfo");
                var start = i + key.Length + 2;
                return text[start..text.IndexOf('\0', start)];
            }
            return new ModInfo(Value("vermagic"), Value("hil_system_session"));
        }
    }
}

/// <summary>The built module would crash the kernel at insmod (misaligned ftrace patch sites): never deployed.</summary>
public sealed class ModuleAlignmentException(string module, string koPath, IReadOnlyList<string> problems)
    : Hil.Boards.Failures.TestErrorException($"{module} is not deployable: {string.Join("; ", problems)} " +
        "(Debian 6.12 patches every function entry for ftrace CALL_OPS and BUGs on a misaligned one; mark every function __aligned(8))")
{
    public string Path { get; } = koPath;
    public IReadOnlyList<string> Problems { get; } = problems;
}
