using Hil.Model.Core;

namespace Hil.Model.Conformance;

/// <summary>The words a divergence uses: why the model blocked a caller, whom a wake-up goes to.</summary>
internal static class Explain
{
    public static string NameOf(Hypothesis h, ulong waiter) =>
        h.CallOfWaiter.TryGetValue(waiter, out var call) ? h.Name(call) : $"w={waiter:x}";

    public static string WhoGotIt(Hypothesis h)
    {
        var done = h.D.List.Where(h.D.IsDone).Select(c => $"{h.Name(c)} {(h.D.Phase(c).IsAsleep() ? "asleep" : "running")}").ToList();
        return done.Count == 0 ? "no entry of the list holds a wake-up" : $"the wake-ups went to {string.Join(", ", done)}";
    }

    public static string WhyBlocked(Hypothesis h, int call)
    {
        var d = h.D;
        if (d.Total == 0) return "the secure world refused it";
        var thr = d.Policy.Threshold(d.IsSys(call), d.SysReqCount);
        return $"{(d.IsSys(call) ? "a system" : "a normal")} caller needs free > {thr} ({d.Policy.Name}{(d.SysReqCount > 0 ? $", {d.SysReqCount} system session(s) registered" : "")}), free is {d.Free}";
    }

    public static string WakeRule(DriverState d) => d.Policy.WakeOrder == WakeOrder.SystemFirst
        ? "first not-done system entry, else first not-done entry" : "first not-done entry of the list";

    public static string WhyNoWake(Hypothesis h) => h.D.ListCount == 0 ? "the list is empty" : "every entry's completion is already done";

}
