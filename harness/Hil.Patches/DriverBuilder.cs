using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Hil.Kernel;
using Hil.Qemu.Provisioning;
using Hil.Workloads.Kmod;
using Serilog;

namespace Hil.Patches;

/// <summary>One module of a driver build, checked and ready for a board.</summary>
public sealed record BuiltDriverModule(
    /// <summary>optee or tee (the module name, as /sys/module/NAME).</summary>
    string Name,
    string Path,
    /// <summary>The GNU build ID (hex): what /sys/module/NAME/notes/.note.gnu.build-id must show on the board.</summary>
    string BuildId,
    string VerMagic,
    long Size,
    /// <summary>ftrace patch sites (__patchable_function_entries entries).</summary>
    int PatchSites,
    /// <summary>Whether every site was checked 8-byte aligned (only kernels with ftrace CALL_OPS need it).</summary>
    bool AlignmentChecked = true);

/// <summary>A finished build of drivers/tee/ (patched, or the control with no patch).</summary>
public sealed record DriverBuild(
    string Directory,
    string Key,
    bool Control,
    bool Reused,
    IReadOnlyList<BuiltDriverModule> Modules,
    /// <summary>This run's time to copy and patch the tree, and to compile (zero when reused).</summary>
    TimeSpan Apply,
    TimeSpan Make,
    TimeSpan Total)
{
    public BuiltDriverModule Module(string name) => Modules.First(m => m.Name == name);
}

/// <summary>
/// Builds the OP-TEE driver out of tree in the build root: copy the board kernel's drivers/tee/,
/// apply the series (none for the control), run kbuild's own Makefiles under chroot (make -C the
/// headers M=drivers/tee/optee, or M=drivers/tee when the series changes tee.ko too), strip the
/// debug info, and refuse any module with a misaligned ftrace patch site before it can reach a
/// board. Builds are cached by a key of everything that goes in: the build root, the source and
/// the series' diffs.
/// </summary>
public sealed partial class DriverBuilder(HilCache cache, BuildRoot root, KernelSource source, ModuleKit kit, ILogger log,
    Hil.Workloads.BuildCache? builds = null)
{
    /// <summary>Where finished builds are kept (&lt;cache&gt;/patches/builds unless given).</summary>
    private readonly Hil.Workloads.BuildCache _builds = builds ?? PatchCache.For(cache);

    public const string RecipeVersion = "driver build v2";
    private const string InfoFile = "build.json";
    /// <summary>How many compiler errors a "does not build" refusal quotes.</summary>
    public const int ErrorsQuoted = 8;

    public Task<DriverBuild> BuildControlAsync(CancellationToken ct) => BuildAsync(null, ct);

    public async Task<DriverBuild> BuildAsync(PatchSeries? series, CancellationToken ct)
    {
        var wholeTree = series?.TouchesTeeCore ?? false;
        var key = HilCache.KeyOf([root.Key, source.Key, source.Sha256, series?.ContentKey ?? "control", wholeTree ? "tee+optee" : "optee", RecipeVersion]);
        var name = $"{root.KernelRelease}-{(series is null ? "control" : "patched")}-{key}";
        var total = Stopwatch.StartNew();
        TimeSpan apply = TimeSpan.Zero, make = TimeSpan.Zero;
        var (dir, reused) = await _builds.GetOrBuildAsync("builds", name, async target =>
        {
            // The tree lives inside the root so that the chroot'ed make sees it as /build/NAME. NAME is the
            // build's key, never a per-process folder: the path is compiled into the debug info that the
            // build ID hashes, so the same inputs give the same build ID. A lock file keeps two processes
            // building the same key from sharing the folder.
            var inRoot = $"/build/{name}";
            var work = root.HostPath(inRoot);
            Directory.CreateDirectory(Path.GetDirectoryName(work)!);
            using var held = await LockAsync(work + ".lock", ct);
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
            Directory.CreateDirectory(work);
            try
            {
                var sw = Stopwatch.StartNew();
                source.CopyTreeTo(work);
                if (series is not null) await SeriesApplier.ApplyAsync(series, work, source.Name, ct);
                apply = sw.Elapsed;

                sw.Restart();
                var module = wholeTree ? "drivers/tee" : "drivers/tee/optee";
                List<string> args = [root.Root, "make", "-C", root.HeadersInRoot, $"M={inRoot}/{module}", .. root.MakeVariables,
                    "-j" + Math.Max(1, Environment.ProcessorCount), "modules"];
                log.Information("patch: building {What} ({Command})", series is null ? "the control" : $"{series.Patches.Count} patch(es)", ExternalTool.Describe("chroot", args));
                var r = await ExternalTool.RunAsync("chroot", args, check: false, ct: ct);
                make = sw.Elapsed;
                await File.WriteAllTextAsync(Path.Combine(target, "make.log"), r.Stdout + r.Stderr, ct);
                if (r.ExitCode != 0)
                {
                    var errors = CompilerErrors(r.Stdout + "\n" + r.Stderr, inRoot + "/");
                    if (series is null)
                        throw new PatchEnvironmentException($"the unpatched {source.Name} drivers/tee does not build in {root.Root} (exit {r.ExitCode}): " +
                            string.Join(" | ", errors.DefaultIfEmpty(ExternalTool.Tail(r.Stderr, 3))));
                    throw new PatchRejectedException(PatchRejection.DoesNotBuild,
                        $"the patch does not build: {string.Join(" | ", errors.Take(3).DefaultIfEmpty(ExternalTool.Tail(r.Stderr + r.Stdout, 3).Replace('\n', ' ')))}",
                        errors.Count > 0 ? errors : [ExternalTool.Tail(r.Stderr + r.Stdout, 20)]);
                }
                var modules = new List<BuiltDriverModule>();
                foreach (var (mod, rel) in wholeTree ? new[] { ("tee", "drivers/tee/tee.ko"), ("optee", "drivers/tee/optee/optee.ko") } : [("optee", "drivers/tee/optee/optee.ko")])
                {
                    var ko = Path.Combine(work, rel);
                    if (!File.Exists(ko)) throw new PatchEnvironmentException($"make finished but produced no {rel}");
                    var final = Path.Combine(target, mod + ".ko");
                    File.Copy(ko, final);
                    // Debug info is 95% of the file and never used on the board; symbols and BTF stay.
                    await Tool("aarch64-linux-gnu-strip", ["--strip-debug", final], ct);
                    modules.Add(await InspectAsync(mod, final, series is null, ct));
                }
                await File.WriteAllTextAsync(Path.Combine(target, InfoFile), JsonSerializer.Serialize(new Info(modules,
                    series?.Patches.Select(p => $"{p.Name} sha256:{p.Sha256}").ToList() ?? [])), ct);
            }
            finally
            {
                if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
            }
        });
        var info = JsonSerializer.Deserialize<Info>(await File.ReadAllTextAsync(Path.Combine(dir, InfoFile), ct))
            ?? throw new PatchEnvironmentException($"{dir}/{InfoFile} is empty");
        var result = info.Modules.Select(m => m with { Path = Path.Combine(dir, m.Name + ".ko") }).ToList();
        // A cached module is checked again on every use: whoever put it there, it must not crash a board.
        if (reused) foreach (var m in result) await InspectAsync(m.Name, m.Path, series is null, ct);
        return new DriverBuild(dir, name, series is null, reused, result, apply, make, total.Elapsed);
    }

    private sealed record Info(IReadOnlyList<BuiltDriverModule> Modules, IReadOnlyList<string> Series);

    /// <summary>
    /// Checks a module before it may go to a board: Hil.Workloads' alignment guard (every code
    /// section and function 8-byte aligned), then every ftrace patch site itself (each entry of
    /// __patchable_function_entries, which Debian's 6.12 kernel BUGs on when misaligned), and reads
    /// its build ID and vermagic.
    /// </summary>
    private async Task<BuiltDriverModule> InspectAsync(string name, string ko, bool control, CancellationToken ct)
    {
        var readelf = KmodBuilder.ToolPrefix(kit) + "readelf";
        var sections = ReadElfOutput.Sections(await Tool(readelf, ["-SW", ko], ct));
        var sites = PatchSites.Read(await Tool(readelf, ["-rW", ko], ct), sections);
        if (!root.RequiresAlignedPatchSites)
            return await IdentifyAsync(name, ko, sites.Count, aligned: false, ct);
        try
        {
            await KmodBuilder.CheckAlignmentAsync(kit, ko, ct);
        }
        catch (ModuleAlignmentException ex)
        {
            if (control) throw new PatchEnvironmentException($"the control build is not deployable: {ex.Message}", ex);
            throw new PatchRejectedException(PatchRejection.NotDeployable, ex.Message, ex.Problems);
        }
        var problems = PatchSites.Problems(sites, sections);
        if (sites.Count == 0) problems = [.. problems, "no __patchable_function_entries: not built for this kernel's ftrace"];
        if (problems.Count > 0)
        {
            var message = $"{Path.GetFileName(ko)} is not deployable: {string.Join("; ", problems.Take(5))} (Debian's kernel BUGs at insmod on a misaligned ftrace patch site)";
            if (control) throw new PatchEnvironmentException("the control build: " + message);
            throw new PatchRejectedException(PatchRejection.NotDeployable, message, problems);
        }
        return await IdentifyAsync(name, ko, sites.Count, aligned: true, ct);
    }

    /// <summary>The module's GNU build ID and vermagic (which must name the board's kernel).</summary>
    private async Task<BuiltDriverModule> IdentifyAsync(string name, string ko, int sites, bool aligned, CancellationToken ct)
    {
        var notes = await Tool(KmodBuilder.ToolPrefix(kit) + "readelf", ["-n", ko], ct);
        var id = BuildIdLine().Match(notes);
        if (!id.Success) throw new PatchEnvironmentException($"{ko} has no GNU build ID note");
        var vermagic = KernelModuleInfo.Read(ko)["vermagic"] ?? throw new PatchEnvironmentException($"{ko} has no vermagic");
        if (vermagic.Split(' ')[0] != root.KernelRelease)
            throw new PatchEnvironmentException($"{ko}: vermagic '{vermagic}' does not name kernel {root.KernelRelease}");
        return new BuiltDriverModule(name, ko, id.Groups[1].Value, vermagic, new FileInfo(ko).Length, sites, aligned);
    }

    /// <summary>An exclusive lock on a file (flock: released by the kernel if the holder dies); waits for another holder.</summary>
    private static async Task<FileStream> LockAsync(string path, CancellationToken ct)
    {
        while (true)
        {
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) { await Task.Delay(250, ct); }
        }
    }

    /// <summary>The compiler's error lines, with the build folder cut off their paths (drivers/tee/optee/call.c:170:9: error: …).</summary>
    internal static IReadOnlyList<string> CompilerErrors(string output, string buildPrefix) =>
        output.Replace("\r", "").Split('\n')
            .Where(l => ErrorLine().IsMatch(l))
            .Select(l => l.Replace(buildPrefix, "").Trim())
            .Distinct().Take(ErrorsQuoted).ToList();

    private static async Task<string> Tool(string tool, IReadOnlyList<string> args, CancellationToken ct)
    {
        try { return (await ExternalTool.RunAsync(tool, args, ct: ct)).Stdout; }
        catch (ExternalToolException ex) { throw new PatchEnvironmentException(ex.Message, ex); }
    }

    // gcc: "/build/x/drivers/tee/optee/call.c:170:9: error: 'foo' undeclared"; also "fatal error:" and ld's "undefined reference".
    [GeneratedRegex(@"(:\d+(:\d+)?: (fatal )?error: )|(: undefined reference to )|(ERROR: modpost: )")]
    private static partial Regex ErrorLine();

    [GeneratedRegex(@"Build ID: ([0-9a-fA-F]+)")]
    private static partial Regex BuildIdLine();
}

/// <summary>One ftrace patch site: an entry of __patchable_function_entries, as a section and an offset in it.</summary>
public sealed record PatchSite(string Section, ulong Offset);

/// <summary>
/// Reads the ftrace patch sites of a module from `readelf -rW` (the relocations of
/// __patchable_function_entries: each entry is the address of a function's patchable NOPs) and
/// checks each one: 8-byte aligned within a section that is itself aligned to at least 8.
/// </summary>
public static partial class PatchSites
{
    public const int Required = 8;

    public static IReadOnlyList<PatchSite> Read(string readelfRelocations, IReadOnlyList<ElfSection> sections)
    {
        var sites = new List<PatchSite>();
        var inside = false;
        foreach (var raw in readelfRelocations.Replace("\r", "").Split('\n'))
        {
            if (raw.StartsWith("Relocation section", StringComparison.Ordinal))
            {
                inside = raw.Contains("'.rela__patchable_function_entries'", StringComparison.Ordinal);
                continue;
            }
            if (!inside) continue;
            var m = RelocationLine().Match(raw);
            if (!m.Success) continue;
            var symValue = ulong.Parse(m.Groups["value"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            var addend = m.Groups["addend"].Success ? ulong.Parse(m.Groups["addend"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture) : 0;
            var sign = m.Groups["sign"].Value == "-" ? -1 : 1;
            var symbol = m.Groups["symbol"].Value;
            // Relocations name a section symbol (".text + 60") or, rarely, a function symbol whose value is its
            // offset in a section readelf -r does not name: then only the offset is checked here (the
            // alignment guard has checked every code section's own alignment already).
            var section = symbol;
            var offset = sign > 0 ? symValue + addend : symValue - addend;
            sites.Add(new PatchSite(section, offset));
        }
        return sites;
    }

    public static IReadOnlyList<string> Problems(IReadOnlyList<PatchSite> sites, IReadOnlyList<ElfSection> sections)
    {
        var problems = new List<string>();
        foreach (var s in sites)
        {
            var section = sections.FirstOrDefault(x => x.Name == s.Section);
            if (section is not null && section.Alignment < Required)
                problems.Add($"patch site {s.Section}+0x{s.Offset:x} lies in a section aligned to {section.Alignment}");
            else if (s.Offset % Required != 0)
                problems.Add($"patch site {s.Section}+0x{s.Offset:x} is not {Required}-byte aligned");
        }
        return problems.Distinct().ToList();
    }

    // "0000000000000008  0000001c00000101 R_AARCH64_ABS64        0000000000000000 .text + 60"
    [GeneratedRegex(@"^\s*[0-9a-fA-F]+\s+[0-9a-fA-F]+\s+R_\S+\s+(?<value>[0-9a-fA-F]+)\s+(?<symbol>\S+)(\s*(?<sign>[+-])\s*(?<addend>[0-9a-fA-F]+))?\s*$")]
    private static partial Regex RelocationLine();
}
