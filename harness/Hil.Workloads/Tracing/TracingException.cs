using Hil.Boards.Failures;

namespace Hil.Workloads.Tracing;

/// <summary>
/// Tracing cannot be set up, or its result is unusable; the message says which step and why. A
/// test error by default (the harness cannot handle this kernel or input); the board session
/// raises infrastructure failures of its own.
/// </summary>
public class TracingException(string message, Exception? inner = null, FailureClass failureClass = FailureClass.Test)
    : HilException(failureClass, message, inner);
