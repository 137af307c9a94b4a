namespace Hil.Suites.Common;

/// <summary>
/// The NUnit category of the tests a patch run runs on every driver: each makes the driver take a
/// path of the call queue and judges the trace by the model. Tests about the harness itself (a
/// wrong model forced on purpose) or long general workloads stay out, so a driver costs ~a minute.
/// </summary>
public static class CallQueueCategory
{
    public const string Name = Hil.Patches.DriverManifest.SuiteCategory;
}
