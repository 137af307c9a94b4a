using Hil.Suites.SystemThreads;

namespace Hil.Suites.SystemThreads.Host;

/// <summary>
/// The table's bookkeeping, without a board: how a tolerance is derived from a run's own timing,
/// and that every row of system-threads.md either names the test asserting it or says why not.
/// Category "host": hil run leaves it out of its per-board table; run-tests runs it.
/// </summary>
[TestFixture, Category("host")]
public sealed class FiguresTests
{
    private static TracedCall Traced(double enter, double final) => new("hilcq-1", 1, "0xffff0001", false, enter, enter, final, 0, 0);

    [Test]
    public void TheToleranceIsTheLargestLatenessOfTheScriptedCallsInTheSameRun()
    {
        var spread = TimingSpread.Of([
            // due at 1.000 s, reached the driver 3 ms late, held 3000 ms scripted but 3041 ms traced
            new ScriptedCall("a", 1_000_000_000, 1_003_000_000, 3000, Traced(1.004, 4.045)),
            // 1.5 ms late, held 1000 ms as scripted, not in the trace
            new ScriptedCall("b", 1_200_000_000, 1_201_500_000, 1000, null),
            // never reached the driver: no sample
            new ScriptedCall("c", 1_400_000_000, null, 100, null),
        ]);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(spread.Samples.Select(s => s.What), Is.EqualTo(new[] { "a start", "a hold", "b start" }));
            Assert.That(spread.Ms, Is.EqualTo(41).Within(1e-6));
            Assert.That(spread.Largest.What, Is.EqualTo("a hold"));
            Assert.That(spread.Tolerance, Is.EqualTo("±41 ms"));
            Assert.That(spread.Describe(), Does.Contain("3 starts, holds and wake-ups").And.Contain("largest: a hold 41 ms"));
            Assert.That(spread.Details(), Is.EqualTo("a start 3 ms, a hold 41 ms, b start 1.5 ms"));
        }
    }

    [Test]
    public void ABoardThatRanEarlyCountsAsMuchAsOneThatRanLate()
    {
        var spread = TimingSpread.Of([new ScriptedCall("a", 0, 2_000_000, 500, Traced(0.002, 0.442))]);
        Assert.That(spread.Ms, Is.EqualTo(60).Within(1e-6), "held 60 ms less than scripted");
    }

    [Test]
    public void WithoutAnyMeasuredCallThereIsNoTolerance() =>
        Assert.Throws<InvalidOperationException>(() => _ = TimingSpread.Of([new ScriptedCall("c", 0, null, 100, null)]).Ms);

    [Test]
    public void EveryRowSaysHowItCounts_AssertedRowsNameTheTest_InformationalRowsTheirReason()
    {
        Figure F(string board, string measure, bool? agrees, string countsAs, string? tolerance = null) =>
            new(board, "6.x", "mainline", "wakeup-order", measure, "1", "2", agrees, countsAs, tolerance);
        var table = Figures.Render([
            F("b1", "C enters", true, "asserted in WakeupTest", "±4 ms"),
            F("b2", "C enters", false, "asserted in WakeupTest", "±3 ms"),
            F("b1", "absorbed", null, "informational (WakeupTest): hangs on microsecond orderings"),
            F("b1", "a | b", true, "asserted in T: |x - y| small"),
        ]);
        var lines = table.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(lines[0], Does.EndWith("| counts as |"));
            Assert.That(lines[2], Is.EqualTo("| C enters | 1 / 2 (±4 ms) | 1 / 2 (±3 ms) **(differs)** | asserted in WakeupTest |"));
            Assert.That(lines[3], Is.EqualTo("| absorbed | 1 / 2 | | informational (WakeupTest): hangs on microsecond orderings |"));
            Assert.That(lines[4], Is.EqualTo("| a \\| b | 1 / 2 | | asserted in T: \\|x - y\\| small |"), "a '|' in a cell is escaped");
        }
    }
}
