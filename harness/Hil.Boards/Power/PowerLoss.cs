namespace Hil.Boards.Power;

/// <summary>
/// The board lost power without the harness switching it off: the process that is its power (QEMU,
/// a power daemon's child) ended on its own — at start (a missing file, a bad option) or mid-test
/// (a crash, a kill). Carries the exit code and the last lines of the process's error output,
/// because that is where the cause is written.
/// </summary>
public sealed record PowerLoss(string Process, int ExitCode, IReadOnlyList<string> StderrTail, DateTimeOffset At)
{
    /// <summary>One line: "QEMU pid 123 exited with code 1: qemu-system-aarch64: …" (stderr lines joined with " | ").</summary>
    public override string ToString() =>
        $"{Process} exited with code {ExitCode}" + (StderrTail.Count > 0 ? ": " + string.Join(" | ", StderrTail) : " (nothing on its stderr)");

    /// <summary>The last non-empty lines of a process's error output.</summary>
    public static IReadOnlyList<string> Tail(string stderr, int lines = 4) =>
        stderr.Split('\n').Select(l => l.TrimEnd('\r').Trim()).Where(l => l.Length > 0).TakeLast(lines).ToList();
}

/// <summary>
/// A power driver that knows when the board lost power on its own: its power is a process it runs.
/// The event fires as soon as that process ends without the driver having been told to switch off
/// (a deliberate off or cycle never raises it), so a boot or a test waiting on the board ends at once
/// instead of after its timeout.
/// </summary>
public interface IPowerLossSource
{
    event Action<PowerLoss>? PowerLost;
}
