using Hil.Boards.BoardFiles;

namespace Hil.Boards.Ssh;

/// <summary>
/// Decides whether a host key is the board's. Keys are always checked: against fingerprints pinned
/// in the board file, or against a known_hosts file. An unknown key is refused unless the board file
/// opts in to accept-and-record on first use; a changed key is always refused.
/// </summary>
public sealed class HostKeyPolicy
{
    private readonly IReadOnlyList<string> _pinned;
    private readonly KnownHosts? _knownHosts;
    private readonly bool _acceptNew;

    public HostKeyPolicy(IReadOnlyList<string> pinnedFingerprints, string? knownHostsPath, bool acceptNew)
    {
        if (pinnedFingerprints.Count == 0 && knownHostsPath is null)
            throw new Failures.TestErrorException("SSH host keys are always verified: give pinned fingerprints or a known_hosts file");
        _pinned = pinnedFingerprints.Select(p => p.TrimEnd('=')).ToList();
        _knownHosts = knownHostsPath is null ? null : new KnownHosts(knownHostsPath);
        _acceptNew = acceptNew;
    }

    public static HostKeyPolicy For(SshSpec spec) => new(spec.HostKeys, spec.KnownHosts, spec.AcceptNewHostKey);

    /// <summary>Null when the key is trusted; else the reason to refuse it (said to the user as is).</summary>
    public string? Check(string host, int port, string keyType, byte[] blob)
    {
        var fp = HostKeyFingerprint.Sha256(blob);
        var who = KnownHosts.HostPattern(host, port);
        if (_pinned.Count > 0)
        {
            if (_pinned.Contains(fp)) return null;
            if (_knownHosts is null)
                return $"host key of {who} is {keyType} {fp}, which is not the key pinned in the board file ({string.Join(", ", _pinned)}). "
                       + "The board was reinstalled, or someone is impersonating it: check, then update ssh.host_key.";
        }
        if (_knownHosts is not null)
        {
            var known = _knownHosts.Find(host, port);
            if (known.Any(k => k.Revoked && k.KeyBlob.AsSpan().SequenceEqual(blob)))
                return $"host key of {who} ({fp}) is marked @revoked in {_knownHosts.Path}";
            if (known.Any(k => !k.Revoked && k.KeyBlob.AsSpan().SequenceEqual(blob))) return null;
            if (known.Any(k => !k.Revoked))
                return $"host key of {who} CHANGED: it is now {keyType} {fp}, known_hosts {_knownHosts.Path} has "
                       + string.Join(", ", known.Where(k => !k.Revoked).Select(k => $"{k.KeyType} {k.Fingerprint}"))
                       + ". The board was reinstalled, or someone is impersonating it: check, then remove the old line.";
            if (_acceptNew)
            {
                _knownHosts.Add(host, port, keyType, blob);
                return null;
            }
            return $"host key of {who} ({keyType} {fp}) is unknown: it is not in {_knownHosts.Path}. "
                   + "Add it (ssh-keyscan, checked against the board), pin it in ssh.host_key, or set accept_new_host_key: true to record it on first use.";
        }
        return $"host key of {who} ({fp}) is not trusted";
    }
}
