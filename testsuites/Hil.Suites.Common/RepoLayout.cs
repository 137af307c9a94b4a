namespace Hil.Suites.Common;

/// <summary>
/// Where the repository is, seen from a running suite: board names in HIL_BOARDS resolve to
/// <c>boards/NAME.yaml</c> there, and the default results folder is under its <c>artifacts/</c>.
/// </summary>
public static class RepoLayout
{
    /// <summary>The file that marks the repository root.</summary>
    public const string Marker = "HilHarness.sln";

    private static readonly Lazy<string?> RootLazy = new(() =>
        FindFrom(AppContext.BaseDirectory) ?? FindFrom(Directory.GetCurrentDirectory()));

    /// <summary>The repository root, or null when the suite runs outside a checkout (give board files by path then).</summary>
    public static string? Root => RootLazy.Value;

    /// <summary>The folder holding the named board files (null outside a checkout).</summary>
    public static string? BoardsDirectory => Root is { } r ? Path.Combine(r, "boards") : null;

    /// <summary>Walks up from <paramref name="start"/> to the folder holding <see cref="Marker"/>.</summary>
    public static string? FindFrom(string start)
    {
        for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, Marker))) return d.FullName;
        return null;
    }
}
