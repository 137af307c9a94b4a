// SPDX-License-Identifier: GPL-2.0
/*
 * hil_cq - issue OP-TEE calls from kernel threads at chosen times.
 *
 * HilHarness checks the OP-TEE driver's call queue (and, from Linux 6.8, its
 * "system threads") against a reference model. User space cannot make system
 * calls (only kernel clients can mark a session as a system session), so this
 * module opens kernel TEE sessions to Debian's os_test TA and makes calls that
 * hold a secure thread for a chosen time (os_test command 9 = TEE_Wait) from
 * several kernel threads, each started at a chosen offset of one time base.
 *
 * Interface (debugfs, /sys/kernel/debug/hil_cq/):
 *   ctl       write one command per write():
 *               open NAME normal|system   open a session (and register it as a system session)
 *               close NAME                close a session (recorded: closing a system session is a system call)
 *               close NAME START_MS       queue the close of session NAME at t0 + START_MS: it runs in a
 *                                         thread of the next run like a call, so a test can close a
 *                                         system session while calls are queued behind it (the close
 *                                         uncounts the session and wakes a waiter); the session takes no
 *                                         new call or command once its close is queued
 *               call NAME START_MS HOLD_MS queue TEE_Wait(HOLD_MS) on session NAME at t0 + START_MS
 *               register NAME             ask for a system session again on open session NAME (the
 *                                         driver must count a session once however often it is asked)
 *               register-id TEE_SESSION   ask for a system session on a raw TEE session id, e.g. one
 *                                         that is not open (the driver must refuse it and count nothing)
 *                                         a register's result is a record (rc), not a rejected command
 *               go [LEAD_MS]              start every queued call; t0 = now + LEAD_MS (default 10)
 *               cancel                    drop calls not started yet (running ones finish their hold)
 *               reset                     close every session, forget every record (not while a run is in flight);
 *                                         also disarms a stall
 *               stall SYMBOL+OFFSET USEC  timing injection (a fault-injection aid, beside the real path): a kprobe at
 *                                         SYMBOL+OFFSET (e.g. optee_cq_complete_one+0x60) whose pre-handler
 *                                         busy-waits USEC microseconds (1..20000), only in this module's own call
 *                                         threads (hilcq-N; every other task passes untouched), to widen a race
 *                                         window of the driver without changing the driver; replaces an armed stall
 *               stall off                 unregister it (also done by reset and at unload)
 *             a rejected command fails the write() (EINVAL, ENOENT, EEXIST, EBUSY, ENOSPC, ENODEV, EIO)
 *             and leaves the reason in `error`
 *   results   one line per record (open / invoke / close), see format_record()
 *   sessions  one line per open session
 *   info      key: value lines (kernel release, system-session support, run state, time base, the stall:
 *             "stall: off" or "stall: SYMBOL+0xOFF", "stall_us", "stall_hits")
 *   error     the reason the last command was rejected (empty after a command that succeeded)
 *   firmware  what OP-TEE itself says, asked with a fast SMC of its own (not through the driver):
 *             thread_count (OPTEE_SMC_GET_THREAD_COUNT, i.e. CFG_NUM_THREADS) and the conduit
 *   fault     write "oops" or "warn": fault injection for the harness's failure classes (an Oops
 *             in the writing task, or a kernel WARNING); armed by the module parameter faults (0644)
 *
 * All times are CLOCK_MONOTONIC nanoseconds (ktime_get_ns()), the clock of ftrace's "mono" trace
 * clock, so that records line up with a call-queue trace.
 *
 * Every function is 8-byte aligned: Debian's 6.12 kernel uses ftrace CALL_OPS, which needs 8-byte
 * aligned function entries; the host's gcc-12 lacks -fmin-function-alignment and its
 * -falign-functions does not reach cold functions, and a misaligned patch site crashes the kernel
 * at insmod. The harness checks every code section of the built module before deploying it.
 */
#define pr_fmt(fmt) "hil_cq: " fmt

#include <linux/arm-smccc.h>
#include <linux/bug.h>
#include <linux/ctype.h>
#include <linux/debugfs.h>
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/ktime.h>
#include <linux/hrtimer.h>
#include <linux/delay.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/of.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/tee_drv.h>
#include <linux/uaccess.h>
#include <linux/utsname.h>
#include <linux/uuid.h>

#define HIL_FN __aligned(8)

#define HIL_VERSION 3
#define MAX_SESSIONS 16
#define MAX_RECORDS 256
#define NAME_LEN 16            /* 15 characters and the NUL */
#define MAX_START_MS 600000U   /* 10 minutes */
#define MAX_HOLD_MS 60000U     /* bounds how long unloading can wait for a call in flight */
#define MAX_LEAD_MS 10000U
#define DEFAULT_LEAD_MS 10U
#define CMD_MAX 128
#define ERR_LEN 200

/* Debian's optee-test os_test TA and its TEE_Wait command. */
#define OS_TEST_CMD_WAIT 9
static const uuid_t os_test_uuid =
	UUID_INIT(0x5b9e0e40, 0x2636, 0x11e1, 0xad, 0x9e, 0x00, 0x02, 0xa5, 0xd5, 0xc5, 0x1b);

#ifdef HIL_HAVE_SYSTEM_SESSION
#define SYSTEM_SESSIONS "supported"
#else
#define SYSTEM_SESSIONS "unsupported"
#endif
MODULE_INFO(hil_system_session, SYSTEM_SESSIONS);

enum rec_op { OP_OPEN, OP_INVOKE, OP_CLOSE, OP_REGISTER };
enum rec_state { ST_QUEUED, ST_WAITING, ST_CALLING, ST_DONE, ST_CANCELLED };
static const char *const op_names[] = { "open", "invoke", "close", "register" };
static const char *const state_names[] = { "queued", "waiting", "calling", "done", "cancelled" };

/* What became of asking for a system session. */
enum sys_status { SYS_NO, SYS_REGISTERED, SYS_UNSUPPORTED, SYS_REJECTED };
static const char *const sys_names[] = { "no", "registered", "unsupported", "rejected" };

struct hil_session {
	bool used;
	char name[NAME_LEN];
	u32 tee_session;
	bool sys;              /* calls on it are system calls (registered) */
	enum sys_status sys_status;
	int sys_rc;
	unsigned int pending;  /* queued or unfinished invoke (or timed close) records naming it */
	bool closing;          /* a timed close is queued or ran: released once it is done */
};

/*
 * One OP-TEE request this module made or will make. Fields a call thread writes
 * (state, times, results) are guarded by hil.lock; the rest is fixed when the
 * record is created under hil.ctl.
 */
struct hil_rec {
	u32 id;
	enum rec_op op;
	int sess;              /* index in hil.sess while the session is open, else -1 */
	char sess_name[NAME_LEN];
	u32 tee_session;
	bool sys;
	bool timed;            /* invoke or timed close: start_ms/hold_ms/due_ns are meaningful */
	u32 start_ms, hold_ms;
	enum rec_state state;
	bool cancel;           /* do not start; set by cancel/unload */
	pid_t tid;
	u64 due_ns, req_ns, ret_ns;
	int rc;
	u32 tee_ret, origin;
	struct task_struct *task; /* invoke: its thread (a reference is held until reaped) */
};

static struct {
	struct mutex ctl;      /* serialises commands, session changes and teardown */
	spinlock_t lock;       /* record fields written by call threads, nrec, err */
	struct tee_context *ctx;
	struct hil_session sess[MAX_SESSIONS];
	struct hil_rec rec[MAX_RECORDS];
	unsigned int nrec;
	u64 t0_ns;
	unsigned int runs;
	char err[ERR_LEN];
	struct dentry *dir;
} hil;

/* ---- errors ----------------------------------------------------------- */

static const char *HIL_FN errno_name(int err)
{
	switch (err) {
	case -EINVAL: return "EINVAL";
	case -ENOENT: return "ENOENT";
	case -EEXIST: return "EEXIST";
	case -EBUSY: return "EBUSY";
	case -ENOSPC: return "ENOSPC";
	case -ENODEV: return "ENODEV";
	case -EIO: return "EIO";
	case -ENOMEM: return "ENOMEM";
	case -EINTR: return "EINTR";
	case -EFAULT: return "EFAULT";
	case -EPERM: return "EPERM";
	default: return "ERROR";
	}
}

/* Rejects a command: the reason goes to the error file and dmesg, the code to write(). */
static __printf(2, 3) int HIL_FN reject(int err, const char *fmt, ...)
{
	char msg[ERR_LEN - 16];
	va_list ap;

	va_start(ap, fmt);
	vscnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	spin_lock(&hil.lock);
	scnprintf(hil.err, sizeof(hil.err), "%s: %s", errno_name(err), msg);
	spin_unlock(&hil.lock);
	pr_info("rejected: %s: %s\n", errno_name(err), msg);
	return err;
}

/* ---- records and sessions -------------------------------------------- */

static struct hil_rec *HIL_FN new_record(enum rec_op op, int sess)
{
	struct hil_rec *r;

	if (hil.nrec >= MAX_RECORDS)
		return NULL;
	r = &hil.rec[hil.nrec];
	memset(r, 0, sizeof(*r));
	r->id = hil.nrec;
	r->op = op;
	r->sess = sess;
	r->tid = -1;
	if (sess >= 0) {
		strscpy(r->sess_name, hil.sess[sess].name, NAME_LEN);
		r->tee_session = hil.sess[sess].tee_session;
		r->sys = hil.sess[sess].sys;
	}
	spin_lock(&hil.lock);
	hil.nrec++;       /* readers see the record only once it is initialised */
	spin_unlock(&hil.lock);
	return r;
}

/* An open or close runs in the writer's context: it is "calling" until it returns. */
static void HIL_FN record_calling(struct hil_rec *r)
{
	spin_lock(&hil.lock);
	r->state = ST_CALLING;
	spin_unlock(&hil.lock);
}

static void HIL_FN record_result(struct hil_rec *r, u64 req, u64 ret, int rc, u32 tee_ret, u32 origin)
{
	spin_lock(&hil.lock);
	r->req_ns = req;
	r->ret_ns = ret;
	r->rc = rc;
	r->tee_ret = tee_ret;
	r->origin = origin;
	r->state = ST_DONE;
	spin_unlock(&hil.lock);
}

static int HIL_FN find_session(const char *name)
{
	int i;

	for (i = 0; i < MAX_SESSIONS; i++)
		if (hil.sess[i].used && !strcmp(hil.sess[i].name, name))
			return i;
	return -1;
}

/* Records a run starts in threads of their own: invokes and timed closes. */
static bool HIL_FN scheduled(const struct hil_rec *r)
{
	return r->op == OP_INVOKE || (r->op == OP_CLOSE && r->timed);
}

/* A session whose timed close is queued takes no new call, close or register. */
static int HIL_FN open_session(const char *cmd, const char *name)
{
	int slot = find_session(name);

	if (slot < 0)
		return reject(-ENOENT, "%s: no open session '%.20s'", cmd, name);
	if (hil.sess[slot].closing)
		return reject(-EBUSY, "%s: session '%s' has a timed close queued", cmd, name);
	return slot;
}

static unsigned int HIL_FN count_state(enum rec_state st)
{
	unsigned int i, n = 0;

	for (i = 0; i < hil.nrec; i++)
		if (hil.rec[i].state == st)
			n++;
	return n;
}

/* Calls started by `go` that have not finished (caller holds hil.lock). */
static unsigned int HIL_FN in_flight(void)
{
	return count_state(ST_WAITING) + count_state(ST_CALLING);
}

static unsigned int HIL_FN in_flight_now(void)
{
	unsigned int n;

	spin_lock(&hil.lock);
	n = in_flight();
	spin_unlock(&hil.lock);
	return n;
}

/* ---- the TEE context --------------------------------------------------- */

/* The OP-TEE client device (tee0), never the supplicant's privileged one (teepriv0). */
static int HIL_FN match_optee(struct tee_ioctl_version_data *ver, const void *data)
{
	return ver->impl_id == TEE_IMPL_ID_OPTEE && !(ver->gen_caps & TEE_GEN_CAP_PRIVILEGED);
}

static int HIL_FN ensure_context(void)
{
	struct tee_context *ctx;

	if (hil.ctx)
		return 0;
	ctx = tee_client_open_context(NULL, match_optee, NULL, NULL);
	if (IS_ERR(ctx))
		return reject(-ENODEV, "no OP-TEE device (rc %ld): is optee.ko loaded and /dev/tee0 present?", PTR_ERR(ctx));
	hil.ctx = ctx;
	return 0;
}

/* ---- commands ---------------------------------------------------------- */

static bool HIL_FN valid_name(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n >= NAME_LEN)
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum(s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

static int HIL_FN cmd_open(int argc, char **argv)
{
	struct tee_ioctl_open_session_arg arg;
	struct tee_param none[1];
	struct hil_session *s;
	struct hil_rec *r;
	bool want_sys;
	u64 req, ret;
	int slot, rc;

	if (argc != 3)
		return reject(-EINVAL, "usage: open NAME normal|system");
	if (!valid_name(argv[1]))
		return reject(-EINVAL, "open: session name '%.20s' must be 1-15 characters of A-Z a-z 0-9 _ -", argv[1]);
	if (!strcmp(argv[2], "system"))
		want_sys = true;
	else if (!strcmp(argv[2], "normal"))
		want_sys = false;
	else
		return reject(-EINVAL, "open: kind '%.20s' must be 'normal' or 'system'", argv[2]);
	if (find_session(argv[1]) >= 0)
		return reject(-EEXIST, "open: session '%s' is already open", argv[1]);
	for (slot = 0; slot < MAX_SESSIONS && hil.sess[slot].used; slot++)
		;
	if (slot == MAX_SESSIONS)
		return reject(-ENOSPC, "open: %d sessions are open already (the limit)", MAX_SESSIONS);
	if (hil.nrec >= MAX_RECORDS)
		return reject(-ENOSPC, "open: the record table is full (%d records): reset first", MAX_RECORDS);
	rc = ensure_context();
	if (rc)
		return rc;

	memset(&arg, 0, sizeof(arg));
	memset(none, 0, sizeof(none));
	export_uuid(arg.uuid, &os_test_uuid);
	arg.clnt_login = TEE_IOCTL_LOGIN_REE_KERNEL;
	arg.num_params = 0;
	r = new_record(OP_OPEN, -1);
	strscpy(r->sess_name, argv[1], NAME_LEN);
	r->tid = current->pid;
	record_calling(r);
	req = ktime_get_ns();
	rc = tee_client_open_session(hil.ctx, &arg, none);
	ret = ktime_get_ns();
	r->tee_session = arg.session;
	record_result(r, req, ret, rc, arg.ret, arg.ret_origin);
	if (rc < 0 || arg.ret != 0)
		return reject(-EIO, "open: os_test session failed: rc %d, TEE result 0x%08x, origin %u (is the os_test TA in /lib/optee_armtz and tee-supplicant running?)",
			      rc, arg.ret, arg.ret_origin);

	s = &hil.sess[slot];
	memset(s, 0, sizeof(*s));
	s->used = true;
	strscpy(s->name, argv[1], NAME_LEN);
	s->tee_session = arg.session;
	s->sys_status = SYS_NO;
	if (want_sys) {
#ifdef HIL_HAVE_SYSTEM_SESSION
		s->sys_rc = tee_client_system_session(hil.ctx, arg.session);
		s->sys = s->sys_rc == 0;
		s->sys_status = s->sys ? SYS_REGISTERED : SYS_REJECTED;
#else
		/* A kernel before 6.8 has no system sessions: a result, not an error. */
		s->sys_rc = -EOPNOTSUPP;
		s->sys_status = SYS_UNSUPPORTED;
#endif
	}
	pr_info("session %s open (tee session %u, %s, system: %s)\n", s->name, s->tee_session,
		s->sys ? "system" : "normal", sys_names[s->sys_status]);
	return 0;
}

static int HIL_FN parse_ms(const char *what, const char *tok, u32 max, u32 *out)
{
	if (kstrtou32(tok, 10, out))
		return reject(-EINVAL, "%s '%.20s' is not a whole number of milliseconds", what, tok);
	if (*out > max)
		return reject(-EINVAL, "%s %u is above the limit %u", what, *out, max);
	return 0;
}

/* Closes an open session and records the close (a system call when the session is a system one). */
static void HIL_FN close_session(int slot, bool record)
{
	struct hil_session *s = &hil.sess[slot];
	struct hil_rec *r = record ? new_record(OP_CLOSE, slot) : NULL;
	u64 req, ret;
	int rc, i;

	if (r) {
		r->tid = current->pid;
		record_calling(r);
	}
	req = ktime_get_ns();
	rc = tee_client_close_session(hil.ctx, s->tee_session);
	ret = ktime_get_ns();
	if (r)
		record_result(r, req, ret, rc, 0, 0);
	for (i = 0; i < hil.nrec; i++)
		if (hil.rec[i].sess == slot)
			hil.rec[i].sess = -1;
	s->used = false;
}

static int HIL_FN cmd_close(int argc, char **argv)
{
	struct hil_rec *r;
	u32 start;
	int slot, rc;

	if (argc != 2 && argc != 3)
		return reject(-EINVAL, "usage: close NAME [START_MS]");
	slot = open_session("close", argv[1]);
	if (slot < 0)
		return slot;
	if (hil.sess[slot].pending)
		return reject(-EBUSY, "close: session '%s' has %u queued or unfinished calls", argv[1], hil.sess[slot].pending);
	if (hil.nrec >= MAX_RECORDS)
		return reject(-ENOSPC, "close: the record table is full (%d records): reset first", MAX_RECORDS);
	if (argc == 2) {
		close_session(slot, true);
		return 0;
	}
	/*
	 * A timed close: the next run's thread for it closes the session at t0 + START_MS, and
	 * settle_pending() frees the slot once it is done (a close cannot be undone, so the session
	 * takes nothing new from now on).
	 */
	rc = parse_ms("close: start_ms", argv[2], MAX_START_MS, &start);
	if (rc)
		return rc;
	r = new_record(OP_CLOSE, slot);
	r->timed = true;
	r->start_ms = start;
	r->hold_ms = 0;
	r->state = ST_QUEUED;
	hil.sess[slot].closing = true;
	hil.sess[slot].pending++;
	return 0;
}

/*
 * tee_client_system_session() once more, on an open session or on a raw TEE session id (which
 * need not be open): the driver's answer is the record's rc, so a refusal is a result. A session
 * the driver accepts becomes a system session here too (its later calls carry sys).
 */
static int HIL_FN cmd_register(int argc, char **argv, bool raw)
{
	struct hil_rec *r;
	u32 id;
	int slot = -1, rc;

	if (argc != 2)
		return reject(-EINVAL, raw ? "usage: register-id TEE_SESSION" : "usage: register NAME");
	if (raw) {
		if (kstrtou32(argv[1], 10, &id))
			return reject(-EINVAL, "register-id: '%.20s' is not a TEE session id", argv[1]);
	} else {
		slot = open_session("register", argv[1]);
		if (slot < 0)
			return slot;
		id = hil.sess[slot].tee_session;
	}
	if (hil.nrec >= MAX_RECORDS)
		return reject(-ENOSPC, "register: the record table is full (%d records): reset first", MAX_RECORDS);
	rc = ensure_context();
	if (rc)
		return rc;
	r = new_record(OP_REGISTER, slot);
	if (raw)
		scnprintf(r->sess_name, NAME_LEN, "#%u", id);
	r->tee_session = id;
	r->tid = current->pid;
	record_calling(r);
#ifdef HIL_HAVE_SYSTEM_SESSION
	{
		u64 req = ktime_get_ns();

		rc = tee_client_system_session(hil.ctx, id);
		record_result(r, req, ktime_get_ns(), rc, 0, 0);
	}
#else
	rc = -EOPNOTSUPP;
	record_result(r, ktime_get_ns(), ktime_get_ns(), rc, 0, 0);
#endif
	if (slot >= 0 && rc == 0) {
		hil.sess[slot].sys = true;
		hil.sess[slot].sys_status = SYS_REGISTERED;
		hil.sess[slot].sys_rc = 0;
	}
	pr_info("register %s (tee session %u): rc %d\n", r->sess_name, id, rc);
	return 0;
}

static int HIL_FN cmd_call(int argc, char **argv)
{
	struct hil_rec *r;
	u32 start, hold;
	int slot, rc;

	if (argc != 4)
		return reject(-EINVAL, "usage: call NAME START_MS HOLD_MS");
	slot = find_session(argv[1]);
	if (slot < 0)
		return reject(-ENOENT, "call: no open session '%.20s' (open it first)", argv[1]);
	if (hil.sess[slot].closing)
		return reject(-EBUSY, "call: session '%s' has a timed close queued", argv[1]);
	rc = parse_ms("call: start_ms", argv[2], MAX_START_MS, &start);
	if (rc)
		return rc;
	rc = parse_ms("call: hold_ms", argv[3], MAX_HOLD_MS, &hold);
	if (rc)
		return rc;
	r = new_record(OP_INVOKE, slot);
	if (!r)
		return reject(-ENOSPC, "call: the record table is full (%d records): reset first", MAX_RECORDS);
	r->timed = true;
	r->start_ms = start;
	r->hold_ms = hold;
	r->state = ST_QUEUED;
	hil.sess[slot].pending++;
	return 0;
}

/* The life of one call: sleep until its start time, TEE_Wait(hold) (or the close), record what happened. */
static int HIL_FN call_thread(void *data)
{
	struct hil_rec *r = data;
	ktime_t due = ns_to_ktime(r->due_ns);
	struct tee_ioctl_invoke_arg arg;
	struct tee_param p[4];
	u64 req, ret;
	int rc;

	for (;;) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (kthread_should_stop() || READ_ONCE(r->cancel) || ktime_get_ns() >= r->due_ns)
			break;
		/* Absolute expiry on CLOCK_MONOTONIC: lands within a few ms of the asked time. */
		schedule_hrtimeout(&due, HRTIMER_MODE_ABS);
	}
	__set_current_state(TASK_RUNNING);

	spin_lock(&hil.lock);
	if (kthread_should_stop() || r->cancel) {
		r->state = ST_CANCELLED;
		spin_unlock(&hil.lock);
		return 0;
	}
	r->state = ST_CALLING;
	spin_unlock(&hil.lock);

	if (r->op == OP_CLOSE) {
		/* A timed close: the session's slot is freed under hil.ctl by settle_pending(). */
		req = ktime_get_ns();
		rc = tee_client_close_session(hil.ctx, r->tee_session);
		ret = ktime_get_ns();
		record_result(r, req, ret, rc, 0, 0);
		return 0;
	}

	memset(&arg, 0, sizeof(arg));
	memset(p, 0, sizeof(p));
	arg.func = OS_TEST_CMD_WAIT;
	arg.session = r->tee_session;
	arg.cancel_id = r->id + 1;
	arg.num_params = 4;
	p[0].attr = TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INPUT;
	p[0].u.value.a = r->hold_ms;
	req = ktime_get_ns();
	rc = tee_client_invoke_func(hil.ctx, &arg, p);
	ret = ktime_get_ns();
	record_result(r, req, ret, rc, arg.ret, arg.ret_origin);
	/* Returning hands the thread back to kthread() (core code); whoever reaps it holds a reference. */
	return 0;
}

/* Waits for a finished or stopping call thread and drops our reference: exactly once per thread. */
static void HIL_FN reap(struct hil_rec *r)
{
	if (!r->task)
		return;
	kthread_stop(r->task);
	put_task_struct(r->task);
	r->task = NULL;
}

static int HIL_FN cmd_go(int argc, char **argv)
{
	unsigned int i, n = 0, busy;
	u32 lead = DEFAULT_LEAD_MS;
	u64 t0;
	int rc;

	if (argc > 2)
		return reject(-EINVAL, "usage: go [LEAD_MS]");
	if (argc == 2) {
		rc = parse_ms("go: lead_ms", argv[1], MAX_LEAD_MS, &lead);
		if (rc)
			return rc;
	}
	busy = in_flight_now();
	if (busy)
		return reject(-EBUSY, "go: %u calls of the previous run have not finished (wait, or cancel)", busy);
	for (i = 0; i < hil.nrec; i++)
		if (scheduled(&hil.rec[i]) && hil.rec[i].state == ST_QUEUED)
			n++;
	if (!n)
		return reject(-EINVAL, "go: no calls queued (queue some with: call NAME START_MS HOLD_MS)");
	/* Threads of earlier runs have finished: reap them before starting new ones. */
	for (i = 0; i < hil.nrec; i++)
		if (hil.rec[i].state != ST_QUEUED)
			reap(&hil.rec[i]);

	/* Create every thread first, so that the time base does not include thread creation. */
	for (i = 0; i < hil.nrec; i++) {
		struct hil_rec *r = &hil.rec[i];
		struct task_struct *t;

		if (!scheduled(r) || r->state != ST_QUEUED)
			continue;
		t = kthread_create(call_thread, r, "hilcq-%u", r->id);
		if (IS_ERR(t)) {
			unsigned int j;

			/* Never woken: kthread_stop() makes them exit without running call_thread(). */
			for (j = 0; j < i; j++)
				if (hil.rec[j].state == ST_QUEUED && hil.rec[j].task) {
					reap(&hil.rec[j]);
					hil.rec[j].tid = -1;
				}
			return reject(-ENOMEM, "go: cannot create a kernel thread (rc %ld)", PTR_ERR(t));
		}
		get_task_struct(t);
		r->task = t;
		r->tid = t->pid;
	}
	t0 = ktime_get_ns() + (u64)lead * NSEC_PER_MSEC;
	spin_lock(&hil.lock);
	hil.t0_ns = t0;
	hil.runs++;
	for (i = 0; i < hil.nrec; i++) {
		struct hil_rec *r = &hil.rec[i];

		if (!scheduled(r) || r->state != ST_QUEUED)
			continue;
		r->due_ns = t0 + (u64)r->start_ms * NSEC_PER_MSEC;
		r->state = ST_WAITING;
	}
	spin_unlock(&hil.lock);
	for (i = 0; i < hil.nrec; i++)
		if (hil.rec[i].state == ST_WAITING && hil.rec[i].task)
			wake_up_process(hil.rec[i].task);
	return 0;
}

/*
 * Drops calls that have not started. Running ones cannot be cut short from a kernel client:
 * tee_client_cancel_req() is declared but not exported, so they run to the end of their hold
 * (at most MAX_HOLD_MS).
 */
static void HIL_FN cancel_waiting(void)
{
	unsigned int i;

	for (i = 0; i < hil.nrec; i++) {
		struct hil_rec *r = &hil.rec[i];
		enum rec_state st;

		if (!scheduled(r))
			continue;
		spin_lock(&hil.lock);
		st = r->state;
		if (st == ST_WAITING || st == ST_QUEUED)
			r->cancel = true;
		if (st == ST_QUEUED)
			r->state = ST_CANCELLED;
		spin_unlock(&hil.lock);
		if (st == ST_WAITING && r->task)
			wake_up_process(r->task);
	}
}

/*
 * Calls that will never run or have finished no longer hold their session; a session whose timed
 * close is done is gone (its slot is freed), one whose timed close was cancelled is open again.
 * Runs under hil.ctl.
 */
static void HIL_FN settle_pending(void)
{
	unsigned int i, j;
	int s;

	for (i = 0; i < hil.nrec; i++) {
		struct hil_rec *r = &hil.rec[i];
		enum rec_state st;

		if (r->op != OP_CLOSE || !r->timed || r->sess < 0)
			continue;
		spin_lock(&hil.lock);
		st = r->state;
		spin_unlock(&hil.lock);
		s = r->sess;
		if (st == ST_DONE) {
			for (j = 0; j < hil.nrec; j++)
				if (hil.rec[j].sess == s)
					hil.rec[j].sess = -1;
			hil.sess[s].used = false;
			hil.sess[s].closing = false;
		} else if (st == ST_CANCELLED) {
			r->sess = -1;
			hil.sess[s].closing = false;
		}
	}
	for (s = 0; s < MAX_SESSIONS; s++)
		hil.sess[s].pending = 0;
	spin_lock(&hil.lock);
	for (i = 0; i < hil.nrec; i++) {
		struct hil_rec *r = &hil.rec[i];

		if (scheduled(r) && r->sess >= 0 &&
		    (r->state == ST_QUEUED || r->state == ST_WAITING || r->state == ST_CALLING))
			hil.sess[r->sess].pending++;
	}
	spin_unlock(&hil.lock);
}

static int HIL_FN cmd_cancel(int argc, char **argv)
{
	if (argc != 1)
		return reject(-EINVAL, "usage: cancel");
	cancel_waiting();
	return 0;
}

/* ---- timing injection: a stall in our own call threads ------------------ */

/*
 * A kprobe whose pre-handler busy-waits, hit only by this module's call threads: it widens a race
 * window of the driver (e.g. between wait_for_completion() returning and the woken caller taking
 * the queue's mutex) without touching the driver. A fault-injection aid beside the real path, not
 * a model of it. Guarded by hil.ctl; the handler reads only stall_us and the task table.
 */
#define MAX_STALL_US 20000U
#define STALL_SYM_LEN 128

static struct {
	bool armed;
	struct kprobe kp;
	char sym[STALL_SYM_LEN];
	unsigned int offset;
	u32 us;
	atomic_t hits;
} stall;

/* One of our call threads? Compares task pointers only (nothing is dereferenced). */
static bool HIL_FN is_call_thread(struct task_struct *t)
{
	unsigned int i, n = min_t(unsigned int, READ_ONCE(hil.nrec), MAX_RECORDS);

	if (!(t->flags & PF_KTHREAD))
		return false;
	for (i = 0; i < n; i++)
		if (READ_ONCE(hil.rec[i].task) == t)
			return true;
	return false;
}

#ifdef CONFIG_KPROBES
static int HIL_FN stall_pre(struct kprobe *p, struct pt_regs *regs)
{
	u32 us = READ_ONCE(stall.us);

	if (!us || !is_call_thread(current))
		return 0;
	atomic_inc(&stall.hits);
	while (us >= 1000) {
		udelay(1000);
		us -= 1000;
	}
	if (us)
		udelay(us);
	return 0;
}
#endif

static void HIL_FN stall_disarm(void)
{
#ifdef CONFIG_KPROBES
	if (!stall.armed)
		return;
	unregister_kprobe(&stall.kp);   /* waits for handlers in progress */
	stall.armed = false;
	pr_info("stall off (%s+0x%x hit %d times)\n", stall.sym, stall.offset, atomic_read(&stall.hits));
#endif
}

static int HIL_FN cmd_stall(int argc, char **argv)
{
	char *plus;
	unsigned int off, i;
	u32 us;
	int rc;

	if (argc == 2 && !strcmp(argv[1], "off")) {
		stall_disarm();
		return 0;
	}
	if (argc != 3)
		return reject(-EINVAL, "usage: stall SYMBOL+OFFSET USEC | stall off");
#ifndef CONFIG_KPROBES
	return reject(-ENODEV, "stall: the kernel is built without CONFIG_KPROBES");
#else
	plus = strchr(argv[1], '+');
	if (!plus || plus == argv[1] || plus - argv[1] >= STALL_SYM_LEN)
		return reject(-EINVAL, "stall: site '%.40s' is not SYMBOL+OFFSET", argv[1]);
	for (i = 0; argv[1] + i < plus; i++)
		if (!isalnum(argv[1][i]) && argv[1][i] != '_' && argv[1][i] != '.')
			return reject(-EINVAL, "stall: bad symbol in '%.40s'", argv[1]);
	if (kstrtouint(plus + 1, 0, &off) || off > 0x10000)
		return reject(-EINVAL, "stall: bad offset in '%.40s'", argv[1]);
	if (kstrtou32(argv[2], 10, &us) || !us || us > MAX_STALL_US)
		return reject(-EINVAL, "stall: usec '%.20s' is not 1..%u", argv[2], MAX_STALL_US);
	stall_disarm();
	memset(&stall.kp, 0, sizeof(stall.kp));
	memcpy(stall.sym, argv[1], plus - argv[1]);
	stall.sym[plus - argv[1]] = '\0';
	stall.offset = off;
	WRITE_ONCE(stall.us, us);
	atomic_set(&stall.hits, 0);
	stall.kp.symbol_name = stall.sym;
	stall.kp.offset = off;
	stall.kp.pre_handler = stall_pre;
	rc = register_kprobe(&stall.kp);
	if (rc)
		return reject(rc == -ENOENT ? -ENOENT : -EINVAL, "stall: cannot probe %s+0x%x (register_kprobe rc %d)",
			      stall.sym, off, rc);
	stall.armed = true;
	pr_info("stall armed: %s+0x%x, %u us in call threads\n", stall.sym, off, us);
	return 0;
#endif
}

static int HIL_FN cmd_reset(int argc, char **argv)
{
	unsigned int i, busy;
	int s;

	if (argc != 1)
		return reject(-EINVAL, "usage: reset");
	stall_disarm();
	busy = in_flight_now();
	if (busy)
		return reject(-EBUSY, "reset: %u calls have not finished (wait, or cancel first)", busy);
	for (i = 0; i < hil.nrec; i++)
		reap(&hil.rec[i]);
	for (s = 0; s < MAX_SESSIONS; s++)
		if (hil.sess[s].used)
			close_session(s, false);
	spin_lock(&hil.lock);
	hil.nrec = 0;
	hil.t0_ns = 0;
	spin_unlock(&hil.lock);
	return 0;
}

static int HIL_FN dispatch(int argc, char **argv)
{
	if (!strcmp(argv[0], "open"))
		return cmd_open(argc, argv);
	if (!strcmp(argv[0], "close"))
		return cmd_close(argc, argv);
	if (!strcmp(argv[0], "call"))
		return cmd_call(argc, argv);
	if (!strcmp(argv[0], "register"))
		return cmd_register(argc, argv, false);
	if (!strcmp(argv[0], "register-id"))
		return cmd_register(argc, argv, true);
	if (!strcmp(argv[0], "go"))
		return cmd_go(argc, argv);
	if (!strcmp(argv[0], "cancel"))
		return cmd_cancel(argc, argv);
	if (!strcmp(argv[0], "reset"))
		return cmd_reset(argc, argv);
	if (!strcmp(argv[0], "stall"))
		return cmd_stall(argc, argv);
	return reject(-EINVAL, "unknown command '%.20s' (open, close, call, register, register-id, go, cancel, reset, stall)", argv[0]);
}

static ssize_t HIL_FN ctl_write(struct file *f, const char __user *ubuf, size_t len, loff_t *ppos)
{
	char buf[CMD_MAX];
	char *argv[6];
	char *p, *tok;
	int argc = 0, rc;

	spin_lock(&hil.lock);
	hil.err[0] = '\0';
	spin_unlock(&hil.lock);
	if (len == 0)
		return reject(-EINVAL, "empty command");
	if (len >= sizeof(buf))
		return reject(-EINVAL, "command longer than %zu bytes", sizeof(buf) - 1);
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	if (len && buf[len - 1] == '\n')
		buf[len - 1] = '\0';
	if (strchr(buf, '\n'))
		return reject(-EINVAL, "one command per write");
	p = buf;
	while ((tok = strsep(&p, " \t")) != NULL) {
		if (!*tok)
			continue;
		if (argc == ARRAY_SIZE(argv))
			return reject(-EINVAL, "too many words in '%.40s'", buf);
		argv[argc++] = tok;
	}
	if (argc == 0)
		return reject(-EINVAL, "empty command");
	if (mutex_lock_interruptible(&hil.ctl))
		return -EINTR;
	settle_pending();     /* calls may have finished since the last command */
	rc = dispatch(argc, argv);
	settle_pending();
	mutex_unlock(&hil.ctl);
	return rc < 0 ? rc : len;
}

/* ---- read-only files --------------------------------------------------- */

static void HIL_FN print_u64_or_dash(struct seq_file *m, const char *key, bool known, u64 v)
{
	if (known)
		seq_printf(m, " %s=%llu", key, v);
	else
		seq_printf(m, " %s=-", key);
}

/*
 * id=N op=open|invoke|close session=NAME kind=normal|system start_ms=N|- hold_ms=N|-
 * state=queued|waiting|calling|done|cancelled tid=N|- due_ns=N|- req_ns=N|- ret_ns=N|-
 * rc=N|- ret=0xXXXXXXXX|- origin=N|-
 */
static void HIL_FN format_record(struct seq_file *m, const struct hil_rec *r)
{
	bool done = r->state == ST_DONE;
	bool started = done || r->state == ST_CALLING;

	seq_printf(m, "id=%u op=%s session=%s kind=%s", r->id, op_names[r->op], r->sess_name,
		   r->sys ? "system" : "normal");
	print_u64_or_dash(m, "start_ms", r->timed, r->start_ms);
	print_u64_or_dash(m, "hold_ms", r->timed, r->hold_ms);
	seq_printf(m, " state=%s", state_names[r->state]);
	if (r->tid >= 0)
		seq_printf(m, " tid=%d", r->tid);
	else
		seq_puts(m, " tid=-");
	print_u64_or_dash(m, "due_ns", r->timed && r->state != ST_QUEUED && r->due_ns, r->due_ns);
	print_u64_or_dash(m, "req_ns", started, r->req_ns);
	print_u64_or_dash(m, "ret_ns", done, r->ret_ns);
	if (done)
		seq_printf(m, " rc=%d ret=0x%08x origin=%u\n", r->rc, r->tee_ret, r->origin);
	else
		seq_puts(m, " rc=- ret=- origin=-\n");
}

static int HIL_FN results_show(struct seq_file *m, void *v)
{
	unsigned int i;

	spin_lock(&hil.lock);
	for (i = 0; i < hil.nrec; i++)
		format_record(m, &hil.rec[i]);
	spin_unlock(&hil.lock);
	return 0;
}

static int HIL_FN sessions_show(struct seq_file *m, void *v)
{
	int i;

	if (mutex_lock_interruptible(&hil.ctl))
		return -EINTR;
	for (i = 0; i < MAX_SESSIONS; i++) {
		const struct hil_session *s = &hil.sess[i];

		if (!s->used)
			continue;
		seq_printf(m, "name=%s tee_session=%u kind=%s system=%s sys_rc=%d pending=%u\n", s->name,
			   s->tee_session, s->sys ? "system" : "normal", sys_names[s->sys_status], s->sys_rc,
			   s->pending);
	}
	mutex_unlock(&hil.ctl);
	return 0;
}

static int HIL_FN info_show(struct seq_file *m, void *v)
{
	unsigned int open = 0, queued, waiting, calling, done, cancelled, nrec, runs;
	u64 t0;
	int i;

	for (i = 0; i < MAX_SESSIONS; i++)
		if (READ_ONCE(hil.sess[i].used))
			open++;
	spin_lock(&hil.lock);
	queued = count_state(ST_QUEUED);
	waiting = count_state(ST_WAITING);
	calling = count_state(ST_CALLING);
	done = count_state(ST_DONE);
	cancelled = count_state(ST_CANCELLED);
	nrec = hil.nrec;
	t0 = hil.t0_ns;
	runs = hil.runs;
	spin_unlock(&hil.lock);
	seq_printf(m, "module: hil_cq\nversion: %d\nkernel: %s\nsystem_sessions: %s\n", HIL_VERSION,
		   init_utsname()->release, SYSTEM_SESSIONS);
	seq_printf(m, "context: %s\nsessions: %u\nrecords: %u\nmax_records: %d\n", hil.ctx ? "open" : "none", open,
		   nrec, MAX_RECORDS);
	seq_printf(m, "state: %s\nqueued: %u\nwaiting: %u\ncalling: %u\ndone: %u\ncancelled: %u\n",
		   waiting + calling ? "running" : "idle", queued, waiting, calling, done, cancelled);
	seq_printf(m, "t0_ns: %llu\nruns: %u\nnow_ns: %llu\nmax_start_ms: %u\nmax_hold_ms: %u\n", t0, runs,
		   ktime_get_ns(), MAX_START_MS, MAX_HOLD_MS);
	mutex_lock(&hil.ctl);
	if (stall.armed)
		seq_printf(m, "stall: %s+0x%x\nstall_us: %u\n", stall.sym, stall.offset, stall.us);
	else
		seq_puts(m, "stall: off\n");
	seq_printf(m, "stall_hits: %d\n", atomic_read(&stall.hits));
	mutex_unlock(&hil.ctl);
	return 0;
}

static int HIL_FN error_show(struct seq_file *m, void *v)
{
	char copy[ERR_LEN];

	spin_lock(&hil.lock);
	strscpy(copy, hil.err, sizeof(copy));
	spin_unlock(&hil.lock);
	if (copy[0])
		seq_printf(m, "%s\n", copy);
	return 0;
}

/* ---- firmware facts ---------------------------------------------------- */

/*
 * OP-TEE's fast call OPTEE_SMC_GET_THREAD_COUNT (owner "trusted OS", function 15): a1 = the
 * number of secure threads (CFG_NUM_THREADS). Asked of the firmware directly, so the harness
 * learns the count on kernels whose driver never asks (before 6.8) and can check the driver's.
 */
#define HIL_OPTEE_SMC_GET_THREAD_COUNT 0xb200000fUL
#define HIL_OPTEE_SMC_RETURN_OK 0UL

static int HIL_FN firmware_show(struct seq_file *m, void *v)
{
	struct device_node *np;
	struct arm_smccc_res res;
	const char *method = NULL;
	bool hvc;

	np = of_find_compatible_node(NULL, NULL, "linaro,optee-tz");
	if (!np) {
		seq_puts(m, "thread_count: unavailable\nreason: no linaro,optee-tz node in the device tree (FF-A or ACPI firmware)\n");
		return 0;
	}
	if (of_property_read_string(np, "method", &method))
		method = "smc";
	hvc = !strcmp(method, "hvc");
	of_node_put(np);
	if (strcmp(method, "smc") && !hvc) {
		seq_printf(m, "thread_count: unavailable\nreason: unknown conduit '%.16s'\n", method);
		return 0;
	}
	if (hvc)
		arm_smccc_hvc(HIL_OPTEE_SMC_GET_THREAD_COUNT, 0, 0, 0, 0, 0, 0, 0, &res);
	else
		arm_smccc_smc(HIL_OPTEE_SMC_GET_THREAD_COUNT, 0, 0, 0, 0, 0, 0, 0, &res);
	if (res.a0 != HIL_OPTEE_SMC_RETURN_OK)
		seq_printf(m, "thread_count: unavailable\nreason: OPTEE_SMC_GET_THREAD_COUNT returned 0x%lx\n", res.a0);
	else
		seq_printf(m, "thread_count: %lu\n", res.a1);
	seq_printf(m, "conduit: %s\n", hvc ? "hvc" : "smc");
	return 0;
}

/* ---- fault injection ---------------------------------------------------- */

static bool faults;
module_param(faults, bool, 0644);   /* the harness arms it at run time, on a loaded module */
MODULE_PARM_DESC(faults, "allow writes to debugfs hil_cq/fault (oops, warn): for testing the harness; off by default");

/* Read through READ_ONCE so the compiler emits a real load and store (an Oops, not a trap). */
static int *hil_null_target;

static ssize_t HIL_FN fault_write(struct file *f, const char __user *ubuf, size_t len, loff_t *ppos)
{
	char buf[16];

	if (!faults)
		return reject(-EPERM, "fault injection is off (write 1 to /sys/module/hil_cq/parameters/faults)");
	if (len == 0 || len >= sizeof(buf))
		return reject(-EINVAL, "fault: write oops or warn");
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	if (buf[len - 1] == '\n')
		buf[len - 1] = '\0';
	if (!strcmp(buf, "warn")) {
		WARN(1, "hil_cq: WARNING injected through debugfs (harness fault injection)\n");
		return len;
	}
	if (!strcmp(buf, "oops")) {
		pr_err("injecting an Oops (NULL store) through debugfs (harness fault injection)\n");
		*READ_ONCE(hil_null_target) = 1;
		return len;
	}
	return reject(-EINVAL, "fault: unknown fault '%.15s' (oops, warn)", buf);
}

static const struct file_operations fault_fops = {
	.owner = THIS_MODULE,
	.write = fault_write,
	.llseek = noop_llseek,
};

static int HIL_FN firmware_open(struct inode *i, struct file *f) { return single_open(f, firmware_show, NULL); }

static int HIL_FN results_open(struct inode *i, struct file *f) { return single_open(f, results_show, NULL); }
static int HIL_FN sessions_open(struct inode *i, struct file *f) { return single_open(f, sessions_show, NULL); }
static int HIL_FN info_open(struct inode *i, struct file *f) { return single_open(f, info_show, NULL); }
static int HIL_FN error_open(struct inode *i, struct file *f) { return single_open(f, error_show, NULL); }

#define RO_FOPS(name) \
	static const struct file_operations name##_fops = { \
		.owner = THIS_MODULE, .open = name##_open, .read = seq_read, \
		.llseek = seq_lseek, .release = single_release, \
	}
RO_FOPS(results);
RO_FOPS(sessions);
RO_FOPS(info);
RO_FOPS(error);
RO_FOPS(firmware);

static const struct file_operations ctl_fops = {
	.owner = THIS_MODULE,
	.write = ctl_write,
	.llseek = noop_llseek,
};

/* ---- load and unload --------------------------------------------------- */

static int __init HIL_FN hil_init(void)
{
	mutex_init(&hil.ctl);
	spin_lock_init(&hil.lock);
	hil.dir = debugfs_create_dir("hil_cq", NULL);
	if (IS_ERR_OR_NULL(hil.dir)) {
		pr_err("cannot create /sys/kernel/debug/hil_cq (is debugfs enabled and mounted?)\n");
		return -ENODEV;
	}
	debugfs_create_file("ctl", 0200, hil.dir, NULL, &ctl_fops);
	debugfs_create_file("results", 0444, hil.dir, NULL, &results_fops);
	debugfs_create_file("sessions", 0444, hil.dir, NULL, &sessions_fops);
	debugfs_create_file("info", 0444, hil.dir, NULL, &info_fops);
	debugfs_create_file("error", 0444, hil.dir, NULL, &error_fops);
	debugfs_create_file("firmware", 0444, hil.dir, NULL, &firmware_fops);
	debugfs_create_file("fault", 0200, hil.dir, NULL, &fault_fops);
	pr_info("loaded on %s (system sessions %s)\n", init_utsname()->release, SYSTEM_SESSIONS);
	return 0;
}

/*
 * Unloading with calls in flight: calls not started yet are dropped at once, running ones end
 * with their hold (at most MAX_HOLD_MS), and every thread is waited for exactly once (kthread_stop on a held task
 * reference), so nothing of this module runs after it returns.
 */
static void __exit HIL_FN hil_exit(void)
{
	unsigned int i, busy;
	int s;

	/* Waits for commands and reads in progress; no new one can start. */
	debugfs_remove_recursive(hil.dir);
	mutex_lock(&hil.ctl);
	stall_disarm();
	busy = in_flight_now();
	if (busy)
		pr_info("unloading with %u calls in flight: dropping those not started, waiting for the others\n", busy);
	cancel_waiting();
	for (i = 0; i < hil.nrec; i++)
		reap(&hil.rec[i]);
	settle_pending();     /* a session whose timed close ran is closed already */
	for (s = 0; s < MAX_SESSIONS; s++)
		if (hil.sess[s].used)
			close_session(s, false);
	if (hil.ctx)
		tee_client_close_context(hil.ctx);
	hil.ctx = NULL;
	mutex_unlock(&hil.ctl);
	pr_info("unloaded\n");
}

module_init(hil_init);
module_exit(hil_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("HilHarness");
MODULE_DESCRIPTION("Timed OP-TEE calls from kernel threads for call-queue tests");
MODULE_VERSION("3");
