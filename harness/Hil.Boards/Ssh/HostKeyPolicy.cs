using Hil.Boards.BoardFiles;

namespace Hil.Boards.Ssh;

/// <summary>
/// Decides whether a host key is the board's. Keys are always checked, and every source given must
/// agree — sources are never OR'd into "accept anything":
/// <list type="bullet">
/// <item>A pin (<c>host_key</c>) is the whole answer: a key that is not pinned is refused, whatever
/// known_hosts or accept_new_host_key say (no fall-through, nothing recorded, no password sent).</item>
/// <item>known_hosts, given as well as a pin, may only veto: a pinned key that is <c>@revoked</c>
/// there, or a host for which it lists only other keys, is refused. A pinned key it does not list is
/// trusted (and recorded with accept_new_host_key: the pin vouched for it).</item>
/// <item>known_hosts alone: a listed key is trusted, a revoked or changed one refused, an unknown one
/// refused unless accept_new_host_key records it on first use (only into a writable regular file).</item>
/// </list>
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
        // The board-file loader reports these with file and line; repeated here for specs built in code.
        if (acceptNew && knownHostsPath is null)
            throw new Failures.TestErrorException("ssh.accept_new_host_key needs known_hosts: the file where a first-seen key is recorded");
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
        if (_pinned.Count > 0 && !_pinned.Contains(fp))
            return $"host key of {who} is {keyType} {fp}, which is not the key pinned in the board file ({string.Join(", ", _pinned)}). "
                   + "The board was reinstalled, or someone is impersonating it: check, then update ssh.host_key.";
        if (_knownHosts is null) return null; // pinned and matching
        IReadOnlyList<KnownHosts.Entry> known;
        try
        {
            known = _knownHosts.Find(host, port);
        }
        catch (KnownHostsUnreadableException ex)
        {
            return ex.Message;
        }
        if (known.Any(k => k.Revoked && k.KeyBlob.AsSpan().SequenceEqual(blob)))
            return $"host key of {who} ({keyType} {fp}) is marked @revoked in {_knownHosts.Path}";
        if (known.Any(k => !k.Revoked && k.KeyBlob.AsSpan().SequenceEqual(blob))) return null;
        if (known.Any(k => !k.Revoked))
            return $"host key of {who} CHANGED: it is now {keyType} {fp}, known_hosts {_knownHosts.Path} has "
                   + string.Join(", ", known.Where(k => !k.Revoked).Select(k => $"{k.KeyType} {k.Fingerprint}"))
                   + (_pinned.Count > 0 ? " (the key matches ssh.host_key, but known_hosts disagrees: one of them is stale)" : "")
                   + ". The board was reinstalled, or someone is impersonating it: check, then remove the old line.";
        if (_pinned.Count > 0 && !_acceptNew) return null; // pinned and matching; known_hosts has nothing against it
        if (_acceptNew)
        {
            // Only a key nothing contradicts reaches here: unknown to known_hosts and, if pinned, the pinned one.
            // Recorded only into a regular file that keeps it: checked again now, since the board file
            // was loaded (the path may have become /dev/null, a directory or read-only since).
            if (FileKinds.WhyNotAppendable(_knownHosts.Path) is { } why)
                return $"host key of {who} ({keyType} {fp}) is unknown and accept_new_host_key cannot record it: {why}";
            try
            {
                _knownHosts.Add(host, port, keyType, blob);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return $"host key of {who} ({keyType} {fp}) is unknown and accept_new_host_key cannot record it in {_knownHosts.Path}: {ex.Message}";
            }
            return null;
        }
        var where = File.Exists(_knownHosts.Path) ? $"it is not in {_knownHosts.Path}" : $"known_hosts file {_knownHosts.Path} does not exist";
        return $"host key of {who} ({keyType} {fp}) is unknown: {where}. "
               + "Add it (ssh-keyscan, checked against the board), pin it in ssh.host_key, or set accept_new_host_key: true to record it on first use.";
    }
}
