using System.Text.RegularExpressions;
using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Hil.Patches;
using Hil.Qemu.Board;

namespace Hil.Suites.Common;

/// <summary>
/// Which boards the suites run on: <c>HIL_BOARDS</c>, comma-separated, each a board name
/// (<c>qemu-optee</c> → <c>boards/qemu-optee.yaml</c>) or a path to a board file (anything with a
/// '/' or ending in .yaml/.yml). Unset or empty: <see cref="DefaultBoards"/> (both kernels).
/// <para>Use it as the fixture source of every on-board suite, so each fixture runs once per board:</para>
/// <code>[TestFixtureSource(typeof(BoardSelection), nameof(BoardSelection.Fixtures))]
/// public sealed class MySuite(BoardTarget target) : BoardSuite(target) { … }</code>
/// </summary>
public static partial class BoardSelection
{
    public const string EnvVar = "HIL_BOARDS";

    /// <summary>The QEMU board on both kernels: 6.12 (mainline policy) and 6.1 (legacy).</summary>
    public static readonly IReadOnlyList<string> DefaultBoards = ["qemu-optee", "qemu-optee-6.1"];

    /// <summary>
    /// NUnit fixture source: one fixture per selected board, named after the board; in a patch run
    /// (<c>HIL_DRIVERS</c>) one per board and driver, in the manifest's order (the control first).
    /// </summary>
    public static IEnumerable<TestFixtureData> Fixtures() =>
        WithDrivers(Targets(), Environment.GetEnvironmentVariable(DriverManifest.EnvVar)).Select(t => new TestFixtureData(t).SetArgDisplayNames(t.ToString()));

    /// <summary>Each board once per driver of the manifest <paramref name="manifestPath"/> (none: the boards as they are).</summary>
    public static IReadOnlyList<BoardTarget> WithDrivers(IReadOnlyList<BoardTarget> boards, string? manifestPath)
    {
        if (string.IsNullOrWhiteSpace(manifestPath)) return boards;
        DriverManifest manifest;
        try
        {
            manifest = DriverManifest.Read(manifestPath);
        }
        catch (FormatException ex)
        {
            return [.. boards.Select(b => b with { SelectionError = ex.Message })];
        }
        return [.. boards.SelectMany(b => manifest.Drivers.Select(d => b.IsValid && b.Name != manifest.Board
            ? b with { Driver = d, SelectionError = $"{DriverManifest.EnvVar} {manifestPath}: the drivers were built for board {manifest.Board}, not {b.Name}" }
            : b with { Driver = d }))];
    }

    /// <summary>The boards selected by the environment (never throws; bad entries come back invalid).</summary>
    public static IReadOnlyList<BoardTarget> Targets() =>
        Parse(Environment.GetEnvironmentVariable(EnvVar), RepoLayout.BoardsDirectory, Directory.GetCurrentDirectory());

    /// <summary>
    /// Resolves a HIL_BOARDS value. Each board file is loaded and its suite facts checked now, so a
    /// broken file fails its fixture with the file, line and field rather than half-way through a run.
    /// </summary>
    public static IReadOnlyList<BoardTarget> Parse(string? value, string? boardsDirectory, string baseDirectory)
    {
        // Board files naming the qemu power driver only load once it is registered.
        QemuBoards.Register();
        var items = string.IsNullOrWhiteSpace(value) ? DefaultBoards.ToArray() : value.Split(',');
        var targets = new List<BoardTarget>();
        for (var i = 0; i < items.Length; i++)
        {
            var item = items[i].Trim();
            var where = $"{EnvVar} item {i + 1}";
            var target = Resolve(item, where, boardsDirectory, baseDirectory);
            if (target.IsValid && targets.Any(t => t.Name == target.Name))
                target = Invalid(item, $"{where} '{item}': board '{target.Name}' is selected twice");
            // Fixture names must be unique, or NUnit merges the fixtures.
            while (targets.Any(t => t.Name == target.Name)) target = target with { Name = target.Name + "'" };
            targets.Add(target);
        }
        return targets;
    }

    private static BoardTarget Resolve(string item, string where, string? boardsDirectory, string baseDirectory)
    {
        if (item.Length == 0)
            return Invalid("(empty)", $"{where}: empty board name (write names or board-file paths separated by commas)");
        string file;
        if (item.Contains('/') || item.EndsWith(".yaml", StringComparison.Ordinal) || item.EndsWith(".yml", StringComparison.Ordinal))
        {
            file = Path.GetFullPath(item, baseDirectory);
            if (!File.Exists(file)) return Invalid(item, $"{where}: board file {file} does not exist");
        }
        else
        {
            if (!BoardName().IsMatch(item))
                return Invalid(item, $"{where} '{item}': not a board name (letters, digits, '.', '_', '-') nor a path to a board file");
            if (boardsDirectory is null)
                return Invalid(item, $"{where} '{item}': the repository ({RepoLayout.Marker}) was not found above {AppContext.BaseDirectory}, so board names cannot be resolved; give the board file's path");
            file = Path.Combine(boardsDirectory, item + ".yaml");
            if (!File.Exists(file))
            {
                var known = Directory.Exists(boardsDirectory)
                    ? string.Join(", ", Directory.EnumerateFiles(boardsDirectory, "*.yaml").Select(Path.GetFileNameWithoutExtension).Order())
                    : "none";
                return Invalid(item, $"{where} '{item}': no board file {file} (known boards: {known})");
            }
        }
        try
        {
            var spec = BoardFileLoader.Load(file);
            SuiteFacts.FromBoardFile(spec);
            return new BoardTarget(spec.Name, file);
        }
        catch (HilException ex)
        {
            return Invalid(item, $"{where} '{item}': {ex.Message}");
        }
    }

    private static BoardTarget Invalid(string item, string error) => new(Sanitize(item), "", error);

    /// <summary>A display name NUnit will not misparse (no parentheses, commas or quotes).</summary>
    private static string Sanitize(string item)
    {
        var s = Regex.Replace(item, @"[^A-Za-z0-9._/-]", "_");
        return s.Length == 0 ? "invalid" : s;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex BoardName();
}
