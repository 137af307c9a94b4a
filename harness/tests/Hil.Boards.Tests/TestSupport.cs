using Hil.Boards;
using Hil.Boards.BoardFiles;
using Hil.Boards.Shell;
using Serilog;

namespace Hil.Boards.Tests;

/// <summary>A temp directory and a debug log per test; both kept only if the test failed.</summary>
public sealed class Workspace : IDisposable
{
    public Workspace()
    {
        Dir = Directory.CreateTempSubdirectory("hil-test-").FullName;
        Logger = new LoggerConfiguration().MinimumLevel.Debug().WriteTo.File(Path.Combine(Dir, "harness.log")).CreateLogger();
    }

    public string Dir { get; }
    public Serilog.Core.Logger Logger { get; }

    public string Write(string name, string text)
    {
        var p = Path.Combine(Dir, name);
        File.WriteAllText(p, text);
        return p;
    }

    /// <summary>Loads a board file written from YAML text (so tests go through the real loader).</summary>
    public BoardSpec Board(string yaml, string name = "board.yaml") => BoardFileLoader.Load(Write(name, yaml));

    public Task<Board> OpenAsync(BoardSpec spec, ShellOptions? shell = null) =>
        Hil.Boards.Board.OpenAsync(spec, new BoardOptions { LogDirectory = Path.Combine(Dir, "logs"), Logger = Logger, Shell = shell });

    public void Dispose()
    {
        Logger.Dispose();
        // The outcome is not known yet inside the test: BoardTest's TearDown deletes passed tests' directories.
        BoardTest.Created?.Add(Dir);
    }
}

/// <summary>Base of tests that use a <see cref="Workspace"/>: deletes it after a pass, keeps it (and says where) after a failure.</summary>
public abstract class BoardTest
{
    // Tests do not run in parallel here, so one list for the running test is enough.
    internal static List<string>? Created;
    private List<string> _dirs = [];

    [SetUp]
    public void TrackWorkspaces() => Created = _dirs = [];

    [TearDown]
    public void CleanWorkspaces()
    {
        var passed = TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Passed;
        foreach (var d in _dirs)
        {
            if (!passed)
            {
                TestContext.Out.WriteLine($"kept for inspection: {d}");
                continue;
            }
            try
            {
                Directory.Delete(d, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}

public static class Yaml
{
    /// <summary>A board with just a console (and a login when a password file is given).</summary>
    public static string ConsoleBoard(string device, string? passwordFile, string user = "hiltest", string extra = "") => $"""
        name: test-console
        console:
          device: {device}
          reconnect_timeout: 20s
        {(passwordFile is null ? "" : $"""
        login:
          user: {user}
          password: {"{"} file: {passwordFile} {"}"}
          timeout: 30s
        """)}
        shell:
          command_timeout: 20s
        {extra}
        """;
}

public static class Eventually
{
    /// <summary>
    /// Waits (up to 10 s) until two byte counts agree and stay so for a moment: bytes still in
    /// flight (the shell's last prompt) have arrived on both sides.
    /// </summary>
    public static async Task EqualAsync(Func<long> a, Func<long> b, CancellationToken ct)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var stable = System.Diagnostics.Stopwatch.StartNew();
        var last = (-1L, -1L);
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            var now = (a(), b());
            if (now != last)
            {
                last = now;
                stable.Restart();
            }
            else if (now.Item1 == now.Item2 && stable.Elapsed > TimeSpan.FromMilliseconds(500)) return;
            await Task.Delay(50, ct);
        }
    }
}
