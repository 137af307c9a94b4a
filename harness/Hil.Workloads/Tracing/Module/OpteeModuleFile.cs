using System.IO.Compression;
using System.Text;
using Hil.Boards.Ssh;
using Hil.Kernel;
using Hil.Workloads.Tracing.Planning;

namespace Hil.Workloads.Tracing.Module;

/// <summary>
/// The optee.ko whose code the probes are planned from, on the host: where it came from and its
/// build ID (checked against the module the board has loaded before any probe is planned).
/// </summary>
public sealed record OpteeModuleFile(string Path, string Origin, string? BuildId)
{
    public const string ObjdumpTool = "aarch64-linux-gnu-objdump";

    /// <summary>Disassembles the module with relocations (its calls into the kernel name their callee only there).</summary>
    public async Task<ObjdumpListing> DisassembleAsync(CancellationToken ct = default)
    {
        var r = await ExternalTool.RunAsync(ObjdumpTool, ["-dr", Path], ct: ct).ConfigureAwait(false);
        return ObjdumpListing.Parse(r.Stdout, $"{ObjdumpTool} -dr {Origin}");
    }

    /// <summary>Any .ko on the host (a real board's board file may name one: facts.optee_module).</summary>
    public static OpteeModuleFile FromHostFile(string path) =>
        File.Exists(path) ? new OpteeModuleFile(path, path, ElfBuildId.OfFile(path))
            : throw new FileNotFoundException($"optee module {path} not found", path);

    /// <summary>
    /// The module an initramfs (newc cpio) carries uncompressed under usr/lib/modules/RELEASE/, copied
    /// out once to <paramref name="destination"/> (QEMU images: OpteeModuleFile.FromQemuImage, in Hil.Suites.Common).
    /// </summary>
    public static OpteeModuleFile FromInitramfs(string initrd, string kernelRelease, string destination, string origin)
    {
        if (!File.Exists(destination))
        {
            var data = NewcArchive.Find(initrd, name =>
                name.Contains($"/modules/{kernelRelease}/", StringComparison.Ordinal) && name.EndsWith("/optee.ko", StringComparison.Ordinal))
                ?? throw new DisassemblyException($"{initrd}: no optee.ko for kernel {kernelRelease} in the initramfs");
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(destination))!);
            File.WriteAllBytes(destination + ".part", data);
            File.Move(destination + ".part", destination, overwrite: true);
        }
        return new OpteeModuleFile(destination, origin, ElfBuildId.OfFile(destination));
    }

    /// <summary>
    /// The hook for real boards with no host copy: finds the loaded module's file on the board
    /// (modinfo, else a search of /lib/modules for this kernel) and downloads it over SFTP.
    /// </summary>
    public static async Task<OpteeModuleFile> FromBoardAsync(SshLink ssh, string workDirectory, CancellationToken ct = default)
    {
        var find = await ssh.RunCheckedAsync(
            "p=$(modinfo -n optee 2>/dev/null); [ -n \"$p\" ] && [ -f \"$p\" ] || " +
            "p=$(find /lib/modules/$(uname -r) /usr/lib/modules/$(uname -r) -name 'optee.ko*' 2>/dev/null | head -n 1); echo \"$p\"",
            TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
        var remote = find.Stdout.Trim();
        if (remote.Length == 0) throw new DisassemblyException($"{ssh.Address}: no optee.ko file found on the board (modinfo -n optee, /lib/modules)");
        Directory.CreateDirectory(workDirectory);
        var local = System.IO.Path.Combine(workDirectory, System.IO.Path.GetFileName(remote));
        await ssh.DownloadAsync(remote, local, ct).ConfigureAwait(false);
        var ko = local;
        if (local.EndsWith(".xz", StringComparison.Ordinal) || local.EndsWith(".zst", StringComparison.Ordinal))
        {
            ko = local[..local.LastIndexOf('.')];
            await using var o = File.Create(ko);
            await ExternalTool.RunAsync(local.EndsWith(".xz", StringComparison.Ordinal) ? "xz" : "zstd", ["-dc", local], ct: ct, stdoutSink: o).ConfigureAwait(false);
        }
        return new OpteeModuleFile(ko, $"{ssh.Address}:{remote}", ElfBuildId.OfFile(ko));
    }

    /// <summary>Refuses a module that is not the one loaded on the board (when both build IDs are known).</summary>
    public void CheckMatches(KernelFacts facts)
    {
        if (facts.OpteeBuildId is { } loaded && BuildId is { } ours && loaded != ours)
            throw new DisassemblyException($"{Origin}: build ID {ours} is not the loaded optee module's ({loaded}); probe offsets from it would be wrong");
    }
}

/// <summary>Reads one file out of a gzip'd newc cpio archive (an initramfs), streaming.</summary>
internal static class NewcArchive
{
    public static byte[]? Find(string path, Func<string, bool> match)
    {
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var s = new BufferedStream(gz, 1 << 16);
        var header = new byte[110];
        while (true)
        {
            if (!ReadExactly(s, header)) return null;
            var magic = Encoding.ASCII.GetString(header, 0, 6);
            if (magic is not ("070701" or "070702")) throw new InvalidDataException($"{path}: not a newc cpio archive (magic {magic})");
            var size = Field(header, 6);
            var nameSize = Field(header, 11);
            var nameBytes = new byte[nameSize];
            if (!ReadExactly(s, nameBytes)) return null;
            Skip(s, Pad(110 + nameSize));
            var name = Encoding.UTF8.GetString(nameBytes, 0, Math.Max(0, nameSize - 1));
            if (name == "TRAILER!!!") return null;
            if (match(name))
            {
                var data = new byte[size];
                if (!ReadExactly(s, data)) return null;
                return data;
            }
            Skip(s, size + Pad(size));
        }
    }

    private static int Field(byte[] h, int index) => Convert.ToInt32(Encoding.ASCII.GetString(h, 6 + index * 8, 8), 16);

    private static int Pad(int n) => (4 - n % 4) % 4;

    private static bool ReadExactly(Stream s, byte[] buf)
    {
        var got = 0;
        while (got < buf.Length)
        {
            var n = s.Read(buf, got, buf.Length - got);
            if (n == 0) return false;
            got += n;
        }
        return true;
    }

    private static void Skip(Stream s, int n)
    {
        var buf = new byte[Math.Min(n, 1 << 16)];
        while (n > 0)
        {
            var r = s.Read(buf, 0, Math.Min(n, buf.Length));
            if (r == 0) return;
            n -= r;
        }
    }
}
