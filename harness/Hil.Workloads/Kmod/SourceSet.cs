using Hil.Kernel;

namespace Hil.Workloads;

/// <summary>
/// C sources a workload builds for the board (tools/kmod, tools/teeholder), read from the
/// repository checkout the harness runs from. Their content key decides when a cached build is stale.
/// </summary>
public sealed record SourceSet(string Directory, IReadOnlyList<string> Files)
{
    /// <summary>Finds <paramref name="relativeDirectory"/> (e.g. "tools/kmod") in the repository above <paramref name="start"/>.</summary>
    public static SourceSet Find(string relativeDirectory, IReadOnlyList<string> files, string? start = null)
    {
        var root = RepositoryRoot(start ?? AppContext.BaseDirectory)
            ?? RepositoryRoot(Environment.CurrentDirectory)
            ?? throw new WorkloadBuildException($"cannot find the HilHarness checkout (HilHarness.sln) above {start ?? AppContext.BaseDirectory} to build {relativeDirectory}");
        var dir = Path.Combine(root, relativeDirectory);
        foreach (var f in files)
            if (!File.Exists(Path.Combine(dir, f)))
                throw new WorkloadBuildException($"{relativeDirectory}/{f} is missing in {root}");
        return new SourceSet(dir, files);
    }

    private static string? RepositoryRoot(string start)
    {
        for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "HilHarness.sln"))) return d.FullName;
        return null;
    }

    /// <summary>A short key of every file's name and content plus <paramref name="inputs"/> (compiler, kernel, flags).</summary>
    public string ContentKey(IEnumerable<string> inputs) =>
        HilCache.KeyOf(Files.Select(f => $"{f} {HilCache.Sha256OfFile(Path.Combine(Directory, f))}").Concat(inputs));

    /// <summary>Copies the files into <paramref name="target"/> (builds never write into the checkout).</summary>
    public void CopyTo(string target)
    {
        System.IO.Directory.CreateDirectory(target);
        foreach (var f in Files) File.Copy(Path.Combine(Directory, f), Path.Combine(target, f), overwrite: true);
    }
}

/// <summary>Building a workload for the board failed; the message carries the tool's complaint.</summary>
public sealed class WorkloadBuildException(string message, Exception? inner = null)
    : Hil.Boards.Failures.TestErrorException(message, inner);
