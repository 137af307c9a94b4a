using System.Diagnostics;
using System.Globalization;
using System.Text;
using Hil.Boards.Failures;
using Hil.Boards.Shell;
using Hil.Boards.Ssh;
using Hil.Workloads;
using Serilog;

namespace Hil.Patches;

/// <summary>What one swap did on the board.</summary>
public sealed record SwapResult(
    /// <summary>Build ID of each module as the running kernel reports it (/sys/module/NAME/notes/.note.gnu.build-id).</summary>
    IReadOnlyDictionary<string, string> LoadedBuildIds,
    /// <summary>The swap itself, measured in the guest (kill supplicant … supplicant up).</summary>
    TimeSpan GuestSwap,
    /// <summary>Upload, swap and check, from the host.</summary>
    TimeSpan Total);

/// <summary>
/// Replaces the running OP-TEE driver with a built one without a reboot, as measured on the
/// QEMU board (research: optee-module-build.md): kill tee-supplicant (it holds /dev/teepriv0,
/// the only user of optee.ko), retry rmmod until the module is free (the killed supplicant stays
/// a zombie under the board's PID 1 shell, so waiting on pidof would never end), insmod the new
/// module (tee.ko first when the series rebuilt it), start tee-supplicant again, and read the
/// loaded module's build ID back from the kernel: a swap is only believed when it matches.
/// </summary>
public static class ModuleSwap
{
    public const string RemoteFolder = "/tmp/hil-patch";

    public static async Task<SwapResult> SwapAsync(SshLink ssh, IReadOnlyList<BuiltDriverModule> modules, ILogger log, CancellationToken ct)
    {
        var total = Stopwatch.StartNew();
        // Load order: tee before optee; unload order: the reverse.
        var ordered = modules.OrderBy(m => m.Name == "tee" ? 0 : 1).ToList();
        var remote = new List<string>();
        foreach (var m in ordered)
        {
            var path = $"{RemoteFolder}/{m.Name}-{m.BuildId}.ko";
            await BoardUpload.UploadAsync(ssh, m.Path, path, "0644", log, ct);
            remote.Add(path);
        }
        var script = new StringBuilder("t0=$(cut -d' ' -f1 /proc/uptime); ");
        script.Append("for p in $(pidof tee-supplicant); do kill $p; done; ");
        foreach (var m in Enumerable.Reverse(ordered))
            script.Append($"i=0; while grep -q '^{m.Name} ' /proc/modules; do rmmod {m.Name} 2>/dev/null && break; i=$((i+1)); " +
                          $"if [ $i -ge 100 ]; then echo 'rmmod {m.Name}: still in use after 100 tries' >&2; exit 1; fi; sleep 0.05; done; ");
        foreach (var path in remote) script.Append(ShellQuote.Join("insmod", path)).Append(" || exit 1; ");
        script.Append("tee-supplicant -d || exit 1; t1=$(cut -d' ' -f1 /proc/uptime); echo \"swap $t0 $t1\"; ");
        foreach (var m in ordered)
            script.Append($"echo \"note {m.Name} $(od -An -tx1 -v /sys/module/{m.Name}/notes/.note.gnu.build-id | tr -d ' \\n')\"; ");
        var r = await ssh.RunAsync(script.ToString(), TimeSpan.FromSeconds(60), ct);
        if (r.ExitStatus != 0)
            throw new ProductFailureException($"swapping in the built driver failed (exit {r.ExitStatus}): {r.Stderr.Trim()}", [r.Stdout, r.Stderr]);

        var ids = new Dictionary<string, string>();
        var guest = TimeSpan.Zero;
        foreach (var line in r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var f = line.Split(' ');
            if (f[0] == "swap" && f.Length == 3)
                guest = TimeSpan.FromSeconds(double.Parse(f[2], CultureInfo.InvariantCulture) - double.Parse(f[1], CultureInfo.InvariantCulture));
            else if (f[0] == "note" && f.Length == 3)
                ids[f[1]] = BuildIdOfNote(f[2]);
        }
        foreach (var m in ordered)
        {
            if (!ids.TryGetValue(m.Name, out var loaded) || loaded != m.BuildId)
                throw new InfrastructureException($"after the swap the board runs {m.Name} with build ID {loaded ?? "(none)"}, not the built {m.BuildId}");
        }
        return new SwapResult(ids, guest, total.Elapsed);
    }

    /// <summary>
    /// The build ID inside a raw ELF note as hex: namesz, descsz, type (4 bytes each, little
    /// endian on arm64), the name "GNU\0" padded to 4, then descsz bytes of ID.
    /// </summary>
    public static string BuildIdOfNote(string hex)
    {
        if (hex.Length < 32 || hex.Length % 2 != 0) return "";
        var bytes = Convert.FromHexString(hex);
        var namesz = BitConverter.ToInt32(bytes, 0);
        var descsz = BitConverter.ToInt32(bytes, 4);
        var start = 12 + ((namesz + 3) & ~3);
        return start + descsz <= bytes.Length ? Convert.ToHexStringLower(bytes, start, descsz) : "";
    }
}
