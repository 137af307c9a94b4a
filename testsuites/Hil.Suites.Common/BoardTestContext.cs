using Hil.Boards;
using Hil.Qemu.Board;

namespace Hil.Suites.Common;

/// <summary>What a test body gets: a ready board, its facts, a token to pass to every board call, and a place for files.</summary>
public sealed class BoardTestContext
{
    internal BoardTestContext(LiveBoard live, int attempt, CancellationToken token, string outputDirectory)
    {
        Live = live;
        Attempt = attempt;
        Token = token;
        OutputDirectory = outputDirectory;
    }

    /// <summary>The booted session (session number, boot duration, fault injection).</summary>
    public LiveBoard Live { get; }
    /// <summary>The board: <c>Board.Shell.RunAsync</c> (console), <c>Board.Ssh.RunAsync</c>, <c>Board.Power</c>.</summary>
    public Board Board => Live.Board;
    /// <summary>QEMU specifics (image, process, thread-count record) for QEMU boards; null on real boards.</summary>
    public QemuBoardSession? Qemu => Live.Qemu;
    /// <summary>
    /// Policy and OP-TEE thread count, read on this boot of the board; in a patch run the policy is
    /// the driver under test's (<see cref="Driver"/>), not the booted driver's.
    /// </summary>
    public BoardFacts Facts => Driver is { } d ? Live.Facts with { Policy = d.Policy } : Live.Facts;

    /// <summary>The patch run's driver, swapped in for this test (null: the board's own driver).</summary>
    public ActiveDriver? Driver { get; internal set; }
    /// <summary>1, or 2 when this is the retry after an infrastructure failure.</summary>
    public int Attempt { get; }
    /// <summary>
    /// Cancelled when the board is lost (QEMU exited) or the test's time budget is spent. Pass it to
    /// every board call, so a dead board ends the test at once (as an infrastructure failure).
    /// </summary>
    public CancellationToken Token { get; }
    /// <summary>RESULTS/BOARD/SUITE/tests/TEST: files written here stay with the test's console slices.</summary>
    public string OutputDirectory { get; }

    /// <summary>
    /// Writes <paramref name="content"/> to a file in <see cref="OutputDirectory"/> and attaches it to
    /// the test result (when the attempt ends; use this rather than TestContext.AddTestAttachment,
    /// whose attachments made inside a body are discarded with its isolated result).
    /// </summary>
    public string Attach(string fileName, string content, string? description = null)
    {
        Directory.CreateDirectory(OutputDirectory);
        var suffix = Attempt == 1 ? "" : $"-attempt{Attempt}";
        var safe = SuiteResults.SafeName(fileName);
        var path = Path.Combine(OutputDirectory, Path.GetFileNameWithoutExtension(safe) + suffix + Path.GetExtension(safe));
        File.WriteAllText(path, content);
        lock (_attachments) _attachments.Add((path, description ?? fileName));
        return path;
    }

    private readonly List<(string Path, string Description)> _attachments = [];

    internal void FlushAttachments()
    {
        lock (_attachments)
        {
            foreach (var (path, description) in _attachments) TestContext.AddTestAttachment(path, description);
            _attachments.Clear();
        }
    }

    /// <summary>A line in the test's output (JUnit system-out), prefixed with the board.</summary>
    public void Note(string line) => TestContext.Out.WriteLine($"[{Live.Target.Name}] {line}");
}
