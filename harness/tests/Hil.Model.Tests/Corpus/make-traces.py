#!/usr/bin/env python3
"""Writes the malformed-trace corpus (Corpus/traces/*.jsonl) and expected.tsv beside it.

Each case is a small trace with one thing wrong, and what check-trace must say about it: an
error naming the line and field (exit 2), or a verdict (conforms / diverges at a line) where the
input is well-formed but odd. Run it again after changing the cases; the test reads expected.tsv.
"""
import json, os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "traces")

HDR = {"type": "header", "format": "hil-cq-trace/1", "policy": "legacy", "threads": 2,
       "probes": ["wait_init", "admitted", "block", "woken", "complete", "final", "smc_begin", "smc_end"]}

def j(o):
    return json.dumps(o, separators=(",", ":"), ensure_ascii=False)

def call(task, w, t0, hold=0.5):
    """One uncontended legacy call, as the tracer writes it."""
    return [
        {"t": t0, "task": task, "ev": "wait_init", "w": w, "sys": 0},
        {"t": t0, "task": task, "ev": "admitted"},
        {"t": t0, "task": task, "ev": "smc_begin", "smc": "call"},
        {"t": t0 + hold, "task": task, "ev": "smc_end", "result": "ok"},
        {"t": t0 + hold, "task": task, "ev": "final", "w": w, "done": 0},
    ]

GOOD = [j(HDR)] + [j(o) for o in call("A-1", "0xa0", 0.0) + call("B-2", "0xb0", 1.0)]

cases = []   # (name, lines or bytes, expect)

def case(name, lines, expect):
    cases.append((name, lines, expect))

def with_line(i, text):
    l = list(GOOD); l[i] = text; return l

def ins(i, text):
    l = list(GOOD); l.insert(i, text); return l

# ---- well-formed: the verdict must be right --------------------------------------------------
case("good", GOOD, "conforms")
case("good-no-header-policy-missing", GOOD[1:], "error 1 policy")
case("mark-only-after-events", GOOD + [j({"t": 2.0, "ev": "mark", "text": "end"})], "conforms")

# ---- timestamps --------------------------------------------------------------------------------
case("time-decreasing", GOOD[:4] + [j({"t": 0.4, "task": "A-1", "ev": "smc_end", "result": "ok"}), j({"t": 0.3, "task": "A-1", "ev": "final", "w": "0xa0"})] + GOOD[6:], "error 6 t")
case("time-decreasing-across-tasks", GOOD[:6] + [j({"t": 0.1, "task": "B-2", "ev": "wait_init", "w": "0xb0", "sys": 0})] + GOOD[7:], "error 7 t")
case("time-negative", [GOOD[0], j({"t": -1.0, "task": "A-1", "ev": "wait_init", "w": "0xa0", "sys": 0})] + GOOD[2:], "error 2 t")
case("time-ns-negative", [GOOD[0], j({"t_ns": -5, "task": "A-1", "ev": "wait_init", "w": "0xa0", "sys": 0})] + GOOD[2:], "error 2 t_ns")
case("time-missing", [GOOD[0], j({"task": "A-1", "ev": "wait_init", "w": "0xa0", "sys": 0})] + GOOD[2:], "error 2 t")
case("time-string", [GOOD[0], '{"t":"0.0","task":"A-1","ev":"wait_init","w":"0xa0","sys":0}'] + GOOD[2:], "error 2 t")
case("time-both-t-and-t_ns", [GOOD[0], '{"t":0.0,"t_ns":0,"task":"A-1","ev":"wait_init","w":"0xa0","sys":0}'] + GOOD[2:], "error 2 t_ns")
case("time-huge-then-small", GOOD[:3] + ['{"t":1e300,"task":"A-1","ev":"smc_begin","smc":"call"}'] + GOOD[4:], "error 5 t")

# ---- header --------------------------------------------------------------------------------------
def hdr(**kw):
    h = dict(HDR); h.update(kw); return j(h)
case("format-wrong", [hdr(format="hil-cq-trace/2")] + GOOD[1:], "error 1 format")
case("format-other-tool", [hdr(format="perf-script")] + GOOD[1:], "error 1 format")
case("format-number", ['{"type":"header","format":1,"policy":"legacy","threads":2}'] + GOOD[1:], "error 1 format")
case("header-only", [GOOD[0]], "error 1 ev")
case("header-and-marks-only", [GOOD[0], j({"t": 0.0, "ev": "mark", "text": "start"}), j({"t": 1.0, "ev": "mark", "text": "end"})], "error 3 ev")
case("empty-file", [], "error 1 ev")
case("comments-only", ["# nothing here", "", "# still nothing"], "error 3 ev")
case("header-threads-negative", [hdr(threads=-2)] + GOOD[1:], "error 1 threads")
case("header-threads-zero", [hdr(threads=0)] + GOOD[1:], "error 1 threads")
case("header-threads-huge", [hdr(threads=1000000000)] + GOOD[1:], "error 1 threads")
case("header-threads-string", [hdr(threads="2")] + GOOD[1:], "error 1 threads")
case("header-threads-fraction", [hdr(threads=1.5)] + GOOD[1:], "error 1 threads")
case("header-driver-threads-negative", [hdr(driver_threads=-1)] + GOOD[1:], "error 1 driver_threads")
case("header-sysreq-negative", [hdr(sysreq=-1)] + GOOD[1:], "error 1 sysreq")
case("header-policy-unknown", [hdr(policy="v11")] + GOOD[1:], "error 1 policy")
case("header-policy-number", [hdr(policy=6)] + GOOD[1:], "error 1 policy")
case("header-probes-not-list", [hdr(probes="wait_init")] + GOOD[1:], "error 1 probes")
case("header-probes-unknown", [hdr(probes=["wait_init", "teleport"])] + GOOD[1:], "error 1 probes")
case("header-on-line-2", [GOOD[1], GOOD[0]] + GOOD[2:], "error 2 type")
case("header-twice", GOOD[:2] + [GOOD[0]] + GOOD[2:], "error 3 type")
case("header-type-unknown", ['{"type":"footer","format":"hil-cq-trace/1"}'] + GOOD[1:], "error 1 type")
case("header-policy-long", [hdr(policy="x" * 300)] + GOOD[1:], "error 1 policy")

# ---- garbage after the object, broken JSON -------------------------------------------------------
case("garbage-after-object", with_line(2, GOOD[2] + "xyz"), "error 3 (line)")
case("garbage-second-object", with_line(2, GOOD[2] + GOOD[2]), "error 3 (line)")
case("garbage-closing-brace", with_line(3, GOOD[3] + "}"), "error 4 (line)")
case("garbage-comma", with_line(3, GOOD[3] + ","), "error 4 (line)")
case("garbage-after-header", [GOOD[0] + " []"] + GOOD[1:], "error 1 (line)")
case("truncated-object", with_line(4, GOOD[4][:-1]), "error 5 result")
case("truncated-mid-string", with_line(4, GOOD[4][:20]), "error 5 task")
case("not-json", with_line(2, "wait_init A-1 0xa0"), "error 3 (line)")
case("json-array", with_line(2, "[1,2,3]"), "error 3 (line)")
case("json-string", with_line(2, '"wait_init"'), "error 3 (line)")
case("trailing-comma-in-object", with_line(2, GOOD[2][:-1] + ",}"), "error 3 ev")
case("single-quotes", with_line(2, GOOD[2].replace('"', "'")), "error 3 (line)")
case("comment-in-line", with_line(2, GOOD[2][:-1] + "/* c */}"), "error 3 ev")
case("invalid-utf8-task", [GOOD[0]] + [b'{"t":0.0,"task":"A-\xff\xfe","ev":"wait_init","w":"0xa0","sys":0}'] + GOOD[2:], "error 2 task")

# ---- duplicated fields ---------------------------------------------------------------------------
case("dup-ev", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","ev":"final","w":"0xa0","sys":0}'), "error 2 ev")
case("dup-t", with_line(1, '{"t":0.0,"t":5.0,"task":"A-1","ev":"wait_init","w":"0xa0","sys":0}'), "error 2 t")
case("dup-task", with_line(1, '{"t":0.0,"task":"A-1","task":"B-2","ev":"wait_init","w":"0xa0","sys":0}'), "error 2 task")
case("dup-w", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","w":"0xa0","w":"0xb0","sys":0}'), "error 2 w")
case("dup-sys", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","w":"0xa0","sys":0,"sys":1}'), "error 2 sys")
case("dup-result", with_line(4, '{"t":0.5,"task":"A-1","ev":"smc_end","result":"ok","result":"rpc"}'), "error 5 result")
case("dup-header-threads", ['{"type":"header","format":"hil-cq-trace/1","policy":"legacy","threads":2,"threads":4}'] + GOOD[1:], "error 1 threads")
case("dup-header-policy", ['{"type":"header","format":"hil-cq-trace/1","policy":"legacy","policy":"mainline","threads":2}'] + GOOD[1:], "error 1 policy")
case("dup-done", with_line(5, '{"t":0.5,"task":"A-1","ev":"final","w":"0xa0","done":0,"done":1}'), "error 6 done")
case("dup-extra-field-allowed", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","w":"0xa0","sys":0,"cpu":1,"cpu":2}'), "conforms")

# ---- task names ----------------------------------------------------------------------------------
long_task = "T" * 300
case("task-300-chars", with_line(1, j({"t": 0.0, "task": long_task, "ev": "wait_init", "w": "0xa0", "sys": 0})), "error 2 task")
case("task-300-escaped", with_line(1, '{"t":0.0,"task":"' + "\\u0041" * 300 + '","ev":"wait_init","w":"0xa0","sys":0}'), "error 2 task")
case("task-256-chars-ok", [GOOD[0]] + [l.replace('"A-1"', '"' + "A" * 256 + '"') for l in GOOD[1:]], "conforms")
case("task-missing", with_line(1, '{"t":0.0,"ev":"wait_init","w":"0xa0","sys":0}'), "error 2 task")
case("task-object", with_line(1, '{"t":0.0,"task":{"n":1},"ev":"wait_init","w":"0xa0","sys":0}'), "error 2 task")

# ---- counters and flags --------------------------------------------------------------------------
case("free-negative", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","w":"0xa0","sys":0,"free":-1}'), "error 2 free")
case("sysreq-negative", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","w":"0xa0","sys":0,"sysreq":-3}'), "error 2 sysreq")
case("total-negative", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","w":"0xa0","sys":0,"total":-2}'), "error 2 total")
case("free-fraction", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","w":"0xa0","sys":0,"free":1.5}'), "error 2 free")
case("free-too-big", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","w":"0xa0","sys":0,"free":99999999999}'), "error 2 free")
case("sys-two", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","w":"0xa0","sys":2}'), "error 2 sys")
case("done-string", with_line(5, '{"t":0.5,"task":"A-1","ev":"final","w":"0xa0","done":"yes"}'), "error 6 done")
case("total-wrong-value", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","w":"0xa0","sys":0,"total":7}'), "diverges 2")

# ---- events and values ---------------------------------------------------------------------------
case("ev-unknown", with_line(2, '{"t":0.0,"task":"A-1","ev":"teleport"}'), "error 3 ev")
case("ev-missing", with_line(2, '{"t":0.0,"task":"A-1","w":"0xa0"}'), "error 3 ev")
case("ev-number", with_line(2, '{"t":0.0,"task":"A-1","ev":3}'), "error 3 ev")
case("w-missing", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","sys":0}'), "error 2 w")
case("w-not-hex", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","w":"0xzz","sys":0}'), "error 2 w")
case("w-empty", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","w":"0x","sys":0}'), "error 2 w")
case("w-too-long", with_line(1, '{"t":0.0,"task":"A-1","ev":"wait_init","w":"0x1ffffffffffffffffff","sys":0}'), "error 2 w")
case("smc-unknown", with_line(3, '{"t":0.0,"task":"A-1","ev":"smc_begin","smc":"yield"}'), "error 4 smc")
case("result-unknown", with_line(4, '{"t":0.5,"task":"A-1","ev":"smc_end","result":"maybe"}'), "error 5 result")
case("result-missing", with_line(4, '{"t":0.5,"task":"A-1","ev":"smc_end"}'), "error 5 result")

# ---- lines the tracer always writes, missing (well-formed: a divergence) ------------------------
def drop(i):
    l = list(GOOD); del l[i]; return l
case("missing-admitted", drop(2), "diverges 3")
case("missing-smc-begin", drop(3), "diverges 4")
case("missing-smc-end", drop(4), "diverges 5")
# A never ends in the model, so B's wait_final must complete A: it shows no complete line.
case("missing-final", drop(5), "diverges 10")
# B's first line is its admitted: as if the trace began while B was inside wait_init (a verdict, not an error).
case("missing-wait-init-of-a-tasks-first-call", drop(6), "conforms")
case("missing-wait-init-of-a-later-call", GOOD + [j(o) for o in call("A-1", "0xa1", 3.0)][1:], "diverges 12")
case("missing-final-of-last-call", drop(10), "conforms")   # the trace may end mid-call: nothing says a line is missing

# ---- many calls in flight when the trace began ---------------------------------------------------
inflight = [j(dict(HDR, threads=2))]
for k in range(100):
    inflight.append(j({"t": 0.001 * k, "task": f"K-{k}", "ev": "final", "w": f"0x{0x1000 + k * 0x40:x}", "done": 0}))
case("hundred-calls-in-flight", inflight, "diverges 101")

os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    if f.endswith(".jsonl"):
        os.remove(os.path.join(OUT, f))
with open(os.path.join(OUT, "expected.tsv"), "w") as m:
    m.write("# file\texpected (error LINE FIELD | conforms | diverges LINE); written by ../make-traces.py\n")
    for name, lines, expect in cases:
        data = b"".join((l if isinstance(l, bytes) else l.encode()) + b"\n" for l in lines)
        with open(os.path.join(OUT, name + ".jsonl"), "wb") as f:
            f.write(data)
        m.write(f"{name}.jsonl\t{expect}\n")
print(len(cases), "cases")
