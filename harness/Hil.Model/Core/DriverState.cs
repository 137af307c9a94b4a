namespace Hil.Model.Core;

/// <summary>
/// One OP-TEE driver instance and its secure world, as the spec describes them: the call-queue
/// counters (total, free, sys_req_count), the ordered list of every in-flight caller with its
/// completion flag, per-session system flags, and the secure threads.
///
/// Calls and sessions are small integers chosen by the caller of this type (the simulator numbers
/// a scenario's calls, the trace checker numbers waiters as they appear). Each public method is one
/// critical section of the kernel's call.c (or one SMC) and appends what it did to an effect list.
/// The type does no I/O and knows nothing of time.
/// </summary>
public sealed class DriverState
{
    private CallPhase[] _phase;
    private bool[] _sys;
    private bool[] _done;
    private int[] _list;     // call ids in list order; every in-flight caller is in it
    private int _listCount;
    private bool[] _sessionSys;
    private int _forwarding = -1;   // the call between its wait_final's two complete_ones (it holds the lock)

    public Policy Policy { get; }

    /// <summary>The driver's total_thread_count: 0 when it does not count.</summary>
    public int Total { get; }

    /// <summary>CFG_NUM_THREADS of the secure world.</summary>
    public int SecureThreads { get; }

    public int Free { get; private set; }
    public int SysReqCount { get; private set; }
    public int SecureFree { get; private set; }

    public DriverState(Policy policy, int secureThreads, int? driverTotal = null, int calls = 0, int sessions = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(secureThreads);
        Policy = policy;
        SecureThreads = secureThreads;
        Total = driverTotal ?? policy.DriverTotalFor(secureThreads);
        Free = Total;
        SecureFree = secureThreads;
        _phase = new CallPhase[Math.Max(calls, 4)];
        _sys = new bool[_phase.Length];
        _done = new bool[_phase.Length];
        _list = new int[_phase.Length];
        _sessionSys = new bool[Math.Max(sessions, 1)];
    }

    private DriverState(DriverState o)
    {
        Policy = o.Policy; Total = o.Total; SecureThreads = o.SecureThreads;
        Free = o.Free; SysReqCount = o.SysReqCount; SecureFree = o.SecureFree;
        _phase = (CallPhase[])o._phase.Clone();
        _sys = (bool[])o._sys.Clone();
        _done = (bool[])o._done.Clone();
        _list = (int[])o._list.Clone();
        _listCount = o._listCount;
        _sessionSys = (bool[])o._sessionSys.Clone();
        _forwarding = o._forwarding;
    }

    public DriverState Clone() => new(this);

    public int CallCapacity => _phase.Length;
    public CallPhase Phase(int call) => _phase[call];
    public bool IsSys(int call) => _sys[call];
    public bool IsDone(int call) => _done[call];
    public bool SessionIsSystem(int session) => session < _sessionSys.Length && _sessionSys[session];
    public int ListCount => _listCount;
    public int ListAt(int i) => _list[i];
    public IEnumerable<int> List => _list.Take(_listCount);

    /// <summary>Grow the per-call arrays (the trace checker meets new waiters as it reads).</summary>
    public void EnsureCall(int call)
    {
        if (call < _phase.Length) return;
        var n = Math.Max(call + 1, _phase.Length * 2);
        Array.Resize(ref _phase, n); Array.Resize(ref _sys, n); Array.Resize(ref _done, n); Array.Resize(ref _list, n);
    }

    public void EnsureSession(int session)
    {
        if (session >= _sessionSys.Length) Array.Resize(ref _sessionSys, Math.Max(session + 1, _sessionSys.Length * 2));
    }

    /// <summary>Makes an ended call id reusable (the checker recycles ids so memory stays flat).</summary>
    public void Forget(int call)
    {
        if (_phase[call] != CallPhase.Ended) throw new InvalidOperationException($"call {call} is still {_phase[call].Label()}");
        _phase[call] = CallPhase.NotArrived; _done[call] = false; _sys[call] = false;
    }

    // ---- seeding (a trace that starts while calls are in flight) -----------------------------------

    /// <summary>Puts a caller that was already in flight when observation began into the list.</summary>
    public void Seed(int call, bool sys, CallPhase phase, bool done = false)
    {
        EnsureCall(call);
        if (!phase.IsInList()) throw new ArgumentException("a seeded caller must be in flight", nameof(phase));
        _phase[call] = phase; _sys[call] = sys; _done[call] = done;
        _list[_listCount++] = call;
        if (Total > 0 && phase.HoldsSlot()) Free--;
        if (phase == CallPhase.InSecure) SecureFree--;
    }

    /// <summary>System sessions registered before observation began.</summary>
    public void SeedSystemSessions(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        SysReqCount = count;
    }

    // ---- optee_cq_wait_init -------------------------------------------------------------------

    /// <summary>
    /// wait_init under the lock: append the caller (completion not done), then, when counting,
    /// take a slot if free exceeds the threshold, else sleep. Not counting: straight to the SMC.
    /// </summary>
    public void Arrive(int call, bool sys, List<Effect> fx)
    {
        EnsureCall(call);
        Require(_phase[call] == CallPhase.NotArrived, call, "arrive");
        _sys[call] = sys;
        _done[call] = false;
        _list[_listCount++] = call;
        fx.Add(new(EffectKind.Arrived, call));
        if (Total == 0)
        {
            _phase[call] = CallPhase.Admitted;
            fx.Add(new(EffectKind.Admitted, call));
            return;
        }
        TryTakeSlot(call, fx);
    }

    /// <summary>The counted admission test, shared by arrival and by a woken caller's re-evaluation.</summary>
    public bool CanTakeSlot(int call) => Total == 0 || Free > Policy.Threshold(_sys[call], SysReqCount);

    private void TryTakeSlot(int call, List<Effect> fx)
    {
        if (Free > Policy.Threshold(_sys[call], SysReqCount))
        {
            Free--;
            _phase[call] = CallPhase.Admitted;
            fx.Add(new(EffectKind.Admitted, call));
            CheckAdmission(call, fx);
        }
        else
        {
            _phase[call] = CallPhase.QueuedAsleep;
            fx.Add(new(EffectKind.Blocked, call));
        }
    }

    // ---- the SMC loop ---------------------------------------------------------------------------

    /// <summary>
    /// An admitted caller issues its SMC: it gets a secure thread, or the secure world answers
    /// ETHREAD_LIMIT/BUSY and the caller sleeps on its completion, keeping its counted slot.
    /// </summary>
    public void Smc(int call, List<Effect> fx)
    {
        Require(_phase[call] == CallPhase.Admitted, call, "issue an SMC");
        if (SecureFree > 0)
        {
            SecureFree--;
            _phase[call] = CallPhase.InSecure;
            fx.Add(new(EffectKind.Entered, call));
            if (SecureFree < 0) fx.Add(new(EffectKind.InvariantBroken, call, "secure world over-committed"));
        }
        else
        {
            _phase[call] = CallPhase.RefusedAsleep;
            fx.Add(new(EffectKind.Refused, call, Policy.Refusal == SecureRefusal.Busy ? "BUSY" : "ETHREAD_LIMIT"));
        }
    }

    /// <summary>
    /// An SMC whose answer is known from elsewhere (a board trace): the tracepoints around an SMC
    /// cannot tell which of two racing SMCs got the last thread, so the checker takes the board's
    /// answer and judges what the driver does with it.
    /// </summary>
    public void SmcObserved(int call, bool entered, List<Effect> fx)
    {
        Require(_phase[call] == CallPhase.Admitted, call, "issue an SMC");
        if (entered)
        {
            SecureFree--;
            _phase[call] = CallPhase.InSecure;
            fx.Add(new(EffectKind.Entered, call));
        }
        else
        {
            _phase[call] = CallPhase.RefusedAsleep;
            fx.Add(new(EffectKind.Refused, call, Policy.Refusal == SecureRefusal.Busy ? "BUSY" : "ETHREAD_LIMIT"));
        }
    }

    /// <summary>True when an SMC issued now is sure to find a free secure thread: lets simulate and
    /// explore fold the SMC into the admission without losing an interleaving.</summary>
    public bool SmcCannotBeRefused => Total > 0 && Total <= SecureThreads;

    // ---- waking up: three steps in the kernel ----------------------------------------------------------

    /// <summary>
    /// wait_for_completion() returns in a sleeping caller whose completion is done: the completion is
    /// consumed. No lock is held; the entry stays where it is until <see cref="Requeue"/>.
    /// </summary>
    public void Wake(int call, List<Effect> fx)
    {
        var p = _phase[call];
        Require(p.IsAsleep() && _done[call], call, "wake (it is not asleep with its completion done)");
        _done[call] = false;
        _phase[call] = p == CallPhase.RefusedAsleep ? CallPhase.WakingRefused : CallPhase.Waking;
    }

    /// <summary>
    /// optee_cq_wait_for_completion's critical section: move to the tail and reinit_completion —
    /// which erases a wake-up delivered since <see cref="Wake"/>. A caller refused by the secure
    /// world then retries its SMC; a caller waiting for a slot re-checks in <see cref="Recheck"/>.
    /// </summary>
    public void Requeue(int call, List<Effect> fx)
    {
        var p = _phase[call];
        Require(p is CallPhase.Waking or CallPhase.WakingRefused, call, "move to the tail (it was not woken)");
        if (_done[call]) fx.Add(new(EffectKind.WakeupLost, call));
        MoveToTail(call);
        _done[call] = false;
        fx.Add(new(EffectKind.Reevaluated, call));
        _phase[call] = p == CallPhase.WakingRefused ? CallPhase.Admitted : CallPhase.Rechecking;
    }

    /// <summary>
    /// optee_cq_wait_init's loop, its second critical section: the threshold with the current values;
    /// admitted, or back to sleep without passing the wake-up on (if a wake-up arrived since the move,
    /// wait_for_completion will return at once).
    /// </summary>
    public void Recheck(int call, List<Effect> fx)
    {
        Require(_phase[call] == CallPhase.Rechecking, call, "re-check its admission (it did not move to the tail)");
        TryTakeSlot(call, fx);
    }

    // ---- leaving ----------------------------------------------------------------------------------

    /// <summary>The call's last SMC returned: its secure thread is FREE again (wait_final follows).</summary>
    public void Exit(int call, List<Effect> fx)
    {
        Require(_phase[call] == CallPhase.InSecure, call, "leave the secure world");
        SecureFree++;
        _phase[call] = CallPhase.Exited;
        fx.Add(new(EffectKind.Exited, call));
    }

    /// <summary>
    /// The whole of wait_final with nothing in between its two complete_one calls (what the timed
    /// simulator does: the forward follows within nanoseconds on real hardware).
    /// </summary>
    public void Final(int call, List<Effect> fx)
    {
        if (Leave(call, fx)) Forward(call, fx);
    }

    /// <summary>
    /// wait_final under the lock, up to its first complete_one: leave the list, give the slot back,
    /// wake one. Returns true when the caller's own completion was set while it ran (it absorbed a
    /// wake-up meant for a waiter): it then still owes a second complete_one (<see cref="Forward"/>)
    /// and stays <see cref="CallPhase.Forwarding"/>, holding the lock. The two complete_ones are not
    /// atomic for a lockless step: the caller the first one woke may return from
    /// wait_for_completion in between, consuming its wake-up, and then the second finds it first
    /// and not done and completes it again (a wake-up its move to the tail erases).
    /// </summary>
    public bool Leave(int call, List<Effect> fx)
    {
        if (_phase[call] == CallPhase.InSecure) Exit(call, fx);
        Require(_phase[call] == CallPhase.Exited, call, "end");
        RemoveFromList(call);
        if (Total > 0) Free++;
        fx.Add(new(EffectKind.Ended, call));
        CompleteOne(fx);
        var owes = _done[call];
        // The phase alone records the debt: the call is out of the list, so its flag is nobody's business.
        _done[call] = false;
        _phase[call] = owes ? CallPhase.Forwarding : CallPhase.Ended;
        if (owes) _forwarding = call;
        return owes;
    }

    /// <summary>wait_final's second complete_one, forwarding the wake-up the caller had absorbed; the lock is released after it.</summary>
    public void Forward(int call, List<Effect> fx)
    {
        Require(_phase[call] == CallPhase.Forwarding, call, "forward a wake-up (it owes none)");
        fx.Add(new(EffectKind.Forwarded, call));
        CompleteOne(fx);
        _phase[call] = CallPhase.Ended;
        _forwarding = -1;
    }

    /// <summary>The call that is between the two complete_ones of its wait_final (it holds the lock), or -1.</summary>
    public int Forwarding() => _forwarding;

    /// <summary>
    /// complete_one(): set the completion of the first entry not yet done — a system one first
    /// under SystemFirst. The scan sees running callers too, so the wake-up may land on one.
    /// </summary>
    public int CompleteOne(List<Effect> fx)
    {
        var target = -1;
        if (Policy.WakeOrder == WakeOrder.SystemFirst)
            for (var i = 0; i < _listCount && target < 0; i++)
                if (_sys[_list[i]] && !_done[_list[i]]) target = _list[i];
        for (var i = 0; i < _listCount && target < 0; i++)
            if (!_done[_list[i]]) target = _list[i];
        if (target < 0) return -1;
        _done[target] = true;
        fx.Add(new(_phase[target].IsAsleep() ? EffectKind.Woken : EffectKind.Absorbed, target));
        return target;
    }

    // ---- system sessions ----------------------------------------------------------------------------

    /// <summary>tee_client_system_session(): counts the session once; refused when unsupported.</summary>
    public bool RegisterSystem(int session, List<Effect> fx)
    {
        EnsureSession(session);
        if (_sessionSys[session]) { fx.Add(new(EffectKind.SystemRegistered, session, "already")); return true; }
        if (!Policy.SystemSessionAllowed(Total))
        {
            fx.Add(new(EffectKind.SystemRefused, session, Total <= 1 && Policy.SystemSessions == SystemSessionSupport.WhenMoreThanOneThread
                ? $"driver counts {Total} thread(s): needs more than 1" : $"policy {Policy.Name} has no system sessions"));
            return false;
        }
        _sessionSys[session] = true;
        SysReqCount++;
        fx.Add(new(EffectKind.SystemRegistered, session));
        return true;
    }

    /// <summary>After the CLOSE of a system session: uncount it and let a waiter re-check (the threshold may have dropped).</summary>
    public void UnregisterSystem(int session, List<Effect> fx)
    {
        if (!SessionIsSystem(session)) return;
        _sessionSys[session] = false;
        SysReqCount--;
        fx.Add(new(EffectKind.SystemUnregistered, session));
        CompleteOne(fx);
    }

    // ---- invariants ---------------------------------------------------------------------------------

    /// <summary>
    /// Checked at every admission: free never negative, never more slot holders than the total,
    /// and while a system session is registered never more than total-1 normal holders
    /// (mainline's promise; v9 keeps it always).
    /// </summary>
    private void CheckAdmission(int call, List<Effect> fx)
    {
        if (Free < 0) fx.Add(new(EffectKind.InvariantBroken, call, $"free = {Free} < 0"));
        int holders = 0, normal = 0;
        for (var i = 0; i < _listCount; i++)
        {
            var c = _list[i];
            if (!_phase[c].HoldsSlot()) continue;
            holders++;
            if (!_sys[c]) normal++;
        }
        if (holders > Total) fx.Add(new(EffectKind.InvariantBroken, call, $"{holders} callers admitted, total is {Total}"));
        if (!_sys[call] && SysReqCount > 0 && normal > Total - 1)
            fx.Add(new(EffectKind.InvariantBroken, call, $"{normal} normal callers admitted while a system session is registered (bound total-1 = {Total - 1})"));
    }

    /// <summary>Counts for reports: callers holding a slot / inside the secure world, by class.</summary>
    public (int Normal, int System) InSecureByClass()
    {
        int n = 0, s = 0;
        for (var i = 0; i < _listCount; i++)
        {
            var c = _list[i];
            if (_phase[c] != CallPhase.InSecure) continue;
            if (_sys[c]) s++; else n++;
        }
        return (n, s);
    }

    /// <summary>
    /// A caller asleep with its completion not done although it could be admitted now, while no
    /// wake-up is waiting to be delivered to any sleeper. A wake-up absorbed by a running caller
    /// does not count: it moves only when that caller ends. Returns -1 when none.
    /// </summary>
    public int FindStranded()
    {
        for (var i = 0; i < _listCount; i++)
        {
            var c = _list[i];
            if ((_phase[c].IsAsleep() && _done[c]) || _phase[c].IsWaking()) return -1;   // a wake-up is on its way
        }
        if (Forwarding() >= 0) return -1;   // a second complete_one is about to run
        for (var i = 0; i < _listCount; i++)
        {
            var c = _list[i];
            if (_done[c]) continue;
            var admissible = (_phase[c] == CallPhase.QueuedAsleep && Total > 0 && CanTakeSlot(c))
                             || (_phase[c] == CallPhase.RefusedAsleep && SecureFree > 0);
            if (admissible && !WakeupPromised(c)) return c;
        }
        return -1;
    }

    /// <summary>
    /// A caller back from the secure world (its thread given back, wait_final still to come) will
    /// run complete_one — twice when it absorbed a wake-up while it ran. Under legacy and FF-A that
    /// is the usual state just after an SMC ends: the secure thread is free and the waiter asleep,
    /// and the wake-up is on its way. True when one of those complete_ones, run now, would pick
    /// <paramref name="sleeper"/> (ends in any order: each one is tried on the list as it stands).
    /// </summary>
    private bool WakeupPromised(int sleeper)
    {
        for (var i = 0; i < _listCount; i++)
        {
            var ender = _list[i];
            if (_phase[ender] != CallPhase.Exited) continue;
            var first = CompleteTarget(ender, -1);
            if (first == sleeper) return true;
            if (_done[ender] && first >= 0 && CompleteTarget(ender, first) == sleeper) return true;
        }
        return false;
    }

    /// <summary>The entry complete_one would pick with <paramref name="leaving"/> out of the list and <paramref name="alsoDone"/> taken as done; -1 if none.</summary>
    private int CompleteTarget(int leaving, int alsoDone)
    {
        bool Open(int c) => c != leaving && c != alsoDone && !_done[c];
        if (Policy.WakeOrder == WakeOrder.SystemFirst)
            for (var i = 0; i < _listCount; i++)
                if (_sys[_list[i]] && Open(_list[i])) return _list[i];
        for (var i = 0; i < _listCount; i++)
            if (Open(_list[i])) return _list[i];
        return -1;
    }

    // ---- list helpers -------------------------------------------------------------------------------

    private void RemoveFromList(int call)
    {
        var i = IndexInList(call);
        Array.Copy(_list, i + 1, _list, i, _listCount - i - 1);
        _listCount--;
    }

    private void MoveToTail(int call)
    {
        RemoveFromList(call);
        _list[_listCount++] = call;
    }

    private int IndexInList(int call)
    {
        for (var i = 0; i < _listCount; i++) if (_list[i] == call) return i;
        throw new InvalidOperationException($"call {call} is not in the list");
    }

    private void Require(bool ok, int call, string what)
    {
        if (!ok) throw new ModelStepException($"call {call} cannot {what}: it is {_phase[call].Label()}{(_done[call] ? " (completion done)" : "")}");
    }

    /// <summary>Writes everything that decides the future into a canonical byte key, calls and sessions renamed by the maps (identity when null).</summary>
    public void WriteKey(ref KeyWriter k, int calls, int sessions, int[]? callMap = null, int[]? sessionMap = null)
    {
        k.Byte((byte)Math.Clamp(Free + 64, 0, 255)); k.Byte((byte)SysReqCount); k.Byte((byte)SecureFree);
        Span<int> inverse = stackalloc int[calls];
        for (var c = 0; c < calls; c++) inverse[callMap?[c] ?? c] = c;
        for (var q = 0; q < calls; q++)
        {
            var c = inverse[q];
            k.Byte((byte)((byte)_phase[c] | (_sys[c] ? 0x10 : 0)));
        }
        k.Byte((byte)_listCount);
        for (var i = 0; i < _listCount; i++)
        {
            var c = _list[i];
            k.Byte((byte)(((callMap?[c] ?? c) << 1) | (_done[c] ? 1 : 0)));
        }
        Span<bool> sys = stackalloc bool[sessions];
        for (var s = 0; s < sessions; s++) sys[sessionMap?[s] ?? s] = SessionIsSystem(s);
        for (var s = 0; s < sessions; s++) k.Byte(sys[s] ? (byte)1 : (byte)0);
    }

    /// <summary>Overwrites this state with another of the same shape (no allocation: the explorer's hot path).</summary>
    public void CopyFrom(DriverState o)
    {
        Free = o.Free; SysReqCount = o.SysReqCount; SecureFree = o.SecureFree; _listCount = o._listCount;
        o._phase.AsSpan().CopyTo(_phase); o._sys.AsSpan().CopyTo(_sys); o._done.AsSpan().CopyTo(_done);
        o._list.AsSpan(0, o._listCount).CopyTo(_list); o._sessionSys.AsSpan().CopyTo(_sessionSys);
        _forwarding = o._forwarding;
    }

    /// <summary>Restores what <see cref="WriteKey"/> wrote; returns the bytes read.</summary>
    public int ReadKey(ReadOnlySpan<byte> key, int calls, int sessions)
    {
        var i = 0;
        Free = key[i++] - 64; SysReqCount = key[i++]; SecureFree = key[i++];
        _forwarding = -1;
        for (var c = 0; c < calls; c++)
        {
            var b = key[i++];
            _phase[c] = (CallPhase)(b & 0x0F); _sys[c] = (b & 0x10) != 0; _done[c] = false;
            if (_phase[c] == CallPhase.Forwarding) _forwarding = c;
        }
        _listCount = key[i++];
        for (var j = 0; j < _listCount; j++)
        {
            var b = key[i++];
            _list[j] = b >> 1;
            _done[b >> 1] = (b & 1) != 0;
        }
        for (var s = 0; s < sessions; s++) _sessionSys[s] = key[i++] != 0;
        return i;
    }

    /// <summary>One line for logs and reports: counters and the list, '*' marking set completions.</summary>
    public string Describe(Func<int, string> callName) => Describe(callName, int.MaxValue);

    /// <summary>
    /// The state with at most <paramref name="maxEntries"/> waiters of the list spelled out (the rest
    /// counted): a timeline prints a state per row, and a full list per row would make the output
    /// grow with the square of the calls.
    /// </summary>
    public string Describe(Func<int, string> callName, int maxEntries)
    {
        var entries = List.Take(maxEntries).Select(c => $"{callName(c)}{(_sys[c] ? "[sys]" : "")}:{_phase[c].Label()}{(_done[c] ? "*" : "")}").ToList();
        if (_listCount > maxEntries) entries.Add($"… +{_listCount - maxEntries} more");
        var counters = Total > 0 ? $"free={Free}/{Total} sys_req={SysReqCount}" : $"no counting sys_req={SysReqCount}";
        return $"{counters} secure_free={SecureFree}/{SecureThreads} list=[{string.Join(", ", entries)}]";
    }
}

/// <summary>A transition asked of a call in a phase where the kernel could not be (a model or caller bug).</summary>
public sealed class ModelStepException(string message) : InvalidOperationException(message);
