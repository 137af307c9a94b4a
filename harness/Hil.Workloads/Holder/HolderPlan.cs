using System.Globalization;

namespace Hil.Workloads.Holder;

/// <summary>One user-space holder: TEE_Wait(HoldMs) on its own session, StartMs after the common time base.</summary>
public sealed record HolderCall
{
    public const uint MaxHoldMs = 600_000;
    public const uint MaxStartMs = 600_000;

    public HolderCall(uint holdMs, uint startMs = 0)
    {
        HoldMs = holdMs <= MaxHoldMs ? holdMs : throw new ArgumentOutOfRangeException(nameof(holdMs), holdMs, $"teeholder holds at most {MaxHoldMs} ms");
        StartMs = startMs <= MaxStartMs ? startMs : throw new ArgumentOutOfRangeException(nameof(startMs), startMs, $"teeholder starts at most {MaxStartMs} ms late");
    }

    public uint HoldMs { get; }
    public uint StartMs { get; }

    /// <summary>teeholder's HOLD_MS[@START_MS] argument.</summary>
    public string Argument => StartMs == 0
        ? HoldMs.ToString(CultureInfo.InvariantCulture)
        : $"{HoldMs.ToString(CultureInfo.InvariantCulture)}@{StartMs.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>What one teeholder run does: its holders and the lead between the last session open and t0.</summary>
public sealed record HolderPlan
{
    public const int MaxHolders = 32;
    public const uint MaxLeadMs = 60_000;

    public HolderPlan(IReadOnlyList<HolderCall> calls, uint leadMs = 10)
    {
        if (calls.Count == 0) throw new ArgumentException("a holder run needs at least one holder", nameof(calls));
        if (calls.Count > MaxHolders) throw new ArgumentException($"teeholder runs at most {MaxHolders} holders", nameof(calls));
        Calls = calls;
        LeadMs = leadMs <= MaxLeadMs ? leadMs : throw new ArgumentOutOfRangeException(nameof(leadMs), leadMs, $"lead at most {MaxLeadMs} ms");
    }

    /// <summary><paramref name="count"/> holders of <paramref name="holdMs"/> each, all at t0: fills that many secure threads.</summary>
    public static HolderPlan Saturate(int count, uint holdMs) => new(Enumerable.Range(0, count).Select(_ => new HolderCall(holdMs)).ToList());

    public IReadOnlyList<HolderCall> Calls { get; }
    public uint LeadMs { get; }

    /// <summary>The planned end of the last holder, from t0 (what a caller's timeout should cover).</summary>
    public TimeSpan Span => TimeSpan.FromMilliseconds(LeadMs + Calls.Max(c => (double)c.StartMs + c.HoldMs));

    public IReadOnlyList<string> Arguments() => ["--lead", LeadMs.ToString(CultureInfo.InvariantCulture), .. Calls.Select(c => c.Argument)];
}
