namespace Hil.Suites.Common;

/// <summary>
/// Base of every on-board suite fixture. The fixture runs once per selected board; each test runs
/// its body through <see cref="OnBoardAsync"/>, which hands it a ready board and takes care of
/// fresh boots, retries of infrastructure failures, the failure class in the message and the
/// per-test console slices.
/// <code>
/// [TestFixtureSource(typeof(BoardSelection), nameof(BoardSelection.Fixtures))]
/// public sealed class MySuite(BoardTarget target) : BoardSuite(target)
/// {
///     [Test]
///     public Task TeeDeviceIsThere() => OnBoardAsync(async t =>
///     {
///         var r = await t.Board.Shell.RunAsync("test -c /dev/tee0", ct: t.Token);
///         Assert.That(r.ExitCode, Is.Zero, r.Output);
///     });
/// }
/// </code>
/// An NUnit assertion that fails is a product failure; throw <c>TestErrorException</c> for a test's
/// own mistake. Board-layer exceptions carry their class already.
/// </summary>
public abstract class BoardSuite(BoardTarget target)
{
    // Shared with the other fixtures of this board and released (not disposed) here: the registry
    // disposes it when its last user is done.
#pragma warning disable NUnit1032
    private BoardProvider? _provider;
#pragma warning restore NUnit1032

    /// <summary>The board this fixture instance runs on.</summary>
    public BoardTarget Target { get; } = target;

    /// <summary>This suite's short name ("smoke", "system-threads"): folders and reports use it.</summary>
    public string SuiteName => SuiteResults.SuiteNameOf(GetType().Assembly);

    /// <summary>This board's provider: current session, all sessions, console events, results folders.</summary>
    protected BoardProvider Boards => _provider ?? throw new InvalidOperationException("the board is only available inside tests (after OneTimeSetUp)");

    /// <summary>RESULTS/BOARD/SUITE for this fixture.</summary>
    protected string ResultsDirectory => Boards.SuiteDirectory;

    [OneTimeSetUp]
    public void AcquireBoard() => _provider = BoardProviders.Acquire(Target, SuiteName);

    [OneTimeTearDown]
    public async Task ReleaseBoardAsync()
    {
        if (_provider is { } p) await BoardProviders.ReleaseAsync(p);
    }

    /// <summary>
    /// Runs the current test's body on a ready board; a failure fails the test with
    /// "[infrastructure] …", "[product] …" or "[test] …" (infrastructure failures are retried once on
    /// a freshly booted board first).
    /// </summary>
    protected async Task OnBoardAsync(Func<BoardTestContext, Task> body, BoardTestOptions? options = null)
    {
        var outcome = await new BoardTestRunner(Boards).RunAsync(TestName, WithDriver(body), options ?? new BoardTestOptions());
        if (!outcome.Passed) Assert.Fail(outcome.Message ?? "[test] the test failed without a message");
        // A pass on a retry is not a plain pass: JUnit/NUnit XML and TRX carry the line in the
        // test's output, the progress shows it live, and hil run counts such tests as flaky.
        if (outcome.RetryNote is { } note)
        {
            TestContext.Out.WriteLine($"[{Target.Name}] {note}");
            TestContext.Progress.WriteLine($"[{Target.Name}] {TestContext.CurrentContext.Test.Name}: {note}");
        }
    }

    /// <summary>
    /// Runs a body through the same pipeline without failing the current test: for tests about the
    /// pipeline itself (fault injection). Its slices go to tests/CURRENT-TEST/<paramref name="name"/>.
    /// </summary>
    protected Task<BoardTestOutcome> RunOnBoardAsync(string name, Func<BoardTestContext, Task> body, BoardTestOptions? options = null) =>
        new BoardTestRunner(Boards).RunAsync($"{TestName}/{name}", WithDriver(body), options ?? new BoardTestOptions());

    /// <summary>The test's name in results; under its driver's folder in a patch run, so drivers never share files.</summary>
    private string TestName => Target.Driver is { } d ? $"{d.Name}/{TestContext.CurrentContext.Test.Name}" : TestContext.CurrentContext.Test.Name;

    /// <summary>In a patch run the fixture's driver is swapped in (if it is not already) before the body, inside the test's budget and verdict.</summary>
    private Func<BoardTestContext, Task> WithDriver(Func<BoardTestContext, Task> body) => Target.Driver is not { } driver ? body : async t =>
    {
        t.Driver = await DriverActivation.EnsureAsync(t, driver, Boards.Log).ConfigureAwait(false);
        t.Note(t.Driver.SwapNote);
        await body(t).ConfigureAwait(false);
    };
}
