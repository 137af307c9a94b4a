using Hil.Boards.Failures;
using Serilog;

namespace Hil.Boards.Leases;

/// <summary>
/// The leases of one run on all its boards. Taken in board-name order, so two runs that want
/// overlapping boards queue on the first board they share instead of each holding one board and
/// waiting for the other's (a deadlock that only the wait would end). Child processes of the run
/// (the suites' `dotnet test`) learn the leases from <see cref="ChildEnvironment"/> and check them
/// with <see cref="CheckInherited"/> rather than taking the boards again, which would fail: the
/// parent holds them.
/// </summary>
public sealed class LeaseSet : IAsyncDisposable
{
    /// <summary>BOARD=TOKEN,…: the leases a parent run holds for its children.</summary>
    public const string TokensVariable = "HIL_LEASE_TOKENS";

    private readonly List<BoardLease> _leases;
    private readonly CancellationTokenSource _anyLost;

    private LeaseSet(string folder, List<BoardLease> leases)
    {
        Folder = folder;
        _leases = leases;
        _anyLost = CancellationTokenSource.CreateLinkedTokenSource(leases.Select(l => l.Lost).ToArray());
    }

    public string Folder { get; }
    public IReadOnlyList<BoardLease> Leases => _leases;

    /// <summary>Cancelled when any of the leases is lost: the run should stop using its boards.</summary>
    public CancellationToken AnyLost => _anyLost.Token;

    /// <summary>Takes every board's lease (each waiting up to <paramref name="wait"/>); on a failure releases those already taken.</summary>
    public static async Task<LeaseSet> TakeAsync(IEnumerable<string> boards, string? leaseFolder, string owner, TimeSpan ttl, TimeSpan wait,
        ILogger logger, CancellationToken ct)
    {
        var folder = leaseFolder ?? LeaseFolder.DefaultPath();
        var taken = new List<BoardLease>();
        try
        {
            foreach (var board in boards.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
                taken.Add(await BoardLease.TakeAsync(board, folder, owner, ttl, wait, logger, ct).ConfigureAwait(false));
            return new LeaseSet(folder, taken);
        }
        catch
        {
            foreach (var lease in taken) await lease.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Variables for a child process: the lease folder and each board's token.</summary>
    public IReadOnlyDictionary<string, string> ChildEnvironment() => new Dictionary<string, string>
    {
        [LeaseFolder.Variable] = Folder,
        [TokensVariable] = string.Join(',', _leases.Select(l => $"{l.Board}={l.Token}")),
    };

    /// <summary>
    /// In a child of a run: null when no parent passed leases (the caller takes its own), true
    /// after checking that the parent's lease on <paramref name="board"/> is in force; throws
    /// (infrastructure) when the parent passed leases but not this board's, or it is no longer held.
    /// </summary>
    public static bool? CheckInherited(string board)
    {
        var tokens = Environment.GetEnvironmentVariable(TokensVariable);
        if (string.IsNullOrEmpty(tokens)) return null;
        var token = tokens.Split(',').Select(p => p.Split('=', 2)).FirstOrDefault(p => p.Length == 2 && p[0] == board)?[1];
        if (token is null) throw new InfrastructureException($"board {board}: the parent run holds no lease on it ({TokensVariable}={tokens})");
        if (!BoardLease.IsHeld(board, null, token))
            throw new InfrastructureException($"board {board}: the parent run's lease is no longer held (lease folder {LeaseFolder.DefaultPath()})");
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var lease in _leases) await lease.DisposeAsync().ConfigureAwait(false);
        _anyLost.Dispose();
    }
}
