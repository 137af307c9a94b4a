using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Hil.Boards.Leases;
using Hil.Qemu.Board;
using Serilog;

namespace Hil.Suites.Common;

/// <summary>
/// The leases a suite process needs before it touches a board. Under `hil run` the parent holds
/// them and passes their tokens (LeaseSet.ChildEnvironment): the suite only checks they are still in
/// force at every boot. Run directly (`dotnet test`), the suite takes them itself — all the leased
/// boards of its selection at once, in name order (LeaseSet), the first time any is needed, and
/// keeps them while any of the process's providers that needed them is open; the last one to
/// close releases them (the process-exit hook is only a backstop: a test host may be killed before
/// it runs). Taking them one board at a time, each held to the end of the assembly, would let two
/// suite assemblies each hold one board and wait for the other's (they run in parallel); in name
/// order, and holding nothing while waiting, they queue on the first board they share instead.
/// Private QEMU boards need no lease (see BoardLeasing), so CI's parallel QEMU suites never wait
/// for each other.
/// </summary>
internal static class SuiteLeases
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static LeaseSet? _own;
    private static readonly HashSet<object> Users = [];
    private static bool _exitHook;

    /// <summary>Before a boot of <paramref name="spec"/>'s board: returns once this process may use it; throws (infrastructure) when it may not.</summary>
    public static async Task EnsureAsync(BoardSpec spec, object user, ILogger log, CancellationToken ct)
    {
        if (!BoardLeasing.NeedsLease(spec)) return;
        if (LeaseSet.CheckInherited(spec.Name) is true) return;
        await Gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            Users.Add(user);
            if (_own is null)
            {
                QemuBoards.Register();
                var boards = BoardSelection.Targets().Where(t => t.IsValid).Select(t => TryLoad(t.BoardFile))
                    .OfType<BoardSpec>().Where(BoardLeasing.NeedsLease).Select(s => s.Name).Append(spec.Name);
                _own = await LeaseSet.TakeAsync(boards, null, BoardLease.DefaultOwner, BoardLeasing.Ttl, BoardLeasing.DefaultWait, log, ct).ConfigureAwait(false);
                // Backstop for a host ending with providers still open; should it be killed instead, its
                // pid is seen gone and the board taken over at once (on another host: after the ttl).
                if (!_exitHook) AppDomain.CurrentDomain.ProcessExit += (_, _) => _own?.DisposeAsync().AsTask().GetAwaiter().GetResult();
                _exitHook = true;
            }
        }
        finally
        {
            Gate.Release();
        }
        ThrowIfLost(spec.Name);
    }

    /// <summary>Another board's broken file is that board's failure, reported when its own fixture boots it: it does not stop this one.</summary>
    private static BoardSpec? TryLoad(string file)
    {
        try
        {
            return BoardFileLoader.Load(file);
        }
        catch (BoardFileException)
        {
            return null;
        }
    }

    /// <summary>A provider closed: when it was the last that needed the leases, they are released.</summary>
    public static async Task ClosedAsync(object user)
    {
        await Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!Users.Remove(user) || Users.Count > 0 || _own is not { } own) return;
            _own = null;
            await own.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>Before each test: a lease this process took and lost means the board may be someone else's now.</summary>
    public static void ThrowIfLost(string board)
    {
        if (_own?.Leases.FirstOrDefault(l => l.Board == board) is { } lease) lease.ThrowIfLost();
    }
}
