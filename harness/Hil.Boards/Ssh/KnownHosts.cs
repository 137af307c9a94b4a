using System.Security.Cryptography;
using System.Text;

namespace Hil.Boards.Ssh;

/// <summary>
/// An OpenSSH known_hosts file: plain and hashed (<c>|1|salt|hmac</c>) host patterns,
/// <c>[host]:port</c> for non-22 ports, and <c>@revoked</c> lines. Read-only except for recording a
/// first-seen key when the board file explicitly allows it.
/// </summary>
public sealed class KnownHosts(string path)
{
    public string Path { get; } = path;

    public sealed record Entry(string KeyType, byte[] KeyBlob, bool Revoked)
    {
        public string Fingerprint => HostKeyFingerprint.Sha256(KeyBlob);
    }

    /// <summary>The host's name as known_hosts writes it.</summary>
    public static string HostPattern(string host, int port) => port == 22 ? host : $"[{host}]:{port}";

    /// <summary>known_hosts files hold a few lines per host; anything this big is not one (or is /dev/zero-like).</summary>
    public const long MaxBytes = 16 * 1024 * 1024;

    /// <summary>The keys listed for the host (revoked ones flagged). Throws <see cref="KnownHostsUnreadableException"/> for a file that is not a regular file or too large.</summary>
    public IReadOnlyList<Entry> Find(string host, int port)
    {
        var kind = BoardFiles.FileKinds.Of(Path);
        if (kind == BoardFiles.FileKind.Missing) return [];
        // A FIFO would block the reader and a device may never end: only regular files vouch for keys.
        if (kind != BoardFiles.FileKind.Regular)
            throw new KnownHostsUnreadableException($"known_hosts {Path} is {BoardFiles.FileKinds.Describe(kind)}, not a regular file: no key can be trusted from it");
        if (new FileInfo(Path).Length > MaxBytes)
            throw new KnownHostsUnreadableException($"known_hosts {Path} is larger than {MaxBytes / (1024 * 1024)} MiB: not a known_hosts file");
        var name = HostPattern(host, port);
        var result = new List<Entry>();
        IEnumerable<string> lines;
        try
        {
            lines = File.ReadAllLines(Path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new KnownHostsUnreadableException($"known_hosts {Path} cannot be read: {ex.Message}");
        }
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var parts = line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            var revoked = false;
            if (parts[0].StartsWith('@'))
            {
                if (parts[0] != "@revoked") continue; // @cert-authority: certificates are not used here
                revoked = true;
                parts = parts[1..];
            }
            if (parts.Length < 3 || !Matches(parts[0], name)) continue;
            try
            {
                result.Add(new Entry(parts[1], Convert.FromBase64String(parts[2]), revoked));
            }
            catch (FormatException)
            {
                // A damaged line cannot vouch for anything; skip it.
            }
        }
        return result;
    }

    /// <summary>Appends a key (accept-new on first use). Plain host names, like OpenSSH with HashKnownHosts=no.</summary>
    public void Add(string host, int port, string keyType, byte[] blob)
    {
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path));
        if (dir is not null) Directory.CreateDirectory(dir);
        File.AppendAllText(Path, $"{HostPattern(host, port)} {keyType} {Convert.ToBase64String(blob)}\n");
    }

    private static bool Matches(string patterns, string name)
    {
        var any = false;
        foreach (var p in patterns.Split(','))
        {
            if (p.StartsWith("|1|", StringComparison.Ordinal))
            {
                var f = p.Split('|');
                if (f.Length != 4) continue;
                try
                {
                    var salt = Convert.FromBase64String(f[2]);
                    var hash = HMACSHA1.HashData(salt, Encoding.ASCII.GetBytes(name));
                    if (Convert.ToBase64String(hash) == f[3]) any = true;
                }
                catch (FormatException)
                {
                }
                continue;
            }
            if (p.StartsWith('!'))
            {
                if (Glob(p[1..], name)) return false;
                continue;
            }
            if (Glob(p, name)) any = true;
        }
        return any;
    }

    private static bool Glob(string pattern, string name)
    {
        var re = "^" + System.Text.RegularExpressions.Regex.Escape(pattern).Replace(@"\*", ".*").Replace(@"\?", ".") + "$";
        return System.Text.RegularExpressions.Regex.IsMatch(name, re, System.Text.RegularExpressions.RegexOptions.IgnoreCase);
    }
}

/// <summary>A known_hosts file that cannot vouch for any key (not a regular file, unreadable, huge).</summary>
public sealed class KnownHostsUnreadableException(string message) : Exception(message);

public static class HostKeyFingerprint
{
    /// <summary>"SHA256:..." exactly as <c>ssh-keygen -l</c> prints it.</summary>
    public static string Sha256(byte[] blob) => "SHA256:" + Convert.ToBase64String(SHA256.HashData(blob)).TrimEnd('=');
}
