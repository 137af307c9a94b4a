namespace Hil.Boards.Failures;

/// <summary>
/// A failure that knows its class. Every failure the board layer raises on purpose is one of these,
/// so a runner never has to guess from an exception type whether a retry makes sense.
/// </summary>
public class HilException : Exception
{
    public HilException(FailureClass failureClass, string message, Exception? inner = null, IReadOnlyList<string>? evidence = null)
        : base(message, inner)
    {
        Class = failureClass;
        Evidence = evidence ?? [];
    }

    public FailureClass Class { get; }

    /// <summary>Console lines or other facts that show what happened (printed with the failure).</summary>
    public IReadOnlyList<string> Evidence { get; }

    /// <summary>Only infrastructure failures are worth a retry; a few of them (a changed host key) are not either.</summary>
    public virtual bool Retryable => Class == FailureClass.Infrastructure;
}

/// <summary>The lab let us down: the caller may retry on another attempt or another board.</summary>
public class InfrastructureException(string message, Exception? inner = null, IReadOnlyList<string>? evidence = null)
    : HilException(FailureClass.Infrastructure, message, inner, evidence);

/// <summary>The board misbehaved; the evidence says how.</summary>
public class ProductFailureException(string message, IReadOnlyList<string>? evidence = null, Exception? inner = null)
    : HilException(FailureClass.Product, message, inner, evidence);

/// <summary>The test or harness is wrong (bad input, bad use of the API).</summary>
public class TestErrorException(string message, Exception? inner = null)
    : HilException(FailureClass.Test, message, inner);

/// <summary>A console link (serial, TCP, unix socket) is gone and did not come back in time.</summary>
public sealed class LinkLostException(string message, Exception? inner = null) : InfrastructureException(message, inner);

/// <summary>The board session could not be brought back to a known state; every later use fails fast.</summary>
public sealed class BoardBrokenException(string message, Exception? inner = null, IReadOnlyList<string>? evidence = null)
    : InfrastructureException(message, inner, evidence);

/// <summary>
/// An SSH host key did not match what the board file (or known_hosts) pins. Infrastructure, but never
/// retried: a changed key stays changed, and silently retrying would hide a possible impostor.
/// </summary>
public sealed class HostKeyRejectedException(string message) : InfrastructureException(message)
{
    public override bool Retryable => false;
}

/// <summary>A command did not finish in time; the shell was interrupted and resynchronised.</summary>
public sealed class CommandTimeoutException(string command, TimeSpan timeout, FailureClass failureClass, string detail)
    : HilException(failureClass, $"command timed out after {timeout.TotalSeconds:0.###} s: {command} ({detail})")
{
    public string Command { get; } = command;
    public TimeSpan Timeout { get; } = timeout;
}

/// <summary>The console showed a kernel panic, Oops, OP-TEE panic, unexpected reset, ...</summary>
public sealed class ConsoleEventException(string message, IReadOnlyList<string> evidence)
    : ProductFailureException(message, evidence);
