namespace Hil.Boards.Failures;

/// <summary>
/// What the suites and the <c>hil</c> CLI agree on about retries (the CLI runs the suites in another
/// process): the variable that turns retries off for a run, and the line a test that passed only on
/// a retry writes to its output, which reports and the CLI's summary look for.
/// </summary>
public static class RetryConvention
{
    /// <summary>"1" turns every infrastructure retry off (<c>hil run --no-retry</c>).</summary>
    public const string NoRetryVariable = "HIL_NO_RETRY";

    public const string PassedOnRetryMarker = "hil: passed on retry";
}
