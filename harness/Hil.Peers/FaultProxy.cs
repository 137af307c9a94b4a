using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Hil.Peers;

/// <summary>How often the proxy damages the stream (probabilities per byte unless said otherwise).</summary>
public sealed record FaultPlan
{
    /// <summary>Kernel-style log line injected before a byte from the board.</summary>
    public double KernelLine { get; init; }

    /// <summary>Kernel line injected a few bytes into a marker (after a 0x1E byte), per marker.</summary>
    public double KernelLineInMarker { get; init; }

    public double Drop { get; init; }
    public double Duplicate { get; init; }

    /// <summary>Drops and duplicates on the way to the board (typed input).</summary>
    public double InputDrop { get; init; }
    public double InputDuplicate { get; init; }

    public static FaultPlan None { get; } = new();
}

/// <summary>
/// The one fake in the console tests, placed beside the real path: a TCP proxy between the harness
/// and a real console peer that injects kernel log lines (anywhere, also inside markers), drops and
/// duplicates bytes, and stalls on request. It records exactly what it sent to the harness, and
/// counts every fault so a test can tell which commands ran over a damaged line.
/// </summary>
public sealed class FaultProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly string _upstreamHost;
    private readonly int _upstreamPort;
    private readonly Random _random;
    private readonly CancellationTokenSource _stop = new();
    private readonly MemoryStream _sent = new();
    private readonly Lock _lock = new();
    private TimeSpan _stallNext;
    private Task? _run;
    private long _faults;
    private int _kernelSeq;

    public FaultProxy(string upstreamHost, int upstreamPort, int seed)
    {
        _upstreamHost = upstreamHost;
        _upstreamPort = upstreamPort;
        _random = new Random(seed);
        Seed = seed;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _run = Task.Run(AcceptAsync);
    }

    public int Seed { get; }
    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
    public string Device => $"tcp://127.0.0.1:{Port}";

    /// <summary>The damage to do from now on (can change between commands).</summary>
    public FaultPlan Plan { get; set; } = FaultPlan.None;

    /// <summary>Faults injected so far (all kinds): compare before and after a command.</summary>
    public long Faults => Interlocked.Read(ref _faults);

    public int KernelLines;
    public int KernelLinesInMarkers;
    public int Dropped;
    public int Duplicated;
    public int InputDropped;
    public int InputDuplicated;
    public int Stalls;

    /// <summary>Holds back the board's next bytes for <paramref name="duration"/> (a stalled UART or network).</summary>
    public void StallNext(TimeSpan duration)
    {
        lock (_lock) _stallNext = duration;
    }

    /// <summary>Every byte sent to the harness so far, faults included.</summary>
    public byte[] SentToHarness()
    {
        lock (_lock) return _sent.ToArray();
    }

    private async Task AcceptAsync()
    {
        using var client = await _listener.AcceptTcpClientAsync(_stop.Token).ConfigureAwait(false);
        using var upstream = new TcpClient { NoDelay = true };
        await upstream.ConnectAsync(_upstreamHost, _upstreamPort, _stop.Token).ConfigureAwait(false);
        client.NoDelay = true;
        var down = PumpAsync(upstream.GetStream(), client.GetStream(), toHarness: true);
        var up = PumpAsync(client.GetStream(), upstream.GetStream(), toHarness: false);
        await Task.WhenAny(down, up).ConfigureAwait(false);
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, bool toHarness)
    {
        var buf = new byte[8192];
        var output = new MemoryStream();
        var markerCountdown = -1;
        try
        {
            while (true)
            {
                var n = await from.ReadAsync(buf, _stop.Token).ConfigureAwait(false);
                if (n == 0) break;
                output.SetLength(0);
                TimeSpan stall;
                lock (_lock)
                {
                    var plan = Plan;
                    for (var i = 0; i < n; i++)
                    {
                        var b = buf[i];
                        if (toHarness)
                        {
                            if (markerCountdown == 0 || Chance(plan.KernelLine))
                            {
                                if (markerCountdown == 0) KernelLinesInMarkers++;
                                markerCountdown = -1;
                                InjectKernelLine(output);
                            }
                            if (markerCountdown > 0) markerCountdown--;
                            if (b == 0x1E && markerCountdown < 0 && Chance(plan.KernelLineInMarker)) markerCountdown = _random.Next(0, 12);
                            if (Chance(plan.Drop))
                            {
                                Dropped++;
                                Interlocked.Increment(ref _faults);
                                continue;
                            }
                            output.WriteByte(b);
                            if (Chance(plan.Duplicate))
                            {
                                Duplicated++;
                                Interlocked.Increment(ref _faults);
                                output.WriteByte(b);
                            }
                        }
                        else
                        {
                            if (Chance(plan.InputDrop))
                            {
                                InputDropped++;
                                Interlocked.Increment(ref _faults);
                                continue;
                            }
                            output.WriteByte(b);
                            if (Chance(plan.InputDuplicate))
                            {
                                InputDuplicated++;
                                Interlocked.Increment(ref _faults);
                                output.WriteByte(b);
                            }
                        }
                    }
                    stall = toHarness ? _stallNext : TimeSpan.Zero;
                    if (toHarness) _stallNext = TimeSpan.Zero;
                }
                if (stall > TimeSpan.Zero)
                {
                    Interlocked.Increment(ref Stalls);
                    Interlocked.Increment(ref _faults);
                    await Task.Delay(stall, _stop.Token).ConfigureAwait(false);
                }
                if (toHarness)
                    lock (_lock) _sent.Write(output.GetBuffer(), 0, (int)output.Length);
                await to.WriteAsync(output.GetBuffer().AsMemory(0, (int)output.Length), _stop.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException)
        {
        }
    }

    private bool Chance(double p) => p > 0 && _random.NextDouble() < p;

    private void InjectKernelLine(MemoryStream output)
    {
        KernelLines++;
        Interlocked.Increment(ref _faults);
        _kernelSeq++;
        var secs = 100 + _kernelSeq;
        var usecs = _random.Next(0, 1_000_000);
        // What a console driver prints for a printk: timestamp, text, CR LF.
        var line = $"[{secs,5}.{usecs:D6}] hil-fault: usb 1-1: reset high-speed USB device number {_kernelSeq}\r\n";
        output.Write(Encoding.ASCII.GetBytes(line));
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        if (_run is not null)
            await Task.WhenAny(_run, Task.Delay(2000)).ConfigureAwait(false);
        _stop.Dispose();
    }
}
