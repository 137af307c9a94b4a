using System.Globalization;
using Hil.Boards.Failures;
using Serilog;

namespace Hil.Boards.Leases;

/// <summary>
/// An exclusive lease on one board, so that two runs (two `hil run` processes, on this host or on
/// hosts sharing the lease folder) never use a board at once. The lease is a file per board
/// (<see cref="LeaseFolder"/>) naming its holder and expiry; the holder renews it every ttl/3 while
/// it lives and deletes it on <see cref="DisposeAsync"/>. A lease is taken over when it expired, or
/// at once when its holder is provably dead (same host: pid gone, pid reused, or host rebooted).
/// <code>
/// await using var lease = await BoardLease.TakeAsync(spec.Name, null, BoardLease.DefaultOwner, TimeSpan.FromSeconds(30),
///     TimeSpan.FromMinutes(10), log, ct);
/// </code>
/// </summary>
public sealed class BoardLease : IAsyncDisposable, IDisposable
{
    private readonly LeaseFolder _folder;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _lost = new();
    private volatile LeaseRecord _record;
    private volatile string? _lostReason;
    private Task _renewal = Task.CompletedTask;
    private int _disposed;

    private BoardLease(LeaseFolder folder, LeaseRecord record, ILogger log)
    {
        _folder = folder;
        _record = record;
        _log = log;
    }

    /// <summary>The user leases are taken for by default: the one behind sudo, else the account running.</summary>
    public static string DefaultOwner => LeaseHolder.DefaultOwner();

    public string Board => _record.Board;
    public string File => _folder.LeaseFile(_record.Board);
    public LeaseHolder Holder => _record.Holder;

    /// <summary>New at every take: what tells this lease's file from a later one of the same process.</summary>
    public string Token => _record.Token;

    public DateTimeOffset ExpiresUtc => _record.ExpiresUtc;

    /// <summary>Why the lease was lost (taken over after a renewal came too late), or null while it is held.</summary>
    public string? LostReason => _lostReason;

    /// <summary>Cancelled the moment the lease is lost: whoever uses the board should stop.</summary>
    public CancellationToken Lost => _lost.Token;

    /// <summary>Throws (infrastructure) if the lease was lost: the board may be in someone else's hands now.</summary>
    public void ThrowIfLost()
    {
        if (_lostReason is { } why) throw new InfrastructureException(why);
    }

    /// <summary>
    /// Takes the exclusive lease on <paramref name="board"/> in <paramref name="leaseFolder"/> (null:
    /// <see cref="LeaseFolder.DefaultPath"/>), waiting up to <paramref name="wait"/> for a live holder
    /// to let go. Errors, each one line: the board still held after the wait (infrastructure, naming
    /// the holder and its expiry), a corrupt lease file changed within the ttl (infrastructure, naming
    /// file and field), a folder that cannot be written (test error: the setup is wrong, a retry would
    /// repeat it).
    /// </summary>
    public static async Task<BoardLease> TakeAsync(string board, string? leaseFolder, string owner, TimeSpan ttl, TimeSpan wait,
        ILogger logger, CancellationToken ct)
    {
        LeaseFolder.CheckBoardName(board);
        if (ttl < TimeSpan.FromMilliseconds(100) || ttl > LeaseRecord.MaxTtl)
            throw new TestErrorException($"lease ttl {ttl.TotalSeconds} s: must be between 0.1 s and {LeaseRecord.MaxTtl.TotalHours:0} h");
        if (wait < TimeSpan.Zero) throw new TestErrorException($"lease wait {wait.TotalSeconds} s: must not be negative");
        if (string.IsNullOrWhiteSpace(owner)) throw new TestErrorException("lease owner: empty");
        var log = logger.ForContext<BoardLease>();
        var folder = new LeaseFolder(leaseFolder ?? LeaseFolder.DefaultPath());
        folder.Ensure();
        var me = LeaseHolder.Current(owner.Trim());
        var token = Guid.NewGuid().ToString("N");
        var deadline = DateTimeOffset.UtcNow + wait;
        var poll = TimeSpan.FromMilliseconds(Math.Clamp(ttl.TotalMilliseconds / 10, 20, 250));
        string? waitingFor = null; // whom we are waiting for, so that the log says so once per holder, not once per poll
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var lockDeadline = Max(deadline, DateTimeOffset.UtcNow + TimeSpan.FromSeconds(2));
            var (taken, busy, holderKey) = await folder.UnderLockAsync(board, lockDeadline, () => TryTake(folder, board, me, token, ttl, log), ct)
                .ConfigureAwait(false);
            if (taken is not null)
            {
                log.Information("board {Board}: lease taken by {Holder} until {Expires} ({File})", board, me.ToString(), Stamp(taken.ExpiresUtc),
                    folder.LeaseFile(board));
                var lease = new BoardLease(folder, taken, log);
                lease._renewal = Task.Run(lease.RenewLoopAsync, CancellationToken.None);
                return lease;
            }
            if (DateTimeOffset.UtcNow >= deadline)
                throw new InfrastructureException($"{busy}; gave up after waiting {wait.TotalSeconds:0.#} s");
            if (holderKey != waitingFor)
            {
                waitingFor = holderKey;
                log.Information("{Busy}: waiting up to {Seconds:0.#} s", busy, (deadline - DateTimeOffset.UtcNow).TotalSeconds);
            }
            var left = deadline - DateTimeOffset.UtcNow;
            await Task.Delay(left < poll ? Max(left, TimeSpan.Zero) : poll + TimeSpan.FromMilliseconds(Random.Shared.Next(20)), ct).ConfigureAwait(false);
        }
    }

    /// <summary>One attempt, under the board's lock: the new lease, or why the board is not free and who (or what) holds it.</summary>
    private static (LeaseRecord? Taken, string? Busy, string? HolderKey) TryTake(LeaseFolder folder, string board, LeaseHolder me, string token, TimeSpan ttl, ILogger log)
    {
        var now = DateTimeOffset.UtcNow;
        var state = folder.Read(board, now);
        var file = folder.LeaseFile(board);
        if (state.Corrupt is { } corrupt)
        {
            // A corrupt file was never written by a lease holder (they replace files atomically) and no
            // holder has renewed over it. It blocks the board until it has been left alone for the ttl:
            // long enough that a holder would have rewritten it (it renews at a third of its ttl, the
            // same as ours when everyone uses hil run's ttl), short enough that tampering cannot block a
            // board for good.
            var age = now - new DateTimeOffset(state.WrittenUtc, TimeSpan.Zero);
            if (age <= ttl)
                return (null, $"{corrupt.Message} (changed {age.TotalSeconds:0.#} s ago: taken over only once unchanged for the ttl, {ttl.TotalSeconds:0.#} s)",
                    corrupt.Message);
            log.Warning("board {Board}: taking over {Problem}; unchanged for {Age:0.#} s, longer than the ttl ({Ttl:0.#} s)",
                board, corrupt.Message, age.TotalSeconds, ttl.TotalSeconds);
        }
        else if (state.Lease is { } held)
        {
            var why = now > held.ExpiresUtc ? $"expired at {Stamp(held.ExpiresUtc)}" : held.Holder.WhyDead();
            if (why is null) return (null, $"board {board} is leased by {held.Holder} until {Stamp(held.ExpiresUtc)} ({file})", held.Token);
            log.Warning("board {Board}: taking over the lease of {Holder} (taken {Taken}, expires {Expires}): {Why}",
                board, held.Holder.ToString(), Stamp(held.TakenUtc), Stamp(held.ExpiresUtc), why);
        }
        var lease = new LeaseRecord(board, me, token, now, now, now + ttl, ttl);
        folder.Write(lease);
        return (lease, null, null);
    }

    /// <summary>Renews every ttl/3, so two renewals may fail (a slow disk, a busy machine) before the lease expires.</summary>
    private async Task RenewLoopAsync()
    {
        using var timer = new PeriodicTimer(_record.Ttl / 3);
        try
        {
            while (_lostReason is null && await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                try
                {
                    await _folder.UnderLockAsync(Board, DateTimeOffset.UtcNow + _record.Ttl / 3, RenewOnce, _stop.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // Whatever went wrong, the loop must go on: the next tick may succeed, and a dead
                    // renewal task would let the lease expire silently under a run that still uses the board.
                    _log.Warning("board {Board}: renewing the lease failed: {Message}", Board, ex.Message);
                    if (DateTimeOffset.UtcNow > _record.ExpiresUtc)
                        MarkLost($"board {Board}: the lease expired at {Stamp(_record.ExpiresUtc)} and could not be renewed: {ex.Message}");
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }

    private bool RenewOnce()
    {
        var now = DateTimeOffset.UtcNow;
        var current = _record;
        var state = _folder.Read(Board, now);
        if (state.Lease is { } held && held.Token != current.Token)
        {
            MarkLost($"board {Board}: lease lost: taken over by {held.Holder} at {Stamp(held.TakenUtc)} (ours expired at {Stamp(current.ExpiresUtc)})");
            return false;
        }
        if (state.Lease is null)
        {
            // Missing or corrupt: nobody took the board under the protocol. While our lease has not
            // expired no one else could have, so writing it again is safe; after that, someone may
            // have taken and released it in between, and the board can no longer be vouched for.
            var what = state.Corrupt is { } c ? c.Message : $"lease file {File} was deleted";
            if (now > current.ExpiresUtc)
            {
                MarkLost($"board {Board}: lease lost: {what}, and ours expired at {Stamp(current.ExpiresUtc)} before it was renewed");
                return false;
            }
            _log.Warning("board {Board}: {What} while held by {Holder}: written again", Board, what, current.Holder.ToString());
        }
        else if (now > current.ExpiresUtc)
        {
            _log.Warning("board {Board}: lease renewed late ({Late:0.###} s after it expired; nobody took it meanwhile)", Board,
                (now - current.ExpiresUtc).TotalSeconds);
        }
        var renewed = current with { RenewedUtc = now, ExpiresUtc = now + current.Ttl };
        _folder.Write(renewed);
        _record = renewed;
        return true;
    }

    private void MarkLost(string reason)
    {
        _lostReason = reason;
        _log.Error("{Reason}", reason);
        _lost.Cancel();
    }

    /// <summary>
    /// True when <paramref name="board"/>'s lease file in <paramref name="leaseFolder"/> holds
    /// <paramref name="token"/> and has not expired: how a child process (a suite run by `hil run`)
    /// checks that the lease its parent took is still in force.
    /// </summary>
    public static bool IsHeld(string board, string? leaseFolder, string token)
    {
        LeaseFolder.CheckBoardName(board);
        var now = DateTimeOffset.UtcNow;
        var state = new LeaseFolder(leaseFolder ?? LeaseFolder.DefaultPath()).Read(board, now);
        return state.Lease is { } held && held.Token == token && held.ExpiresUtc >= now;
    }

    /// <summary>Stops renewing and deletes the lease file if it is still ours (never someone else's).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stop.Cancel();
        await _renewal.ConfigureAwait(false);
        try
        {
            await _folder.UnderLockAsync(Board, DateTimeOffset.UtcNow + TimeSpan.FromSeconds(5), () =>
            {
                var state = _folder.Read(Board, DateTimeOffset.UtcNow);
                if (state.Lease is { } held && held.Token == Token)
                {
                    _folder.Delete(Board);
                    _log.Information("board {Board}: lease released by {Holder}", Board, Holder.ToString());
                }
                else if (state.Lease is { } other)
                {
                    _log.Warning("board {Board}: lease not released: it is now held by {Other}", Board, other.Holder.ToString());
                }
                return true;
            }, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HilException or IOException or UnauthorizedAccessException)
        {
            // Releasing is a courtesy: an unreleased lease expires after its ttl anyway.
            _log.Warning("board {Board}: releasing the lease failed (it expires at {Expires}): {Message}", Board, Stamp(ExpiresUtc), ex.Message);
        }
        // _lost stays undisposed: callers may still hold its token (a CTS without timers owns nothing).
        _stop.Dispose();
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;
    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    internal static string Stamp(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
}
