using Hil.Model.Core;
using Hil.Model.Scenarios;

namespace Hil.Model.Execution;

/// <summary>
/// A scenario's tasks driving one <see cref="DriverState"/>: which step each task can take next
/// and what taking it does. Both the timed simulator and the untimed explorer run scenarios
/// through this type, so a step means the same thing in both.
/// </summary>
public sealed class ScenarioRun
{
    private readonly int[] _pc;   // per client: index of its current op

    public Scenario Scenario { get; }
    public DriverState Driver { get; private set; }

    /// <summary>
    /// When an SMC cannot be refused (the driver counts no more threads than exist) the SMC is
    /// folded into the admission and the secure exit into the end: no interleaving is lost, and
    /// the explorer has fewer states. Otherwise (legacy, FF-A, a driver over-counting) they are
    /// steps of their own.
    /// </summary>
    public bool FoldSmc { get; }

    public ScenarioRun(Scenario scenario)
    {
        Scenario = scenario;
        Driver = new DriverState(scenario.Policy, scenario.Threads, scenario.DriverTotal, scenario.Calls.Count, scenario.Sessions.Count);
        FoldSmc = Driver.SmcCannotBeRefused;
        _pc = new int[scenario.Clients.Count];
    }

    private ScenarioRun(ScenarioRun o)
    {
        Scenario = o.Scenario;
        Driver = o.Driver.Clone();
        FoldSmc = o.FoldSmc;
        _pc = (int[])o._pc.Clone();
    }

    public ScenarioRun Clone() => new(this);

    /// <summary>Sessions declared `system: true` call tee_client_system_session() before anything else.</summary>
    public void RegisterInitialSystemSessions(List<Effect> fx)
    {
        foreach (var s in Scenario.Sessions.Where(s => s.System))
            Driver.RegisterSystem(s.Id, fx);
    }

    public int ProgramCounter(int client) => _pc[client];

    /// <summary>The op a client is at, or null when it has finished its program.</summary>
    public OpSpec? CurrentOp(int client)
    {
        var ops = Scenario.Clients[client].Ops;
        return _pc[client] < ops.Count ? ops[_pc[client]] : null;
    }

    /// <summary>The op a client can start now (its previous call has ended), or null.</summary>
    public OpSpec? StartableOp(int client) => CurrentOp(client) switch
    {
        RegisterSpec r => r,
        CallSpec c when Driver.Phase(c.CallId) == CallPhase.NotArrived => c,
        _ => null,
    };

    public bool NeedsMet(int call)
    {
        foreach (var n in Scenario.Calls[call].Needs)
            if (Driver.Phase(n) != CallPhase.Ended) return false;
        return true;
    }

    public bool AllEnded => Enumerable.Range(0, Scenario.Clients.Count).All(c => CurrentOp(c) is null);

    /// <summary>
    /// Every step some task can take now, in a fixed order (clients, then calls). While a call is
    /// between the two complete_ones of its wait_final it holds the lock: only lockless steps (an
    /// SMC, its return, a return from wait_for_completion) may run before its forward.
    /// </summary>
    public void EnabledSteps(List<Step> steps)
    {
        steps.Clear();
        var forwarding = Driver.Forwarding();
        if (forwarding >= 0) steps.Add(new(StepKind.Forward, forwarding));
        var locked = forwarding >= 0;
        for (var c = 0; c < _pc.Length && !locked; c++)
        {
            switch (StartableOp(c))
            {
                case RegisterSpec: steps.Add(new(StepKind.Register, c)); break;
                case CallSpec: steps.Add(new(StepKind.Arrive, c)); break;
            }
        }
        for (var call = 0; call < Scenario.Calls.Count; call++)
        {
            switch (Driver.Phase(call))
            {
                case CallPhase.Admitted: steps.Add(new(StepKind.Smc, call)); break;
                case CallPhase.QueuedAsleep or CallPhase.RefusedAsleep when Driver.IsDone(call): steps.Add(new(StepKind.Wake, call)); break;
                case CallPhase.Waking or CallPhase.WakingRefused when !locked: steps.Add(new(StepKind.Requeue, call)); break;
                case CallPhase.Rechecking when !locked: steps.Add(new(StepKind.Recheck, call)); break;
                case CallPhase.InSecure when NeedsMet(call) && (!FoldSmc || !locked):
                    steps.Add(new(FoldSmc ? StepKind.End : StepKind.Exit, call)); break;
                case CallPhase.Exited when !locked: steps.Add(new(StepKind.End, call)); break;
            }
        }
    }

    /// <summary>Takes one step; what it did is appended to <paramref name="fx"/>.</summary>
    public void Apply(Step step, List<Effect> fx)
    {
        switch (step.Kind)
        {
            case StepKind.Arrive:
            {
                var op = (CallSpec)(StartableOp(step.Subject) ?? throw new ModelStepException($"client {step.Subject} cannot start a call"));
                // The CLOSE of a system session is itself a system call: the flag is the session's.
                Driver.Arrive(op.CallId, Driver.SessionIsSystem(op.Session), fx);
                AfterAdmission(op.CallId, fx);
                break;
            }
            case StepKind.Register:
            {
                var op = (RegisterSpec)(StartableOp(step.Subject) ?? throw new ModelStepException($"client {step.Subject} cannot register"));
                Driver.RegisterSystem(op.Session, fx);
                _pc[step.Subject]++;
                break;
            }
            case StepKind.Smc:
                Driver.Smc(step.Subject, fx);
                break;
            case StepKind.Wake:
                Driver.Wake(step.Subject, fx);
                break;
            case StepKind.Requeue:
                Driver.Requeue(step.Subject, fx);
                break;
            case StepKind.Recheck:
                Driver.Recheck(step.Subject, fx);
                AfterAdmission(step.Subject, fx);
                break;
            case StepKind.Exit:
                Driver.Exit(step.Subject, fx);
                break;
            case StepKind.End:
            {
                var call = Scenario.Calls[step.Subject];
                if (!NeedsMet(step.Subject)) throw new ModelStepException($"{call.Name} cannot end before the calls it needs");
                if (!Driver.Leave(step.Subject, fx)) AfterFinal(step.Subject, fx);
                break;
            }
            case StepKind.Forward:
                Driver.Forward(step.Subject, fx);
                AfterFinal(step.Subject, fx);
                break;
            default:
                throw new ModelStepException($"unknown step {step}");
        }
    }

    /// <summary>wait_final is over (the lock released): a closed system session is uncounted, and the client moves on.</summary>
    private void AfterFinal(int callId, List<Effect> fx)
    {
        var call = Scenario.Calls[callId];
        if (call.IsClose && Driver.IsSys(callId)) Driver.UnregisterSystem(call.Session, fx);
        _pc[call.Client]++;
    }

    private void AfterAdmission(int call, List<Effect> fx)
    {
        if (FoldSmc && Driver.Phase(call) == CallPhase.Admitted) Driver.Smc(call, fx);
    }

    public string Describe(Step s) => s.Kind switch
    {
        StepKind.Arrive => $"{Scenario.Calls[((CallSpec)CurrentOp(s.Subject)!).CallId].Name} arrives (wait_init)",
        StepKind.Register => $"{CurrentOp(s.Subject)!.Label}: tee_client_system_session({SessionName(CurrentOp(s.Subject)!.Session)})",
        StepKind.Smc => $"{Scenario.CallName(s.Subject)} issues its SMC",
        StepKind.Wake => $"{Scenario.CallName(s.Subject)} wakes up (wait_for_completion returns)",
        StepKind.Requeue => $"{Scenario.CallName(s.Subject)} moves to the tail (reinit_completion)",
        StepKind.Recheck => $"{Scenario.CallName(s.Subject)} re-checks its admission",
        StepKind.Exit => $"{Scenario.CallName(s.Subject)} returns from the secure world",
        StepKind.End => $"{Scenario.CallName(s.Subject)} ends (wait_final{(Scenario.Calls[s.Subject].IsClose ? ", session closed" : "")})",
        StepKind.Forward => $"{Scenario.CallName(s.Subject)} forwards its absorbed wake-up (wait_final's second complete_one)",
        _ => s.ToString(),
    };

    public string SessionName(int session) => Scenario.Sessions[session] is var s ? $"{Scenario.Clients[s.Client].Name}/{s.Name}" : "?";

    public string DescribeState() => Driver.Describe(Scenario.CallName);

    /// <summary>Waiters spelled out in a timeline row or a finding: enough to read, a constant size whatever the scenario.</summary>
    public const int ShownWaiters = 16;

    /// <summary>The state with at most <see cref="ShownWaiters"/> waiters named.</summary>
    public string DescribeStateBriefly() => Driver.Describe(Scenario.CallName, ShownWaiters);

    /// <summary>Bytes a key of this scenario can take.</summary>
    public int KeyCapacity => 16 + 3 * Scenario.Calls.Count + Scenario.Sessions.Count + _pc.Length;

    /// <summary>Canonical key of everything that decides the future (driver + each client's position).</summary>
    public byte[] Key()
    {
        Span<byte> buf = stackalloc byte[KeyCapacity];
        return buf[..WriteKey(buf)].ToArray();
    }

    public int WriteKey(Span<byte> buffer) => WriteKey(buffer, null);

    /// <summary>The key, with interchangeable clients renamed into their canonical order when <paramref name="symmetry"/> is given.</summary>
    public int WriteKey(Span<byte> buffer, ClientSymmetry? symmetry)
    {
        var k = new KeyWriter(buffer);
        if (symmetry is not { Any: true })
        {
            Driver.WriteKey(ref k, Scenario.Calls.Count, Scenario.Sessions.Count);
            foreach (var pc in _pc) k.Byte((byte)pc);
            return k.Length;
        }
        _callMap ??= new int[Scenario.Calls.Count];
        _sessionMap ??= new int[Scenario.Sessions.Count];
        _clientMap ??= new int[_pc.Length];
        symmetry.Canonical(this, _callMap, _sessionMap, _clientMap);
        Driver.WriteKey(ref k, Scenario.Calls.Count, Scenario.Sessions.Count, _callMap, _sessionMap);
        Span<int> pcs = stackalloc int[_pc.Length];
        for (var c = 0; c < _pc.Length; c++) pcs[_clientMap[c]] = _pc[c];
        foreach (var pc in pcs) k.Byte((byte)pc);
        return k.Length;
    }

    private int[]? _callMap, _sessionMap, _clientMap;

    /// <summary>Restores a state written by <see cref="WriteKey"/> (the explorer keeps only keys).</summary>
    public void LoadKey(ReadOnlySpan<byte> key)
    {
        var i = Driver.ReadKey(key, Scenario.Calls.Count, Scenario.Sessions.Count);
        for (var c = 0; c < _pc.Length; c++) _pc[c] = key[i++];
    }

    /// <summary>This state renamed into its canonical form (interchangeable clients sorted).</summary>
    public void Canonicalize(ClientSymmetry symmetry)
    {
        Span<byte> buf = stackalloc byte[KeyCapacity];
        var n = WriteKey(buf, symmetry);
        LoadKey(buf[..n]);
    }

    public void CopyFrom(ScenarioRun o)
    {
        Driver.CopyFrom(o.Driver);
        o._pc.AsSpan().CopyTo(_pc);
    }

    /// <summary>Terminal summary: each call's final phase and the counters (what "a final state" means in tests).</summary>
    public string Outcome()
    {
        var calls = Enumerable.Range(0, Scenario.Calls.Count).Select(c => $"{Scenario.CallName(c)}={Driver.Phase(c).Label()}");
        return $"{string.Join(" ", calls)} | {DescribeState()}";
    }
}
