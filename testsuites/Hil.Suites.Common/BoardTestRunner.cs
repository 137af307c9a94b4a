using System.Diagnostics;
using Hil.Boards;
using Hil.Boards.Failures;
using Hil.Boards.Watch;
using NUnit.Framework.Internal;

namespace Hil.Suites.Common;

/// <summary>How one on-board test runs.</summary>
public sealed record BoardTestOptions
{
    /// <summary>Longest the body may take before it fails (a product failure: the board hung, or the test waits in vain).</summary>
    public TimeSpan Budget { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Extra attempts, each on a freshly booted board, after an infrastructure failure. Product and
    /// test failures are never retried: retrying a real bug until it passes would hide it.
    /// </summary>
    public int InfrastructureRetries { get; init; } = 1;
}

/// <summary>
/// Run-wide retry switch: <c>HIL_NO_RETRY=1</c> (set by <c>hil run --no-retry</c>) turns every
/// infrastructure retry off, so a nightly job can see each first-attempt failure as it is.
/// </summary>
public static class RetryPolicy
{
    public static bool Disabled => Environment.GetEnvironmentVariable(RetryConvention.NoRetryVariable) is "1" or "true" or "yes";

    /// <summary>Extra attempts to allow: the test's own number, or none when retries are off for the run.</summary>
    public static int Retries(BoardTestOptions options) => Disabled ? 0 : Math.Max(0, options.InfrastructureRetries);

    /// <summary>
    /// <c>HIL_TEST_BUDGET</c>: a run-wide cap on every test's budget, in seconds. A patch run sets it
    /// so that a driver that strands a caller costs minutes, not a suite's generous budgets.
    /// </summary>
    public const string BudgetCapVariable = "HIL_TEST_BUDGET";

    public static TimeSpan Budget(BoardTestOptions options) =>
        int.TryParse(Environment.GetEnvironmentVariable(BudgetCapVariable), out var s) && s > 0 && TimeSpan.FromSeconds(s) < options.Budget
            ? TimeSpan.FromSeconds(s) : options.Budget;
}

/// <summary>One attempt of a test: on which session, how it ended, and the files it left (console slices).</summary>
public sealed record AttemptRecord(int Number, int? Session, Failure? Failure, TimeSpan Duration, IReadOnlyList<string> Files)
{
    public bool Passed => Failure is null;
}

/// <summary>How an on-board test ended, over all its attempts.</summary>
public sealed record BoardTestOutcome(string Test, string Board, IReadOnlyList<AttemptRecord> Attempts)
{
    public bool Passed => Attempts.Count > 0 && Attempts[^1].Passed;
    public Failure? Failure => Attempts.Count > 0 ? Attempts[^1].Failure : null;

    /// <summary>Passed, but not at the first attempt: a flaky test or lab, never to be reported as a plain pass.</summary>
    public bool PassedOnRetry => Passed && Attempts.Count > 1;

    /// <summary>"hil: passed on retry (attempt 2 of 2); attempt 1 (session 1) failed: [infrastructure] …", one line per earlier attempt.</summary>
    public string? RetryNote => !PassedOnRetry ? null
        : $"{RetryConvention.PassedOnRetryMarker} (attempt {Attempts.Count} of {Attempts.Count}); " + string.Join("; ", Attempts.Take(Attempts.Count - 1).Select(a =>
            $"attempt {a.Number} (session {a.Session?.ToString() ?? "-"}) failed: [{FailureText.Tag(a.Failure!.Class)}] {a.Failure.Message.Split('\n')[0]}"));

    /// <summary>The failed result's message: "[class] …", evidence, and what the earlier attempts hit.</summary>
    public string? Message
    {
        get
        {
            if (Failure is not { } f) return null;
            var text = FailureText.Format(f);
            var earlier = Attempts.Take(Attempts.Count - 1).Where(a => a.Failure is not null).ToList();
            if (earlier.Count == 0) return text;
            return text + "\n" + string.Join("\n", earlier.Select(a =>
                $"attempt {a.Number} of {Attempts.Count} (session {a.Session?.ToString() ?? "-"}) also failed: [{FailureText.Tag(a.Failure!.Class)}] {a.Failure.Message}"));
        }
    }
}

/// <summary>
/// The per-test pipeline every on-board test runs through: get a ready board (a fresh one if the
/// last was lost), mark both consoles, run the body with a token that fires when the board is lost,
/// fail on console events (panic, Oops, OP-TEE abort, warning, reset), classify any failure, condemn
/// the session after an infrastructure failure, retry those only, and keep each attempt's console
/// slices as files attached to the test result.
/// </summary>
public sealed class BoardTestRunner(BoardProvider provider)
{
    // The secure console is a file QEMU writes and the link follows every 50 ms: let it catch up.
    private static readonly TimeSpan SecureConsoleSettle = TimeSpan.FromMilliseconds(150);

    public BoardProvider Provider { get; } = provider;

    /// <summary>
    /// Runs <paramref name="body"/>; never throws for a failure of the body or the board (see the
    /// outcome). <paramref name="test"/> names it in reports; a '/' in it nests its slice folder.
    /// </summary>
    public async Task<BoardTestOutcome> RunAsync(string test, Func<BoardTestContext, Task> body, BoardTestOptions options)
    {
        var outputDir = Path.Combine([Provider.SuiteDirectory, "tests", .. test.Split('/').Select(SuiteResults.SafeName)]);
        var attempts = new List<AttemptRecord>();
        var maxAttempts = 1 + RetryPolicy.Retries(options);
        for (var number = 1; number <= maxAttempts; number++)
        {
            var record = await AttemptAsync(test, number, body, options, outputDir).ConfigureAwait(false);
            attempts.Add(record);
            if (record.Failure is not { } f || !f.Retryable || number == maxAttempts) break;
            TestContext.Progress.WriteLine($"[{Provider.Target.Name}] {test}: attempt {number} failed as infrastructure ({f.Message}); retrying on a freshly booted board");
        }
        return new BoardTestOutcome(test, Provider.Target.Name, attempts);
    }

    private async Task<AttemptRecord> AttemptAsync(string test, int number, Func<BoardTestContext, Task> body, BoardTestOptions options, string outputDir)
    {
        var clock = Stopwatch.StartNew();
        LiveBoard? live = null;
        BoardTestContext? context = null;
        Slices? slices = null;
        Failure? failure = null;
        var budgetExpired = false;
        try
        {
            using var budget = new CancellationTokenSource(RetryPolicy.Budget(options));
            live = await Provider.ReadyAsync(budget.Token).ConfigureAwait(false);
            slices = Slices.Mark(live, test);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(budget.Token, live.Lost);
            context = new BoardTestContext(live, number, linked.Token, outputDir);
            // A panic, Oops, BUG or OP-TEE abort ends the body the moment the console shows it,
            // whatever transport the body waits on (an SSH command on a panicked kernel would
            // otherwise hang until its own timeout, or end as a lost connection).
            var watcher = live.Board.Watcher;
            void OnEvent(ConsoleEvent e)
            {
                if (!ConsoleWatcher.IsFatal(e)) return;
                try { linked.Cancel(); }
                catch (ObjectDisposedException) { }
            }
            watcher.EventSeen += OnEvent;
            try
            {
                // The body's NUnit assertions record into an isolated result: the outcome carries a
                // failure (with its class) and the caller reports it once; a retried attempt's
                // failed assertion must not fail the test that then passed.
                using (new TestExecutionContext.IsolatedContext())
                    await body(context).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (budget.IsCancellationRequested && live.LostReason is null)
            {
                budgetExpired = true;
                throw;
            }
            catch (SuccessException)
            {
                // Assert.Pass() ends a test successfully; it is not a failure to classify.
            }
            finally
            {
                watcher.EventSeen -= OnEvent;
            }
            // Panics, Oopses, OP-TEE aborts and warnings during the test fail it even if the body passed.
            slices.Scope.Complete();
        }
        catch (Exception ex)
        {
            var events = slices is null ? [] : await ConsoleEventsAsync(slices.Scope, ex, live).ConfigureAwait(false);
            failure = ConsoleEvents(events, ex) ?? Classify(ex, live, budgetExpired, RetryPolicy.Budget(options));
            // After an infrastructure failure the session is in an unknown state; after a panic,
            // Oops, BUG, OP-TEE abort or reset the kernel is dead or tainted: both get a fresh boot.
            // A body that ran out of time may have left callers stuck in the kernel: a fresh boot too.
            if (live is not null && (failure.Class == FailureClass.Infrastructure || events.Any(ConsoleWatcher.IsFatal) || budgetExpired))
                Provider.Condemn(live, $"{test}: {failure.Message}");
        }
        // Attachments made inside the isolated result would be lost with it: they are added here.
        context?.FlushAttachments();
        var files = slices is null ? [] : await slices.WriteAsync(outputDir, number).ConfigureAwait(false);
        return new AttemptRecord(number, live?.Session, failure, clock.Elapsed, files);
    }

    // A kernel prints its panic before the link drops, but the console may deliver those lines a
    // little after the transport error (or QEMU's exit) reached the test.
    private static readonly TimeSpan ConsoleDrain = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// The console events of the attempt. When the failure looks like the lab's (a lost board, a
    /// dropped connection) the console gets a moment to deliver what the kernel printed on its way down.
    /// </summary>
    private static async Task<IReadOnlyList<ConsoleEvent>> ConsoleEventsAsync(TestScope scope, Exception ex, LiveBoard? live)
    {
        var events = scope.Events;
        if (events.Count > 0) return events;
        var lab = live?.LostReason is not null || FailureClassifier.Classify(ex).Class == FailureClass.Infrastructure || ex is OperationCanceledException;
        if (!lab) return events;
        await Task.Delay(ConsoleDrain).ConfigureAwait(false);
        return scope.Events;
    }

    /// <summary>
    /// Console events decide the class first: a test during which the kernel panicked, Oopsed or
    /// warned, or OP-TEE aborted, failed because of the product — even when the same panic also
    /// dropped SSH or stopped the board — and the console lines are the evidence. Null when the
    /// consoles showed nothing.
    /// </summary>
    public static Failure? ConsoleEvents(IReadOnlyList<ConsoleEvent> events, Exception? ex)
    {
        if (events.Count == 0) return null;
        var first = events.FirstOrDefault(ConsoleWatcher.IsFatal) ?? events[0];
        // A body cancelled because of the event has nothing to add; any other failure is kept beside it.
        var then = ex is null or ConsoleEventException or OperationCanceledException ? "" : $"; the test then failed with: {FailureClassifier.Classify(ex).Message.Split('\n')[0]}";
        return new Failure(FailureClass.Product, $"{first}{(events.Count > 1 ? $" (+{events.Count - 1} more console events)" : "")}{then}",
            events.SelectMany(e => e.Context.Append($"=> {e}")).ToList(), false);
    }

    /// <summary>
    /// The class of a failure. A lost board makes any failure infrastructure; an NUnit assertion is
    /// the board not doing what the test expects (product) unless its message starts with a class
    /// tag ("[test] …"); a spent budget is a hang (product);
    /// everything else is classified by the board layer (its exceptions carry their class; transport
    /// errors are infrastructure; anything unexpected is a test/harness error).
    /// </summary>
    public static Failure Classify(Exception ex, LiveBoard? live, bool budgetExpired, TimeSpan budget)
    {
        var e = ex is AggregateException { InnerExceptions.Count: 1 } agg ? agg.InnerExceptions[0] : ex;
        if (live?.LostReason is { } lost)
        {
            // The board layer's own account (which boot stage, which process, its exit code) says more than "lost".
            if (e is BoardBrokenException broken) return new Failure(FailureClass.Infrastructure, broken.Message, broken.Evidence, true);
            var what = e is OperationCanceledException ? "" : $" ({FailureClassifier.Classify(e).Message})";
            return new Failure(FailureClass.Infrastructure, $"board {live.Target.Name} was lost during the test: {lost}{what}", [], true);
        }
        return e switch
        {
            IgnoreException or InconclusiveException =>
                new Failure(FailureClass.Test, $"board tests may not be ignored or left inconclusive: {e.Message}", [], false),
            // Assert.Fail("[test] …") lets a test name its own mistake; any other failed assertion is the board's.
            ResultStateException when FailureText.ClassOf(e.Message) is { } tagged =>
                new Failure(tagged, FailureText.StripTag(e.Message.Trim()), [], tagged == FailureClass.Infrastructure),
            ResultStateException => new Failure(FailureClass.Product, e.Message.Trim(), [], false),
            OperationCanceledException when budgetExpired =>
                new Failure(FailureClass.Product, $"the test did not finish within {budget.TotalSeconds:0} s: the board hung, or the test waits for something that never comes", [], false),
            _ => FailureClassifier.Classify(e),
        };
    }

    /// <summary>Where both console logs stood when an attempt began, and the board's test scope (console events).</summary>
    private sealed class Slices
    {
        private readonly Board _board;
        private readonly long _console;
        private readonly long _secure;

        private Slices(Board board, TestScope scope)
        {
            _board = board;
            Scope = scope;
            _console = board.HasConsole ? board.Console.Log.Position : 0;
            _secure = board.SecureConsole?.Log.Position ?? 0;
        }

        public TestScope Scope { get; }

        public static Slices Mark(LiveBoard live, string test) => new(live.Board, live.Board.BeginTest(test));

        /// <summary>Writes console.log / secure-console.log (…-attempt2.log for a retry) and attaches them.</summary>
        public async Task<IReadOnlyList<string>> WriteAsync(string dir, int attempt)
        {
            Directory.CreateDirectory(dir);
            if (_board.SecureConsole is not null) await Task.Delay(SecureConsoleSettle).ConfigureAwait(false);
            var suffix = attempt == 1 ? "" : $"-attempt{attempt}";
            var files = new List<string>();
            void Write(string name, Hil.Boards.Console.ConsoleLog log, long from, string description)
            {
                var to = log.Position;
                var path = Path.Combine(dir, $"{name}{suffix}.log");
                File.WriteAllBytes(path, to > from ? log.ReadRaw(from, to) : []);
                files.Add(path);
                TestContext.AddTestAttachment(path, $"{description}{(attempt == 1 ? "" : $" (attempt {attempt})")}");
            }
            if (_board.HasConsole) Write("console", _board.Console.Log, _console, "console bytes during the test");
            if (_board.SecureConsole is { } s) Write("secure-console", s.Log, _secure, "OP-TEE secure console bytes during the test");
            return files;
        }
    }
}
