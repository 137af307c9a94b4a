using System.Reflection;
using System.Text;
using Hil.Kernel;

namespace Hil.Qemu.Provisioning;

/// <summary>The kernel side of an image: the arm64 Image and the modules /init loads, in load order.</summary>
public sealed record KernelParts(string Release, string ImagePath, IReadOnlyList<(string Name, string Path)> Modules);

/// <summary>
/// Builds the board's root file system as an initramfs: trixie user space unpacked from .debs
/// into a merged-/usr tree, the kernel's OP-TEE and network modules, the image's SSH keys, and
/// our /init. Nothing from the host goes in.
/// </summary>
public static class InitramfsBuilder
{
    public const string GuestAddress = "10.0.2.15";

    /// <summary>Bumped whenever the tree layout or the files written here change (part of the cache key).</summary>
    public const int RecipeVersion = 1;

    public static string InitTemplate { get; } = ReadResource("Hil.Qemu.init.sh");

    private static string ReadResource(string name)
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"resource {name} missing from the assembly");
        return new StreamReader(s).ReadToEnd();
    }

    /// <summary>Extracts the kernel package and picks out the Image and the modules /init needs (dependencies first).</summary>
    public static async Task<KernelParts> ExtractKernelAsync(DebPool pool, ResolvedPackage kernel, string work, CancellationToken ct)
    {
        var release = kernel.Name["linux-image-".Length..];
        var x = Path.Combine(work, "kernel");
        await pool.ExtractAsync(kernel, x, ct);
        var image = Path.Combine(x, "boot", "vmlinuz-" + release);
        if (!File.Exists(image)) throw new ProvisioningException($"{kernel} has no boot/vmlinuz-{release}");
        var modRoot = new[] { "lib/modules", "usr/lib/modules" }.Select(p => Path.Combine(x, p, release)).FirstOrDefault(Directory.Exists)
            ?? throw new ProvisioningException($"{kernel} has no modules folder for {release}");

        // Module file names may use '-' where module names use '_'.
        var byName = new Dictionary<string, string>();
        foreach (var f in Directory.EnumerateFiles(modRoot, "*.ko*", SearchOption.AllDirectories))
        {
            var file = Path.GetFileName(f);
            var stem = file.EndsWith(".ko.xz", StringComparison.Ordinal) ? file[..^6] : file.EndsWith(".ko", StringComparison.Ordinal) ? file[..^3] : null;
            if (stem is not null) byName[stem.Replace('-', '_')] = f;
        }
        // Built-in modules need no loading (virtio_pci is built in on 6.12, a module on 6.1).
        var builtinFile = Path.Combine(modRoot, "modules.builtin");
        var builtin = File.Exists(builtinFile)
            ? File.ReadAllLines(builtinFile).Select(l => Path.GetFileName(l.Trim())).Where(l => l.EndsWith(".ko", StringComparison.Ordinal))
                .Select(l => l[..^3].Replace('-', '_')).ToHashSet()
            : [];
        var plain = Path.Combine(work, "modules");
        Directory.CreateDirectory(plain);
        var ordered = new List<(string, string)>();
        var visiting = new HashSet<string>();
        async Task Visit(string name)
        {
            if (ordered.Any(o => o.Item1 == name)) return;
            if (!byName.ContainsKey(name) && builtin.Contains(name)) return;
            if (!visiting.Add(name)) throw new ProvisioningException($"{kernel}: module dependency cycle at {name}");
            if (!byName.TryGetValue(name, out var src))
                throw new ProvisioningException($"{kernel}: module {name} not found (built in, or renamed?)");
            var dest = Path.Combine(plain, name + ".ko");
            if (src.EndsWith(".xz", StringComparison.Ordinal))
            {
                // busybox insmod takes plain ELF only; the signature appended inside survives decompression.
                await using var o = File.Create(dest);
                await ExternalTool.RunAsync("xz", ["-dc", src], ct: ct, stdoutSink: o);
            }
            else File.Copy(src, dest);
            foreach (var dep in KernelModuleInfo.Read(dest).Depends) await Visit(dep.Replace('-', '_'));
            ordered.Add((name, dest));
        }
        foreach (var m in BoardRecipe.BootModules) await Visit(m);
        return new KernelParts(release, image, ordered);
    }

    /// <summary>Assembles the tree and writes it as a gzip cpio archive at <paramref name="output"/> (mode 0600: it holds the host key).</summary>
    public static async Task BuildAsync(string output, string board, string work, DebPool pool,
        IReadOnlyList<ResolvedPackage> userSpace, KernelParts kernel, string hostKeyOpenSsh,
        Ed25519KeyPair rootKey, CancellationToken ct)
    {
        var root = Path.Combine(work, "rootfs");
        Directory.CreateDirectory(root);
        foreach (var p in userSpace) await pool.ExtractAsync(p, root, ct);
        MergeUsr(root);
        foreach (var junk in new[] { "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
                     "usr/share/lintian", "usr/share/bug", "usr/lib/aarch64-linux-gnu/gconv", "etc/init.d", "etc/default" })
        {
            var p = Path.Combine(root, junk);
            if (Directory.Exists(p)) Directory.Delete(p, true);
        }

        // /bin/sh must exist before /init runs busybox --install: it is root's login shell for dropbear.
        var sh = Path.Combine(root, "usr/bin/sh");
        if (!File.Exists(sh) && new FileInfo(sh).LinkTarget is null) File.CreateSymbolicLink(sh, "busybox");

        var modDir = Path.Combine(root, "usr/lib/modules", kernel.Release, "hil");
        Directory.CreateDirectory(modDir);
        foreach (var (name, path) in kernel.Modules) File.Copy(path, Path.Combine(modDir, name + ".ko"));

        foreach (var d in new[] { "dev", "proc", "sys", "tmp", "run", "mnt", "var/lib/optee-client/data/tee", "etc/dropbear" })
            Directory.CreateDirectory(Path.Combine(root, d));
        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        const UnixFileMode PrivateDir = Private | UnixFileMode.UserExecute;
        var rootHome = Path.Combine(root, "root");
        Directory.CreateDirectory(Path.Combine(rootHome, ".ssh"));
        File.SetUnixFileMode(rootHome, PrivateDir);
        File.SetUnixFileMode(Path.Combine(rootHome, ".ssh"), PrivateDir);
        File.SetUnixFileMode(Path.Combine(root, "tmp"), (UnixFileMode)0x3FF); // 1777

        WriteFile(root, "root/.ssh/authorized_keys", rootKey.PublicLine + "\n", Private);
        var hostKey = Path.Combine(root, "etc/dropbear/dropbear_ed25519_host_key");
        await File.WriteAllBytesAsync(hostKey, Ed25519KeyPair.ToDropbear(hostKeyOpenSsh), ct);
        File.SetUnixFileMode(hostKey, Private);

        // A locked password ('*', not '!': dropbear treats '!' as a locked account and refuses keys too).
        WriteFile(root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
        WriteFile(root, "etc/shadow", "root:*:19000:0:99999:7:::\n", Private);
        WriteFile(root, "etc/group", "root:x:0:\ntty:x:5:\n");
        WriteFile(root, "etc/shells", "/bin/sh\n/usr/bin/sh\n");
        WriteFile(root, "etc/hostname", board + "\n");
        WriteFile(root, "etc/hosts", $"127.0.0.1 localhost\n{GuestAddress} {board}\n");
        WriteFile(root, "etc/profile",
            "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\nexport HOME=/root\n" +
            // A plain prompt: the board-access layer sets its own when it takes the shell over.
            $"PS1='{board}# '\n");
        WriteFile(root, "init", InitScript(board, kernel), (UnixFileMode)0x1ED); // 0755

        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        await using (var f = new FileStream(output, FileMode.CreateNew, FileAccess.Write))
        using (var cpio = new CpioWriter(f))
        {
            cpio.AddTree(root);
            // The kernel opens /dev/console for init's stdio before /init can mount devtmpfs.
            cpio.AddCharDevice("dev/console", 0x180, 5, 1);
        }
        File.SetUnixFileMode(output, Private);
    }

    public static string InitScript(string board, KernelParts kernel) =>
        InitTemplate.Replace("@BOARD@", board)
            .Replace("@KERNEL_RELEASE@", kernel.Release)
            .Replace("@MODULES@", string.Join(' ', kernel.Modules.Select(m => m.Name)));

    private static void WriteFile(string root, string rel, string text, UnixFileMode mode = (UnixFileMode)0x1A4 /* 0644 */)
    {
        var p = Path.Combine(root, rel);
        Directory.CreateDirectory(Path.GetDirectoryName(p)!);
        File.WriteAllText(p, text, new UTF8Encoding(false));
        File.SetUnixFileMode(p, mode);
    }

    /// <summary>
    /// Makes bin, sbin and lib symlinks into usr (trixie's merged-/usr layout) and moves whatever
    /// a package put under the top-level folders into usr.
    /// </summary>
    private static void MergeUsr(string root)
    {
        foreach (var top in new[] { "bin", "sbin", "lib" })
        {
            var topPath = Path.Combine(root, top);
            var usrPath = Path.Combine(root, "usr", top);
            Directory.CreateDirectory(usrPath);
            if (new FileInfo(topPath).LinkTarget is not null) continue;
            if (Directory.Exists(topPath))
            {
                MoveInto(topPath, usrPath);
                Directory.Delete(topPath, true);
            }
            File.CreateSymbolicLink(topPath, "usr/" + top);
        }
    }

    private static void MoveInto(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var entry in Directory.EnumerateFileSystemEntries(from).ToList())
        {
            var dest = Path.Combine(to, Path.GetFileName(entry));
            var isLink = new FileInfo(entry).LinkTarget is not null;
            if (!isLink && Directory.Exists(entry))
            {
                if (new FileInfo(dest).LinkTarget is null && Directory.Exists(dest)) { MoveInto(entry, dest); continue; }
                Directory.Move(entry, dest);
            }
            else
            {
                if (File.Exists(dest) || new FileInfo(dest).LinkTarget is not null) File.Delete(dest);
                File.Move(entry, dest);
            }
        }
    }
}
