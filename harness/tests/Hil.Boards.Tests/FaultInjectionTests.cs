using Hil.Boards.Failures;
using Hil.Boards.Shell;
using Hil.Peers;

namespace Hil.Boards.Tests;

/// <summary>
/// The console shell over a damaged line: a fault-injecting proxy between the harness and a real
/// login shell injects kernel log lines (also inside markers), drops and duplicates bytes in both
/// directions, and stalls past the timeout. No wrong result may ever be accepted; every damaged run
/// must be detected and either recovered or failed as infrastructure.
/// </summary>
[TestFixture, Category("loopback")]
public sealed class FaultInjectionTests : BoardTest
{
    private sealed class Tally
    {
        public int Runs, Correct, Wrong, CorruptedRuns, CorruptedDetected, CorruptedHarmless, Timeouts, Infrastructure, Broken, RecoveredAfterFailure;
        public override string ToString() =>
            $"runs={Runs} correct={Correct} wrongAccepted={Wrong} corruptedRuns={CorruptedRuns} (detected={CorruptedDetected}, fault outside any frame={CorruptedHarmless}) "
            + $"timeoutsReported={Timeouts} failedAsInfrastructure={Infrastructure} broken={Broken} recoveredAfterFailure={RecoveredAfterFailure}";
    }

    [Test, CancelAfter(170_000)]
    public async Task Kernel_lines_drops_duplicates_and_stalls_never_yield_a_wrong_result(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash, transport: PeerTransport.Tcp);
        var seed = Environment.GetEnvironmentVariable("HIL_FAULT_SEED") is { } s ? int.Parse(s) : 20261127;
        await using var proxy = new FaultProxy("127.0.0.1", peer.Port, seed);
        var options = new ShellOptions
        {
            QuietProbe = TimeSpan.FromMilliseconds(300),
            ResyncTimeout = TimeSpan.FromSeconds(2),
            ResyncAttempts = 4,
        };
        await using var board = await ws.OpenAsync(ws.Board(Yaml.ConsoleBoard(proxy.Device, peer.PasswordFile)), options);

        // Logging in through kernel chatter (kernel lines only: a corrupted password is a different test).
        proxy.Plan = new FaultPlan { KernelLine = 0.01 };
        await board.EnsureShellAsync(ct);

        var rng = new Random(seed);
        var pattern = ConsoleShellTests.RandomText(rng, 16 * 1024);
        var file = ShellQuote.Quote(ws.Write("pattern.txt", pattern));
        // HIL_FAULT_SCALE multiplies the byte fault rates for stress runs by hand.
        var scale = Environment.GetEnvironmentVariable("HIL_FAULT_SCALE") is { } sc ? double.Parse(sc, System.Globalization.CultureInfo.InvariantCulture) : 1.0;
        var faulty = new FaultPlan
        {
            KernelLine = 0.002,
            KernelLineInMarker = 0.25,
            Drop = 0.00005 * scale,
            Duplicate = 0.00005 * scale,
            InputDrop = 0.001 * scale,
            InputDuplicate = 0.001 * scale,
        };
        var t = new Tally();
        var previousFailed = false;
        var runs = Environment.GetEnvironmentVariable("HIL_FAULT_RUNS") is { } rs ? int.Parse(rs) : 400;
        for (var i = 0; i < runs && !board.IsBroken; i++)
        {
            var size = rng.Next(10) switch { 0 => 0, < 8 => rng.Next(1, 300), < 9 => rng.Next(300, 3000), _ => rng.Next(4097, 9000) };
            var code = rng.Next(3) == 0 ? rng.Next(1, 256) : 0;
            var cmd = $"head -c {size} {file}; (exit {code})";
            proxy.Plan = faulty;
            // Every 40th run the line stalls for longer than the command's timeout.
            if (i % 40 == 39) proxy.StallNext(TimeSpan.FromSeconds(4));
            var faultsBefore = proxy.Faults;
            var stats = board.Shell.Stats.Snapshot();
            t.Runs++;
            var failed = false;
            try
            {
                var r = await board.Shell.RunAsync(cmd, TimeSpan.FromSeconds(3), ct);
                if (r.ExitCode == code && r.Output == pattern[..size])
                {
                    t.Correct++;
                    if (previousFailed) t.RecoveredAfterFailure++;
                }
                else
                {
                    t.Wrong++;
                    TestContext.Out.WriteLine($"WRONG #{i}: exit {r.ExitCode} want {code}; output {r.Output.Length} want {size}");
                }
            }
            catch (CommandTimeoutException)
            {
                t.Timeouts++;
                failed = true;
            }
            catch (BoardBrokenException ex)
            {
                t.Broken++;
                failed = true;
                TestContext.Out.WriteLine($"broken at #{i}: {ex.Message}");
            }
            catch (InfrastructureException ex)
            {
                t.Infrastructure++;
                failed = true;
                TestContext.Out.WriteLine($"infrastructure at #{i}: {ex.Message}");
            }
            previousFailed = failed;
            if (proxy.Faults != faultsBefore)
            {
                t.CorruptedRuns++;
                var now = board.Shell.Stats;
                var noticed = failed || now.KernelLinesRemoved != stats.KernelLinesRemoved || now.FramesResent != stats.FramesResent
                              || now.CommandsResent != stats.CommandsResent || now.Probes != stats.Probes || now.Resyncs != stats.Resyncs;
                if (noticed) t.CorruptedDetected++;
                else t.CorruptedHarmless++;
            }
        }
        proxy.Plan = FaultPlan.None;
        var tally = $"fault injection (seed {seed}): {t}; proxy: kernelLines={proxy.KernelLines} inMarkers={proxy.KernelLinesInMarkers} "
                    + $"dropped={proxy.Dropped} duplicated={proxy.Duplicated} inputDropped={proxy.InputDropped} inputDuplicated={proxy.InputDuplicated} stalls={proxy.Stalls}; "
                    + $"shell: {board.Shell.Stats}";
        TestContext.Out.WriteLine(tally);
        await File.WriteAllTextAsync(Path.Combine(TestContext.CurrentContext.WorkDirectory, "fault-injection-counts.txt"), tally + "\n", ct);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(t.Wrong, Is.Zero, "a wrong result was accepted as right");
            Assert.That(t.Broken, Is.Zero, "the shell could not be recovered");
            Assert.That(t.Runs, Is.EqualTo(runs));
            Assert.That(t.Correct + t.Timeouts + t.Infrastructure, Is.EqualTo(t.Runs));
            // The plan must really have hit frames, markers and the typed input, or the test proves nothing.
            Assert.That(proxy.KernelLinesInMarkers, Is.GreaterThan(20));
            Assert.That(proxy.Dropped + proxy.Duplicated, Is.GreaterThan(20));
            Assert.That(proxy.InputDropped + proxy.InputDuplicated, Is.GreaterThan(10));
            Assert.That(board.Shell.Stats.FramesResent, Is.GreaterThan(0));
            Assert.That(board.Shell.Stats.CommandsResent, Is.GreaterThan(0));
            Assert.That(t.Timeouts, Is.GreaterThanOrEqualTo(runs / 40), "every stall past the timeout is reported as a timeout");
        }
        // After the damage, a clean line gives clean results again.
        var last = await board.Shell.RunAsync("echo done; (exit 4)", null, ct);
        Assert.That((last.Output, last.ExitCode), Is.EqualTo(("done\n", 4)));

        // The raw console log holds exactly the bytes the harness was sent, faults included
        // (once the last prompt that is still on its way has arrived).
        await Eventually.EqualAsync(() => board.Console.Log.Position, () => proxy.SentToHarness().Length, ct);
        await board.DisposeAsync();
        var logged = await File.ReadAllBytesAsync(board.Console.Log.RawPath, ct);
        Assert.That(logged.AsSpan().SequenceEqual(proxy.SentToHarness()), Is.True, "raw console log differs from the bytes sent");
    }
}
