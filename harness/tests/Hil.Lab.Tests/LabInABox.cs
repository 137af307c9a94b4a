using System.Diagnostics;
using Hil.Kernel;
using Hil.Peers;
using Hil.Qemu.Launch;
using Hil.Qemu.Provisioning;
using Hil.Workloads.Tracing.Module;

namespace Hil.Lab.Tests;

/// <summary>
/// The loopback lab that boards/lab-qemu-optee*.yaml describe: ser2net in front of the QEMU board's
/// two UARTs (console raw on 27301 and telnet/RFC 2217 on 27302, secure UART raw on 27303) and
/// PDUDaemon on 27321 whose PDU lab-pdu1 outlet 1 runs `hil qemu start|stop`. The ports are fixed,
/// as a lab's are; a taken one fails the start in one line.
/// </summary>
public sealed class LabInABox : IDisposable
{
    public const int RawConsolePort = 27301, TelnetConsolePort = 27302, SecurePort = 27303;
    /// <summary>QEMU's UARTs: the lab's "serial devices", which only ser2net talks to.</summary>
    public const int QemuConsolePort = 27311, QemuSecurePort = 27312;
    public const int PduDaemonPort = 27321, SshPort = 27322;
    public const string PduHostname = "lab-pdu1", Outlet = "1";
    public const string Image = "qemu-optee";

    private LabInABox(string dir, Ser2netPeer ser2net, PduDaemonPeer pdu)
    {
        Directory = dir;
        Ser2net = ser2net;
        PduDaemon = pdu;
    }

    public string Directory { get; }
    public Ser2netPeer Ser2net { get; }
    public PduDaemonPeer PduDaemon { get; }
    public string PidFile => OutletPidFile(Directory);

    private static string OutletPidFile(string dir) => Path.Combine(dir, $"outlet-{Outlet}.pid");

    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "HilHarness.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    public static string BoardFile(string name) => Path.Combine(RepoRoot(), "boards", name);

    /// <summary>
    /// Builds the CLI (the outlet's command), publishes the cache links the board file names, and
    /// starts ser2net and PDUDaemon. The board stays off until someone asks PDUDaemon.
    /// </summary>
    public static async Task<LabInABox> StartAsync(string dir)
    {
        System.IO.Directory.CreateDirectory(dir);
        var root = RepoRoot();
        var cli = Path.Combine(root, "artifacts", "cli", "hil.dll");
        // tools/hil builds the CLI into artifacts/cli; `board check` proves both lab files load.
        Run(Path.Combine(root, "tools", "hil"), "board", "check", BoardFile("lab-qemu-optee.yaml"), BoardFile("lab-qemu-optee-raw.yaml"));
        PublishCacheLinks();
        var ser2net = await Ser2netPeer.StartAsync(Path.Combine(dir, "ser2net"),
        [
            new Ser2netPort(RawConsolePort, $"tcp,127.0.0.1,{QemuConsolePort}", Telnet: false),
            new Ser2netPort(TelnetConsolePort, $"tcp,127.0.0.1,{QemuConsolePort}", Telnet: true),
            new Ser2netPort(SecurePort, $"tcp,127.0.0.1,{QemuSecurePort}", Telnet: false),
        ]).ConfigureAwait(false);
        try
        {
            var q = PduDaemonPeer.Quote;
            var pid = q(Path.Combine(dir, "outlet-%s.pid"));
            var on = $"dotnet {q(cli)} qemu start --board {Image} --console-port {QemuConsolePort} --secure-port {QemuSecurePort} --ssh-port {SshPort} --pidfile {pid}";
            var off = $"dotnet {q(cli)} qemu stop --pidfile {pid}";
            var pdu = await PduDaemonPeer.StartAsync(Path.Combine(dir, "pdudaemon"), PduDaemonPort, PduHostname, on, off).ConfigureAwait(false);
            return new LabInABox(dir, ser2net, pdu);
        }
        catch
        {
            ser2net.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The lab board files name the image's module kit, libteec sysroot (links made by provisioning)
    /// and optee.ko: the image's dropbear has no SFTP download, so the module is published on the host
    /// as a real lab publishes its kernel build's modules.
    /// </summary>
    private static void PublishCacheLinks()
    {
        var cache = HilCache.Default();
        var recipe = BoardRecipe.All.First(r => r.Board == Image);
        var image = QemuProvisioner.Current(cache, recipe)
            ?? throw new InvalidOperationException($"{Image} is not provisioned; run: tools/hil provision --board {Image}");
        QemuProvisioner.PublishAccess(cache, image);
        var access = cache.BoardAccess(Image);
        var ko = OpteeModuleFile.FromInitramfs(image.Initrd, image.KernelRelease,
            Path.Combine(access, "modules", $"optee-{image.Board}-{image.CacheKey}.ko"), $"{image.Board} image {image.CacheKey} (initramfs)");
        var link = Path.Combine(access, "optee.ko");
        if (File.Exists(link) || new FileInfo(link).LinkTarget is not null) File.Delete(link);
        File.CreateSymbolicLink(link, ko.Path);
    }

    public void Dispose()
    {
        // The board first (a QEMU left running would hold the lab's SSH port), then the lab.
        DetachedQemu.Stop(PidFile, TimeSpan.Zero);
        PduDaemon.Dispose();
        Ser2net.Dispose();
    }

    public static string Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {output} {err.Result}");
        return output + err.Result;
    }
}
