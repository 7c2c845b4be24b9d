/*
 * keeper_fault.c - the test-only hooks of oasmtp-keeper-fault (an oasmtp
 * built with this file; never installed), for
 * tests/integration/test_keeper.py:
 *   - OASMTP_TEST_KEEPER_STOP=step,...: the session keeper stops itself
 *     (SIGSTOP) at each step named (keeper.h lists them), so a test can
 *     kill it exactly there;
 *   - OASMTP_TEST_SENDER_STOP=1: the sending process stops itself right
 *     after its confinement (it is connected, the keeper's place claimed,
 *     nothing sent), so a test can start a second sender meanwhile;
 *   - OASMTP_FAULT_OUT=FILE: once listening, the keeper tries what
 *     tests/unit/fault_attempts.h tries and appends one line to FILE:
 *       keeper-fault: read-ssh=R read-state=R exec=E connect=C
 *     (FILE must be where a confined keeper may write: its state dir).
 */
#include <signal.h>
#include <stdio.h>

#include "fault_attempts.h"
#include "keeper.h"
#include "sandbox.h"

static int
listed(const char *list, const char *step)
{
	size_t n = strlen(step);

	while (list != NULL && *list != '\0') {
		if (strncmp(list, step, n) == 0 &&
		    (list[n] == ',' || list[n] == '\0')) {
			return 1;
		}
		list = strchr(list, ',');
		list = list != NULL ? list + 1 : NULL;
	}
	return 0;
}

static void
keeper_step(const char *step)
{
	const char *out = getenv("OASMTP_FAULT_OUT");

	if (out != NULL && strcmp(step, "listening") == 0) {
		const char *rd = try_read_ssh();
		const char *st = try_read_state();
		const char *ex = try_exec();
		const char *co = try_connect();
		FILE *f = fopen(out, "a");

		if (f != NULL) {
			fprintf(f, "keeper-fault: read-ssh=%s read-state=%s "
				"exec=%s connect=%s\n", rd, st, ex, co);
			fclose(f);
		}
	}
	if (listed(getenv("OASMTP_TEST_KEEPER_STOP"), step)) {
		raise(SIGSTOP);
	}
}

static void
sender_confined(void)
{
	if (getenv("OASMTP_TEST_SENDER_STOP") != NULL) {
		raise(SIGSTOP);
	}
}

__attribute__((constructor)) static void
install(void)
{
	keeper_test_hook = keeper_step;
	sandbox_after_confine_hook = sender_confined;
}
