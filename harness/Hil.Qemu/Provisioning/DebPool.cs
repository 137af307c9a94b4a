using Hil.Kernel;

namespace Hil.Qemu.Provisioning;

/// <summary>
/// The downloaded .deb files, shared by every board and kept by exact file name. A file enters the
/// pool only after its sha256 matched the signed index, so presence means verified.
/// </summary>
public sealed class DebPool(HilCache cache)
{
    public string PathOf(ResolvedPackage p) => Path.Combine(cache.Debs, p.DebFileName);

    public bool Has(ResolvedPackage p) => File.Exists(PathOf(p));

    /// <summary>Downloads what is missing; returns the packages that were fetched.</summary>
    public async Task<IReadOnlyList<ResolvedPackage>> EnsureAsync(PrivateApt apt, IReadOnlyList<ResolvedPackage> packages, CancellationToken ct)
    {
        var missing = packages.Where(p => !Has(p)).DistinctBy(p => p.DebFileName).ToList();
        if (missing.Count == 0) return [];
        Directory.CreateDirectory(cache.Debs);
        var staging = Path.Combine(cache.Debs, $"download.partial-{Environment.ProcessId}");
        if (Directory.Exists(staging)) Directory.Delete(staging, true);
        Directory.CreateDirectory(staging);
        try
        {
            await apt.DownloadAsync(missing, staging, ct);
            foreach (var p in missing)
            {
                var file = Path.Combine(staging, p.DebFileName);
                if (!File.Exists(file))
                    throw new ProvisioningException($"apt reported success but {p.DebFileName} is missing after download of {p}");
                var sha = HilCache.Sha256OfFile(file);
                if (sha != p.Sha256)
                    throw new ProvisioningException($"{p.DebFileName}: sha256 {sha} does not match the index ({p.Sha256})");
                File.Move(file, PathOf(p), overwrite: true);
            }
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, true);
        }
        return missing;
    }

    /// <summary>Unpacks one package's files below <paramref name="target"/>.</summary>
    public Task ExtractAsync(ResolvedPackage p, string target, CancellationToken ct)
    {
        Directory.CreateDirectory(target);
        return ExternalTool.RunAsync("dpkg-deb", ["-x", PathOf(p), target], ct: ct);
    }
}
