namespace Hil.Model.Conformance;

internal enum SeedKind { Running, Asleep }

/// <summary>Calls in flight when the trace began; DoneCombo picks which of them start with their completion set.</summary>
internal sealed record SeedPlan(IReadOnlyList<(ulong Waiter, SeedKind Kind)> Waiters, int? SysReq, int DoneCombo = 0)
{
    public const int MaxSeedsWithUnknownFlag = 4;

    public SeedPlan With(ulong w, SeedKind kind)
    {
        var list = Waiters.Where(x => x.Waiter != w).ToList();
        list.Add((w, kind));
        return this with { Waiters = list, DoneCombo = 0 };
    }

    public int Combos => 1 << Math.Min(Waiters.Count, MaxSeedsWithUnknownFlag);

    public SeedPlan WithAll(IEnumerable<(ulong Waiter, SeedKind Kind)> more) => this with { Waiters = [.. Waiters, .. more], DoneCombo = 0 };
}

/// <summary>What one pass over the trace gave: a verdict, or a better guess at what was in flight when it began (read it again).</summary>
internal readonly record struct RunOutcome(ConformanceResult? Result, SeedPlan? Restart);
