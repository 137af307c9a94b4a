using System.Net.Sockets;
using Renci.SshNet.Common;

namespace Hil.Boards.Failures;

/// <summary>What a runner stores with a failed result: the class, a one-line message and the evidence.</summary>
public sealed record Failure(FailureClass Class, string Message, IReadOnlyList<string> Evidence, bool Retryable);

/// <summary>Maps any exception to a <see cref="Failure"/>, so results always carry a class.</summary>
public static class FailureClassifier
{
    public static Failure Classify(Exception ex)
    {
        var e = ex is AggregateException { InnerExceptions.Count: 1 } agg ? agg.InnerExceptions[0] : ex;
        return e switch
        {
            HilException h => new Failure(h.Class, h.Message, h.Evidence, h.Retryable),
            // A missing file or folder on the host is the harness's or the test's mistake, not the lab's:
            // retrying it on a fresh board would only hide it.
            FileNotFoundException or DirectoryNotFoundException or PathTooLongException or UnauthorizedAccessException
                => new Failure(FailureClass.Test, $"{e.GetType().Name}: {e.Message}", [], false),
            // Transport errors that escaped the board layer (sockets, pipes, SSH) are still the lab's fault.
            SshConnectionException or SshOperationTimeoutException or SocketException or IOException or TimeoutException
                => new Failure(FailureClass.Infrastructure, e.Message, [], true),
            _ => new Failure(FailureClass.Test, $"{e.GetType().Name}: {e.Message}", [], false),
        };
    }

    /// <summary>
    /// Runs <paramref name="action"/> and retries only retryable (infrastructure) failures, up to
    /// <paramref name="attempts"/> times in all; product and test failures surface at once.
    /// </summary>
    public static async Task<T> RetryInfrastructureAsync<T>(Func<int, Task<T>> action, int attempts, Action<int, Failure>? onRetry = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await action(attempt).ConfigureAwait(false);
            }
            catch (Exception ex) when (attempt < attempts && Classify(ex) is { Retryable: true } f)
            {
                onRetry?.Invoke(attempt, f);
            }
        }
    }
}
