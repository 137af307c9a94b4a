using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Hil.Suites.Common;

/// <summary>
/// The results folder of a run: <c>HIL_RESULTS</c>, or <c>artifacts/results/&lt;UTC timestamp&gt;</c>
/// in the repository (the current folder outside a checkout). Layout:
/// <code>
/// RESULTS/BOARD/facts.json, facts.txt            what the suites judged the board by (latest boot)
/// RESULTS/BOARD/manifest.json, manifest.txt      the provisioned image's inputs and files (QEMU boards)
/// RESULTS/BOARD/provisioning.json                cold or warm, how long (QEMU boards)
/// RESULTS/BOARD/SUITE/harness.log                the board layer's log for this suite
/// RESULTS/BOARD/SUITE/session-N/                 whole console and secure-console logs of boot N
/// RESULTS/BOARD/SUITE/tests/TEST/                the test's console slices (also attached to its result)
/// </code>
/// </summary>
public static partial class SuiteResults
{
    public const string EnvVar = "HIL_RESULTS";

    // One timestamp per process: every fixture of a run writes into the same folder.
    private static readonly Lazy<string> RootLazy = new(() =>
    {
        var explicitRoot = Environment.GetEnvironmentVariable(EnvVar);
        var root = !string.IsNullOrWhiteSpace(explicitRoot)
            ? Path.GetFullPath(explicitRoot)
            : Path.Combine(RepoLayout.Root ?? Directory.GetCurrentDirectory(), "artifacts", "results",
                DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture));
        Directory.CreateDirectory(root);
        return root;
    });

    public static string Root => RootLazy.Value;

    public static string ForBoard(string board) => Path.Combine(Root, SafeName(board));

    public static string ForSuite(string board, string suite) => Path.Combine(ForBoard(board), SafeName(suite));

    /// <summary>"Hil.Suites.SystemThreads" → "system-threads": the suite's short name in folders and reports.</summary>
    public static string SuiteNameOf(System.Reflection.Assembly assembly)
    {
        var name = assembly.GetName().Name ?? "suite";
        const string prefix = "Hil.Suites.";
        if (name.StartsWith(prefix, StringComparison.Ordinal)) name = name[prefix.Length..];
        return Kebab(name);
    }

    /// <summary>"SystemThreads" → "system-threads".</summary>
    public static string Kebab(string name)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (char.IsUpper(c) && i > 0 && name[i - 1] != '-' && name[i - 1] != '.') sb.Append('-');
            sb.Append(c == '.' ? '-' : char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }

    /// <summary>A file-name-safe form of a test or board name (parameters and all).</summary>
    public static string SafeName(string name)
    {
        var s = Unsafe().Replace(name, "_").Trim('_');
        if (s.Length > 120) s = s[..120];
        return s.Length == 0 ? "_" : s;
    }

    [GeneratedRegex(@"[^A-Za-z0-9._-]+")]
    private static partial Regex Unsafe();
}
