using System.Security.Cryptography;
using System.Text;

namespace Hil.Kernel;

/// <summary>
/// The folder provisioning fills: $HIL_CACHE if set, else ${XDG_CACHE_HOME:-$HOME/.cache}/hil.
/// Every finished piece sits in a folder whose name carries its inputs' key, so that a piece is
/// either absent or complete (it is built beside and renamed into place).
/// </summary>
public sealed class HilCache
{
    public string Root { get; }

    public HilCache(string root) => Root = Path.GetFullPath(root);

    public static HilCache Default()
    {
        var explicitRoot = Environment.GetEnvironmentVariable("HIL_CACHE");
        if (!string.IsNullOrEmpty(explicitRoot)) return new HilCache(explicitRoot);
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var baseDir = !string.IsNullOrEmpty(xdg) ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return new HilCache(Path.Combine(baseDir, "hil"));
    }

    public string Apt(string config) => Path.Combine(Root, "apt", config);
    public string Debs => Path.Combine(Root, "debs");
    public string Sources => Path.Combine(Root, "sources");
    public string Firmware(string key) => Path.Combine(Root, "firmware", key);
    public string Image(string board, string key) => Path.Combine(Root, "images", $"{board}-{key}");
    public string Kit(string kernelRelease, string key) => Path.Combine(Root, "kits", $"{kernelRelease}-{key}");
    public string Libteec(string key) => Path.Combine(Root, "libteec", key);
    /// <summary>Which image a board currently uses (written last, so a half-built image is never pointed at).</summary>
    public string BoardPointer(string board) => Path.Combine(Root, "boards", board + ".json");
    /// <summary>Stable per-board access files (known_hosts, root key link) that board files name.</summary>
    public string BoardAccess(string board) => Path.Combine(Root, "boards", board);
    public string LockFile => Path.Combine(Root, "provision.lock");

    /// <summary>
    /// Runs <paramref name="build"/> into a fresh sibling folder and renames it to <paramref name="final"/>
    /// once it returns: a crash leaves only a '.partial' folder that the next run deletes.
    /// </summary>
    public static async Task<bool> BuildAtomicallyAsync(string final, Func<string, Task> build)
    {
        if (Directory.Exists(final)) return false;
        Directory.CreateDirectory(Path.GetDirectoryName(final)!);
        var partial = $"{final}.partial-{Environment.ProcessId}";
        if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
        Directory.CreateDirectory(partial);
        await build(partial);
        Directory.Move(partial, final);
        return true;
    }

    /// <summary>Removes leftovers of interrupted runs (only called while holding the provisioning lock).</summary>
    public void RemovePartials()
    {
        if (!Directory.Exists(Root)) return;
        // Pieces live exactly two levels down (e.g. images/<name>), so no deep walk through kits is needed.
        foreach (var group in Directory.EnumerateDirectories(Root))
        {
            foreach (var dir in Directory.EnumerateDirectories(group, "*.partial-*").ToList())
                Directory.Delete(dir, recursive: true);
            foreach (var f in Directory.EnumerateFiles(group, "*.partial-*").ToList())
                File.Delete(f);
        }
    }

    /// <summary>A short stable key of some text lines (order matters, callers sort when it should not).</summary>
    public static string KeyOf(IEnumerable<string> lines)
    {
        var text = string.Join('\n', lines);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..12];
    }

    public static string Sha256OfFile(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }
}
