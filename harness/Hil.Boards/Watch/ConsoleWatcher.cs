using System.Text.RegularExpressions;
using Hil.Boards.Console;

namespace Hil.Boards.Watch;

/// <summary>What the console showed that a test must not pass over.</summary>
public enum ConsoleEventKind { KernelPanic, Oops, KernelBug, KernelWarning, OpteePanic, OpteeAbort, UnexpectedReset }

/// <summary>One sighting, with the line that showed it and the lines around it.</summary>
public sealed record ConsoleEvent(ConsoleEventKind Kind, string Source, DateTimeOffset Time, string Line, IReadOnlyList<string> Context)
{
    public override string ToString() => $"{Kind} on {Source} at {Time:HH:mm:ss.fff}: {Line}";
}

/// <summary>
/// Watches console lines (normal world and the OP-TEE secure console) for kernel panics, Oopses,
/// BUG and WARNING reports, OP-TEE panics and aborts, and firmware banners that mean the board reset
/// under a test. Patterns are searched anywhere in a line because a kernel line may start in the
/// middle of other output. Firmware banners only count once the board is up (<see cref="ArmResetDetection"/>).
/// </summary>
public sealed partial class ConsoleWatcher
{
    private readonly Lock _lock = new();
    private readonly List<ConsoleEvent> _events = [];
    private readonly Dictionary<string, Queue<string>> _recent = [];
    private volatile bool _resetArmed;

    private static readonly (ConsoleEventKind Kind, Regex Pattern)[] Patterns =
    [
        (ConsoleEventKind.KernelPanic, KernelPanicRe()),
        (ConsoleEventKind.Oops, OopsRe()),
        (ConsoleEventKind.KernelBug, BugRe()),
        (ConsoleEventKind.KernelWarning, WarningRe()),
        (ConsoleEventKind.OpteePanic, OpteePanicRe()),
        (ConsoleEventKind.OpteeAbort, OpteeAbortRe()),
    ];

    [GeneratedRegex(@"Kernel panic - not syncing")] private static partial Regex KernelPanicRe();
    [GeneratedRegex(@"Internal error: Oops|Unable to handle kernel (NULL pointer dereference|paging request)|\bOops(: | - )")] private static partial Regex OopsRe();
    [GeneratedRegex(@"\bBUG: |kernel BUG at ")] private static partial Regex BugRe();
    [GeneratedRegex(@"\bWARNING: (CPU: \d+ PID: \d+ at |at )|------------\[ cut here \]------------")] private static partial Regex WarningRe();
    // OP-TEE core and TA logs: "E/TC:0 0 Panic at ...", "E/TC:? 0 assertion '...' failed at", "E/LD: ... panic".
    [GeneratedRegex(@"[EDIF]/(TC|TA|LD):.*(\b[Pp]anic\b|assertion .* failed)|\bTA panicked with code")] private static partial Regex OpteePanicRe();
    [GeneratedRegex(@"[EDIF]/(TC|TA):.*(\b(Data|Prefetch|Undefined|User mode|Core) (abort|data-abort|prefetch-abort)\b|\babort\b.*\bat address\b)|\bUser TA (data|prefetch)-abort")] private static partial Regex OpteeAbortRe();
    [GeneratedRegex(@"U-Boot SPL 20\d\d|U-Boot 20\d\d\.\d\d|NOTICE:\s+Booting Trusted Firmware|NOTICE:\s+BL1: |Booting Linux on physical CPU 0x0+\b")] private static partial Regex ResetBannerRe();

    /// <summary>Raised for every event as it is seen.</summary>
    public event Action<ConsoleEvent>? EventSeen;

    /// <summary>Follows a console log: every completed line is examined.</summary>
    public void Attach(ConsoleLog log, string source) => log.LineCompleted += line => Examine(source, line);

    /// <summary>From now on a firmware/boot banner is an unexpected reset (call once the shell is up).</summary>
    public void ArmResetDetection() => _resetArmed = true;

    /// <summary>During a deliberate power cycle or reboot banners are expected.</summary>
    public void DisarmResetDetection() => _resetArmed = false;

    public void Examine(string source, ConsoleLine line)
    {
        ConsoleEvent? seen = null;
        lock (_lock)
        {
            if (!_recent.TryGetValue(source, out var recent)) _recent[source] = recent = new Queue<string>();
            recent.Enqueue(line.Text);
            while (recent.Count > 12) recent.Dequeue();
            foreach (var (kind, re) in Patterns)
            {
                if (!re.IsMatch(line.Text)) continue;
                seen = new ConsoleEvent(kind, source, line.Time, line.Text, recent.ToList());
                break;
            }
            if (seen is null && _resetArmed && ResetBannerRe().IsMatch(line.Text))
                seen = new ConsoleEvent(ConsoleEventKind.UnexpectedReset, source, line.Time, line.Text, recent.ToList());
            if (seen is not null) _events.Add(seen);
        }
        if (seen is not null) EventSeen?.Invoke(seen);
    }

    /// <summary>
    /// Withdraws events that turned out to be a command's own output (a test that greps old logs
    /// for "Oops" is not an Oops): the console shell knows, after the fact, which lines were output.
    /// </summary>
    public int Forget(Func<ConsoleEvent, bool> isOutput, int fromMark)
    {
        lock (_lock)
        {
            var removed = 0;
            for (var i = _events.Count - 1; i >= fromMark; i--)
            {
                if (!isOutput(_events[i])) continue;
                _events.RemoveAt(i);
                removed++;
            }
            return removed;
        }
    }

    /// <summary>Number of events so far: a mark a test scope remembers at its start.</summary>
    public int Count
    {
        get { lock (_lock) return _events.Count; }
    }

    public IReadOnlyList<ConsoleEvent> Since(int mark)
    {
        lock (_lock) return _events.Skip(mark).ToList();
    }

    /// <summary>Events that end a test at once (a warning is reported at the end of the test instead).</summary>
    public static bool IsFatal(ConsoleEvent e) => e.Kind is not ConsoleEventKind.KernelWarning;
}
