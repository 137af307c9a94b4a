using Hil.Boards.BoardFiles;
using Hil.Boards.Console;
using Hil.Boards.Failures;
using Serilog;

namespace Hil.Boards.Links;

/// <summary>
/// A console link that survives its device: one background pump reads every byte into the console
/// log (first, flushed) and the <see cref="ConsoleBuffer"/>; when the device disappears (a USB
/// adapter re-enumerating on a power cycle, ser2net restarting, QEMU restarting) it reopens it as
/// soon as it is back. Writers wait for the link up to the reconnect timeout, then fail as
/// infrastructure.
/// </summary>
public sealed class ConsoleLink : IAsyncDisposable
{
    private readonly IConsoleEndpoint _endpoint;
    private readonly ConsoleLog _log;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Lock _stateLock = new();
    // Reading and recording one chunk is atomic, so that the pump and a waiting reader never reorder bytes.
    private readonly Lock _readLock = new();
    // While a caller reads inline, the pump leaves the device alone (else it could take the bytes
    // between the caller's check and its poll, and the caller would sleep through them).
    private int _inlineReaders;
    private readonly ManualResetEventSlim _noInlineReaders = new(true);
    private IConsoleTransport? _transport;
    private TaskCompletionSource<IConsoleTransport> _connected = NewConnected();
    private Task? _pump;

    private static TaskCompletionSource<IConsoleTransport> NewConnected() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ConsoleLink(IConsoleEndpoint endpoint, ConsoleLog log, ILogger logger, ConsoleLinkOptions? options = null)
    {
        _endpoint = endpoint;
        _log = log;
        _logger = logger.ForContext("Console", endpoint.Address);
        Options = options ?? new ConsoleLinkOptions();
    }

    /// <summary>Builds the endpoint a board file's console entry names.</summary>
    public static IConsoleEndpoint EndpointFor(ConsoleSpec spec) => spec.Kind switch
    {
        ConsoleKind.Tcp => SocketEndpoint.Tcp(spec.Host!, spec.Port),
        ConsoleKind.Telnet => new TelnetEndpoint(spec.Host!, spec.Port, spec.BaudGiven ? spec.Baud : null),
        ConsoleKind.UnixSocket => SocketEndpoint.Unix(spec.Address),
        ConsoleKind.File => new FollowedFileEndpoint(spec.Address),
        _ => new SerialDeviceEndpoint(spec.Address, spec.Baud),
    };

    public static ConsoleLinkOptions OptionsFor(ConsoleSpec spec) => new()
    {
        ReconnectTimeout = spec.ReconnectTimeout,
        TxChunk = spec.TxChunk,
        TxDelay = spec.TxDelay,
    };

    public ConsoleLinkOptions Options { get; }
    public string Address => _endpoint.Address;
    public ConsoleBuffer Buffer { get; } = new();
    public ConsoleLog Log => _log;

    public bool IsConnected
    {
        get { lock (_stateLock) return _transport is not null; }
    }

    /// <summary>Counts openings of the device: a shell set up under one generation may be gone in the next.</summary>
    public int Generation { get; private set; }

    /// <summary>How often the device came back after being lost.</summary>
    public int Reconnects { get; private set; }

    /// <summary>Raised when the device came back (the shell on it may need a new login).</summary>
    public event Action? Reconnected;

    /// <summary>Raised when the device went away.</summary>
    public event Action<string>? Lost;

    /// <summary>Starts the pump and waits until the device is open (up to the reconnect timeout).</summary>
    public async Task OpenAsync(CancellationToken ct)
    {
        // A dedicated thread for the pump's whole life: tty and socket reads block in poll(2). It
        // never awaits, so it never moves to (and blocks) a thread-pool thread: on a 2-core host
        // the pool starts with two, and two boards' console pumps would hold both.
        _pump ??= Task.Factory.StartNew(Pump, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await WaitConnectedAsync(Options.ReconnectTimeout, ct).ConfigureAwait(false);
    }

    /// <summary>Waits for the device (up to the reconnect timeout); fails as infrastructure if it stays away.</summary>
    public Task WaitConnectedAsync(CancellationToken ct) => WaitConnectedAsync(Options.ReconnectTimeout, ct);

    private async Task<IConsoleTransport> WaitConnectedAsync(TimeSpan timeout, CancellationToken ct)
    {
        Task<IConsoleTransport> wait;
        lock (_stateLock) wait = _connected.Task;
        try
        {
            return await wait.WaitAsync(timeout, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new LinkLostException($"console {Address} is not reachable (waited {timeout.TotalSeconds:0} s)");
        }
    }

    /// <summary>Sends bytes, paced in chunks when the board file asks (slow UART receivers drop input).</summary>
    public async Task WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        if (!_endpoint.CanWrite) throw new TestErrorException($"console {Address} is read-only");
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            while (data.Length > 0)
            {
                var transport = await WaitConnectedAsync(Options.ReconnectTimeout, ct).ConfigureAwait(false);
                var n = Math.Min(data.Length, Options.TxChunk);
                try
                {
                    await transport.WriteAsync(data[..n], ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or TimeoutException or System.Net.Sockets.SocketException or ObjectDisposedException or OperationCanceledException && !ct.IsCancellationRequested)
                {
                    // Let the pump notice and reconnect; the caller decides whether to resend.
                    MarkLost(transport, ex.Message);
                    throw new LinkLostException($"console {Address}: write failed: {ex.Message}", ex);
                }
                data = data[n..];
                if (data.Length > 0 && Options.TxDelay > TimeSpan.Zero) await Task.Delay(Options.TxDelay, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public Task WriteAsync(string text, CancellationToken ct) => WriteAsync(System.Text.Encoding.UTF8.GetBytes(text), ct);

    private void Pump()
    {
        var buf = new byte[16 * 1024];
        var everConnected = false;
        var delay = TimeSpan.FromMilliseconds(50);
        while (!_stop.IsCancellationRequested)
        {
            IConsoleTransport transport;
            try
            {
                transport = _endpoint.OpenAsync(_stop.Token).GetAwaiter().GetResult();
            }
            catch (Exception) when (!_stop.IsCancellationRequested)
            {
                // Not there (yet): poll quickly at first, then at most twice a second.
                _stop.Token.WaitHandle.WaitOne(delay);
                delay = TimeSpan.FromMilliseconds(Math.Min(500, delay.TotalMilliseconds * 2));
                continue;
            }
            catch (OperationCanceledException)
            {
                break;
            }
            var openedAt = System.Diagnostics.Stopwatch.StartNew();
            lock (_stateLock)
            {
                _transport = transport;
                Generation++;
                _connected.TrySetResult(transport);
            }
            if (everConnected)
            {
                Reconnects++;
                _logger.Information("console {Address} is back (reconnect {Count})", Address, Reconnects);
                Reconnected?.Invoke();
            }
            everConnected = true;
            string reason;
            try
            {
                if (transport is IPollableTransport pollable)
                {
                    while (true)
                    {
                        _stop.Token.ThrowIfCancellationRequested();
                        if (Volatile.Read(ref _inlineReaders) > 0)
                        {
                            _noInlineReaders.Wait(200, _stop.Token);
                            continue;
                        }
                        if (!pollable.WaitReadable(200)) continue;
                        lock (_readLock)
                        {
                            if (_inlineReaders > 0) continue;
                            var n = pollable.ReadAvailable(buf);
                            if (n > 0) Record(buf.AsSpan(0, n));
                        }
                    }
                }
                while (true)
                {
                    // Not pollable (a followed file): its reads are asynchronous; waiting on them here keeps the pump on its own thread.
                    var n = transport.ReadAsync(buf, _stop.Token).AsTask().GetAwaiter().GetResult();
                    if (n == 0)
                    {
                        reason = "closed by the other end";
                        break;
                    }
                    Record(buf.AsSpan(0, n));
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                reason = ex.Message;
            }
            MarkLost(transport, reason);
            // A console server whose device is absent (ser2net with the board off: "Device open
            // failure", then close) accepts and drops every connection at once. Such short-lived
            // connections back off like refused ones, instead of spinning; a connection that lived
            // is followed by an immediate reconnect (a ser2net restart costs no extra wait).
            if (openedAt.Elapsed < TimeSpan.FromSeconds(1))
            {
                _stop.Token.WaitHandle.WaitOne(delay);
                delay = TimeSpan.FromMilliseconds(Math.Min(500, delay.TotalMilliseconds * 2));
            }
            else delay = TimeSpan.FromMilliseconds(50);
        }
        lock (_stateLock)
        {
            if (_transport is { } t) _ = t.DisposeAsync().AsTask();
            _transport = null;
        }
    }

    // Log first: the log must hold every byte even if a consumer throws.
    private void Record(ReadOnlySpan<byte> data)
    {
        _log.Append(data);
        Buffer.Append(data);
    }

    /// <summary>
    /// Waits until bytes beyond <paramref name="offset"/> have arrived or <paramref name="timeout"/>
    /// passed. On a pollable device the calling thread reads (and logs) them itself, so the kernel
    /// wakes it directly; the pump keeps reading whenever nobody waits.
    /// </summary>
    public async Task WaitForDataAsync(long offset, TimeSpan timeout, CancellationToken ct)
    {
        IConsoleTransport? transport;
        lock (_stateLock) transport = _transport;
        if (transport is not IPollableTransport pollable)
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(timeout);
            try
            {
                await Buffer.WaitBeyondAsync(offset, cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
            }
            return;
        }
        // The wait below polls the device synchronously (one wake-up per answer is what makes the
        // console shell fast); it must not run on the caller's thread, or an async caller would only
        // get its task back once the data came (a test could not act while a command runs).
        await Task.Yield();
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        var buf = new byte[16 * 1024];
        Interlocked.Increment(ref _inlineReaders);
        _noInlineReaders.Reset();
        try
        {
            // A read the pump started before it saw us is finished once we hold the lock.
            lock (_readLock)
            {
            }
            while (Buffer.End <= offset)
            {
                ct.ThrowIfCancellationRequested();
                var left = deadline - Environment.TickCount64;
                if (left <= 0) return;
                try
                {
                    if (!pollable.WaitReadable((int)Math.Min(left, 200))) continue;
                    lock (_readLock)
                    {
                        var n = pollable.ReadAvailable(buf);
                        if (n > 0) Record(buf.AsSpan(0, n));
                    }
                }
                catch (Exception ex) when (ex is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
                {
                    // The pump sees the same failure and reconnects; the caller notices the new generation.
                    MarkLost(transport, ex.Message);
                    return;
                }
            }
        }
        finally
        {
            if (Interlocked.Decrement(ref _inlineReaders) == 0) _noInlineReaders.Set();
        }
    }

    private void MarkLost(IConsoleTransport transport, string reason)
    {
        lock (_stateLock)
        {
            if (!ReferenceEquals(_transport, transport)) return;
            _transport = null;
            _connected = NewConnected();
        }
        _logger.Warning("console {Address} lost: {Reason}", Address, reason);
        Lost?.Invoke(reason);
        _ = transport.DisposeAsync().AsTask();
    }

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_pump is not null) await Task.WhenAny(_pump, Task.Delay(3000)).ConfigureAwait(false);
        lock (_stateLock) _connected.TrySetException(new LinkLostException($"console {Address} was closed"));
        _stop.Dispose();
    }
}

public sealed record ConsoleLinkOptions
{
    /// <summary>How long a writer waits for a lost device to come back before failing as infrastructure.</summary>
    public TimeSpan ReconnectTimeout { get; init; } = TimeSpan.FromSeconds(60);

    public int TxChunk { get; init; } = 4096;
    public TimeSpan TxDelay { get; init; } = TimeSpan.Zero;
}
