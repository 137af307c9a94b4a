// SPDX-License-Identifier: BSD-2-Clause
/*
 * teeholder - hold OP-TEE secure threads from user space for chosen times.
 *
 * Each HOLD_MS[@START_MS] argument is one holder: its own thread, TEE context and session to
 * Debian's os_test TA, and one call of os_test command 9 (TEE_Wait(HOLD_MS)) that starts
 * START_MS after a common time base. Every session is opened before the time base is taken,
 * so that session opens never fall inside the timed part. Lets tests saturate the secure
 * threads from user space while a kernel client (tools/kmod) issues its own calls.
 *
 * Output (stdout), one line per event, key=value, times in CLOCK_MONOTONIC nanoseconds (the
 * clock of ftrace's "mono" trace clock and of the hil_cq module):
 *   ready holders=N t0_ns=N
 *   call index=I start_ms=S hold_ms=H tid=T due_ns=N req_ns=N ret_ns=N res=0xXXXXXXXX origin=N
 *   done holders=N failed=N
 * Errors go to stderr as "teeholder: ..." lines.
 * Exit status: 0 every call returned TEEC_SUCCESS, 1 some holder failed, 2 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#include <tee_client_api.h>

#define MAX_HOLDERS 32
#define MAX_HOLD_MS 600000UL
#define MAX_START_MS 600000UL
#define MAX_LEAD_MS 60000UL
#define OS_TEST_CMD_WAIT 9

static const TEEC_UUID os_test_uuid = {
	0x5b9e0e40, 0x2636, 0x11e1, { 0xad, 0x9e, 0x00, 0x02, 0xa5, 0xd5, 0xc5, 0x1b }
};

struct holder {
	int index;
	uint32_t start_ms, hold_ms;
	pthread_t thread;
	TEEC_Context ctx;
	TEEC_Session sess;
	int opened;            /* 1 context, 2 context and session */
	pid_t tid;
	uint64_t due_ns, req_ns, ret_ns;
	TEEC_Result res;
	uint32_t origin;
	const char *failed;    /* what failed, NULL when the call returned */
};

static struct holder holders[MAX_HOLDERS];
static int nholders;
static uint64_t t0_ns;
static pthread_barrier_t opened_barrier, t0_barrier;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000ULL, .tv_nsec = ns % 1000000000ULL };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: teeholder [--lead MS] HOLD_MS[@START_MS]...\n"
		"  Opens one os_test session per HOLD_MS[@START_MS] (up to %d), then each holder calls\n"
		"  TEE_Wait(HOLD_MS) at t0 + START_MS (default 0) in its own thread, where t0 is taken\n"
		"  once every session is open, plus --lead MS (default 10).\n"
		"  Prints 'ready', one 'call' line per holder and 'done' (CLOCK_MONOTONIC ns).\n"
		"  Exit: 0 all calls returned TEEC_SUCCESS, 1 a holder failed, 2 bad usage.\n",
		MAX_HOLDERS);
}

/* Parses a whole number of milliseconds no larger than max; 0 on success. */
static int parse_ms(const char *s, const char *end, unsigned long max, uint32_t *out)
{
	unsigned long v = 0;
	const char *p;

	if (s == end)
		return -1;
	for (p = s; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > max)
			return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static void *holder_main(void *arg)
{
	struct holder *h = arg;
	TEEC_Operation op;
	TEEC_Result r;
	uint32_t origin = 0;

	h->tid = (pid_t)syscall(SYS_gettid);
	r = TEEC_InitializeContext(NULL, &h->ctx);
	if (r != TEEC_SUCCESS) {
		h->failed = "TEEC_InitializeContext";
		h->res = r;
	} else {
		h->opened = 1;
		r = TEEC_OpenSession(&h->ctx, &h->sess, &os_test_uuid, TEEC_LOGIN_PUBLIC, NULL, NULL, &origin);
		if (r != TEEC_SUCCESS) {
			h->failed = "TEEC_OpenSession";
			h->res = r;
			h->origin = origin;
		} else {
			h->opened = 2;
		}
	}
	pthread_barrier_wait(&opened_barrier);   /* main takes t0 once every session is open */
	pthread_barrier_wait(&t0_barrier);

	if (h->opened == 2) {
		h->due_ns = t0_ns + (uint64_t)h->start_ms * 1000000ULL;
		sleep_until(h->due_ns);
		memset(&op, 0, sizeof(op));
		op.paramTypes = TEEC_PARAM_TYPES(TEEC_VALUE_INPUT, TEEC_NONE, TEEC_NONE, TEEC_NONE);
		op.params[0].value.a = h->hold_ms;
		origin = 0;
		h->req_ns = now_ns();
		h->res = TEEC_InvokeCommand(&h->sess, OS_TEST_CMD_WAIT, &op, &origin);
		h->ret_ns = now_ns();
		h->origin = origin;
		if (h->res != TEEC_SUCCESS)
			h->failed = "TEEC_InvokeCommand";
		pthread_mutex_lock(&out_lock);
		printf("call index=%d start_ms=%" PRIu32 " hold_ms=%" PRIu32 " tid=%d due_ns=%" PRIu64
		       " req_ns=%" PRIu64 " ret_ns=%" PRIu64 " res=0x%08" PRIx32 " origin=%" PRIu32 "\n",
		       h->index, h->start_ms, h->hold_ms, (int)h->tid, h->due_ns, h->req_ns, h->ret_ns,
		       (uint32_t)h->res, h->origin);
		fflush(stdout);
		pthread_mutex_unlock(&out_lock);
		TEEC_CloseSession(&h->sess);
	}
	if (h->opened >= 1)
		TEEC_FinalizeContext(&h->ctx);
	return NULL;
}

int main(int argc, char **argv)
{
	uint32_t lead_ms = 10;
	int i, failed = 0, started = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *at, *end = a + strlen(a);
		struct holder *h;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--lead")) {
			if (i + 1 >= argc || parse_ms(argv[i + 1], argv[i + 1] + strlen(argv[i + 1]), MAX_LEAD_MS, &lead_ms)) {
				fprintf(stderr, "teeholder: --lead needs a whole number of milliseconds up to %lu\n", MAX_LEAD_MS);
				return 2;
			}
			i++;
			continue;
		}
		if (nholders == MAX_HOLDERS) {
			fprintf(stderr, "teeholder: at most %d holders\n", MAX_HOLDERS);
			return 2;
		}
		h = &holders[nholders];
		memset(h, 0, sizeof(*h));
		h->index = nholders;
		at = strchr(a, '@');
		if (parse_ms(a, at ? at : end, MAX_HOLD_MS, &h->hold_ms) ||
		    (at && parse_ms(at + 1, end, MAX_START_MS, &h->start_ms))) {
			fprintf(stderr, "teeholder: '%s' is not HOLD_MS[@START_MS] (whole milliseconds, hold up to %lu, start up to %lu)\n",
				a, MAX_HOLD_MS, MAX_START_MS);
			return 2;
		}
		nholders++;
	}
	if (nholders == 0) {
		usage(stderr);
		return 2;
	}

	pthread_barrier_init(&opened_barrier, NULL, (unsigned)nholders + 1);
	pthread_barrier_init(&t0_barrier, NULL, (unsigned)nholders + 1);
	for (i = 0; i < nholders; i++) {
		int e = pthread_create(&holders[i].thread, NULL, holder_main, &holders[i]);

		if (e) {
			/* The barriers count every holder: without all threads nobody could pass them. */
			fprintf(stderr, "teeholder: cannot create thread %d: %s\n", i, strerror(e));
			_exit(1);
		}
		started++;
	}
	pthread_barrier_wait(&opened_barrier);
	t0_ns = now_ns() + (uint64_t)lead_ms * 1000000ULL;
	printf("ready holders=%d t0_ns=%" PRIu64 "\n", nholders, t0_ns);
	fflush(stdout);
	pthread_barrier_wait(&t0_barrier);
	for (i = 0; i < started; i++)
		pthread_join(holders[i].thread, NULL);

	for (i = 0; i < nholders; i++) {
		struct holder *h = &holders[i];

		if (!h->failed)
			continue;
		failed++;
		fprintf(stderr, "teeholder: holder %d: %s failed: 0x%08" PRIx32 " (origin %" PRIu32 ")\n", i, h->failed,
			(uint32_t)h->res, h->origin);
	}
	printf("done holders=%d failed=%d\n", nholders, failed);
	return failed ? 1 : 0;
}
