namespace Hil.Cli;

/// <summary>
/// The checkout the CLI works in: first the one it was built from (tools/hil builds it into
/// artifacts/cli), then the one around the current folder (a CLI built elsewhere, e.g. Release
/// into /tmp for benchmarks).
/// </summary>
public static class RepoPaths
{
    private const string Marker = "HilHarness.sln";
    private static readonly Lazy<string?> Found = new(() =>
        new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() }.Select(FindFrom).FirstOrDefault(r => r is not null));

    /// <summary>The repository root; a clear error (not a stack trace) when hil runs outside a checkout.</summary>
    public static string Root => Found.Value
        ?? throw new DirectoryNotFoundException($"cannot find the HilHarness checkout ({Marker}) above {AppContext.BaseDirectory} or {Directory.GetCurrentDirectory()}; run hil from its checkout (tools/hil)");

    public static string File(params string[] parts) => Path.Combine([Root, .. parts]);

    private static string? FindFrom(string start)
    {
        for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            if (System.IO.File.Exists(Path.Combine(d.FullName, Marker))) return d.FullName;
        return null;
    }
}
