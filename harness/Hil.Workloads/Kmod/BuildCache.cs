namespace Hil.Workloads;

/// <summary>
/// Finished workload builds (module per kernel release, holder per libteec), each in a folder named
/// by its inputs' key under &lt;cache&gt;/workloads/KIND/: a folder is either absent or complete, because
/// it is built beside its final name and renamed into place. Two processes building the same key
/// at once both succeed; the second rename loses and uses the winner's folder.
/// </summary>
public sealed class BuildCache(string root)
{
    public string Root { get; } = Path.GetFullPath(root);

    /// <summary>The workloads folder of a provisioning cache (the same cache the boards come from).</summary>
    public static BuildCache In(Hil.Kernel.HilCache cache) => new(Path.Combine(cache.Root, "workloads"));

    public string PathOf(string kind, string name) => Path.Combine(Root, kind, name);

    /// <summary>Returns the folder for (kind, name), running <paramref name="build"/> into a fresh folder first if it is absent.</summary>
    public async Task<(string Directory, bool Reused)> GetOrBuildAsync(string kind, string name, Func<string, Task> build)
    {
        var final = PathOf(kind, name);
        if (Directory.Exists(final)) return (final, true);
        Directory.CreateDirectory(Path.GetDirectoryName(final)!);
        // One level below the provisioning cache's own pieces, so its clean-up of *.partial-* never sees these.
        var partial = $"{final}.partial-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";
        Directory.CreateDirectory(partial);
        try
        {
            await build(partial).ConfigureAwait(false);
            try
            {
                Directory.Move(partial, final);
                return (final, false);
            }
            catch (IOException) when (Directory.Exists(final))
            {
                return (final, true);
            }
        }
        finally
        {
            if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
        }
    }
}
