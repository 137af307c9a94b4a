using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Hil.Kernel;

namespace Hil.Qemu.Provisioning;

/// <summary>
/// Makes a <see cref="ModuleKit"/> from the Debian headers and kbuild packages of a QEMU image's
/// kernel: unpacked from the pool, patched as the facts file describes, kit.json written.
/// </summary>
internal static class ModuleKitBuilder
{
    internal static async Task<ModuleKit> BuildAsync(string target, string finalDirectory, string kernelRelease, DebPool pool,
        IReadOnlyList<ResolvedPackage> headerPackages, ResolvedPackage kbuild, ResolvedPackage? newerGlibcReplacement,
        KitWorkarounds workarounds, CancellationToken ct)
    {
        var root = Path.Combine(target, "root");
        foreach (var p in headerPackages.Append(kbuild)) await pool.ExtractAsync(p, root, ct);
        var headersRel = Path.Combine("usr/src", "linux-headers-" + kernelRelease);
        var headers = Path.Combine(root, headersRel);
        if (!Directory.Exists(headers)) throw new ProvisioningException($"headers package did not provide {headersRel}");
        var notes = new List<string>();

        // The arch headers' Makefile includes the -common one by absolute /usr/src path; point it at our copy.
        var finalRoot = Path.Combine(finalDirectory, "root");
        var makefile = Path.Combine(headers, "Makefile");
        var text = await File.ReadAllTextAsync(makefile, ct);
        var patched = Regex.Replace(text, @"^include /usr/src/", $"include {finalRoot}/usr/src/", RegexOptions.Multiline);
        if (patched != text)
        {
            await File.WriteAllTextAsync(makefile, patched, ct);
            notes.Add("headers Makefile: absolute 'include /usr/src/…' redirected into this kit");
        }

        if (newerGlibcReplacement is not null)
        {
            var replaced = await ReplaceTooNewBinariesAsync(root, kbuild, newerGlibcReplacement, pool, target, ct);
            notes.Add($"kbuild binaries needing a newer glibc than the host's taken from {newerGlibcReplacement}: {string.Join(", ", replaced)}");
        }

        var vars = new Dictionary<string, string>
        {
            ["ARCH"] = "arm64",
            ["CROSS_COMPILE"] = "aarch64-linux-gnu-",
            // The headers name the compiler Debian used (gcc-14 for 6.12); the host's cross gcc stands in.
            ["CC"] = "aarch64-linux-gnu-gcc",
        };
        foreach (var (k, v) in workarounds.MakeVariables) { vars[k] = v; notes.Add($"make {k}={v}"); }
        var kit = new ModuleKit
        {
            KernelRelease = kernelRelease,
            HeadersDirectory = Path.Combine(finalDirectory, "root", headersRel),
            MakeVariables = vars,
            Notes = notes,
        };
        await File.WriteAllTextAsync(Path.Combine(target, "kit.json"), JsonSerializer.Serialize(kit, Json.Options), ct);
        return kit;
    }

    /// <summary>
    /// Trixie's amd64 kbuild helpers (modpost, objtool, resolve_btfids) are linked against glibc 2.38+,
    /// newer than bookworm's. Each one that needs more than the host has is replaced by its
    /// counterpart from a kbuild of the same kernel line built for bookworm.
    /// </summary>
    private static async Task<List<string>> ReplaceTooNewBinariesAsync(string root, ResolvedPackage kbuild,
        ResolvedPackage replacement, DebPool pool, string target, CancellationToken ct)
    {
        var hostMinor = await HostGlibcMinorAsync(ct);
        var kbuildDir = Path.Combine(root, "usr/lib", kbuild.Name);
        if (!Directory.Exists(kbuildDir)) throw new ProvisioningException($"{kbuild} did not provide usr/lib/{kbuild.Name}");
        var other = Path.Combine(target, "replacement");
        await pool.ExtractAsync(replacement, other, ct);
        var otherDir = Path.Combine(other, "usr/lib", replacement.Name);
        var replaced = new List<string>();
        foreach (var f in Directory.EnumerateFiles(kbuildDir, "*", SearchOption.AllDirectories))
        {
            if (new FileInfo(f).LinkTarget is not null || !IsElf(f)) continue;
            if (MaxGlibcMinor(f) <= hostMinor) continue;
            var rel = Path.GetRelativePath(kbuildDir, f);
            var counterpart = Path.Combine(otherDir, rel);
            if (!File.Exists(counterpart))
                throw new ProvisioningException($"{rel} of {kbuild} needs a newer glibc than the host's and {replacement} has no counterpart");
            File.Copy(counterpart, f, overwrite: true);
            replaced.Add(rel);
        }
        Directory.Delete(other, true);
        return replaced;
    }

    private static async Task<int> HostGlibcMinorAsync(CancellationToken ct)
    {
        var r = await ExternalTool.RunAsync("getconf", ["GNU_LIBC_VERSION"], ct: ct);
        var m = Regex.Match(r.Stdout, @"glibc 2\.(\d+)");
        return m.Success ? int.Parse(m.Groups[1].Value) : throw new ProvisioningException($"cannot read the host's glibc version from '{r.Stdout.Trim()}'");
    }

    private static bool IsElf(string path)
    {
        using var s = File.OpenRead(path);
        Span<byte> b = stackalloc byte[4];
        return s.Read(b) == 4 && b[0] == 0x7F && b[1] == (byte)'E' && b[2] == (byte)'L' && b[3] == (byte)'F';
    }

    /// <summary>Highest GLIBC_2.N symbol version named in the file (a cheap stand-in for reading .gnu.version_r).</summary>
    private static int MaxGlibcMinor(string path)
    {
        var text = Encoding.Latin1.GetString(File.ReadAllBytes(path));
        return Regex.Matches(text, @"GLIBC_2\.(\d+)").Select(m => int.Parse(m.Groups[1].Value)).DefaultIfEmpty(0).Max();
    }
}

internal static class Json
{
    public static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };
}
