/*
 * confine_fault.c - the test-only fault hook of oasmtp-confine-fault (an
 * oasmtp built with this file; never installed): right after the sending
 * process was confined (or, with `confine off`, where it would have been)
 * it tries what an exploited TLS library or reply parser would try, and
 * prints one line saying how each attempt went:
 *   confine-fault: read-ssh=R read-state=R exec=ok|denied connect=ok|denied
 *   (R: ok|denied|missing)
 *   - read $HOME/.ssh/id_rsa and a file planted in ~/.local/state/oasmtp;
 *   - run /bin/sh (in a forked child, so the send goes on);
 *   - connect to 127.0.0.1:$OASMTP_FAULT_PORT (another listener).
 */
#include <stdio.h>

#include "fault_attempts.h"
#include "sandbox.h"

static void
fault(void)
{
	const char *rd = try_read_ssh();
	const char *st = try_read_state();
	const char *ex = try_exec();
	const char *co = try_connect();

	fprintf(stderr, "confine-fault: read-ssh=%s read-state=%s exec=%s "
		"connect=%s\n", rd, st, ex, co);
}

__attribute__((constructor)) static void
install(void)
{
	sandbox_after_confine_hook = fault;
}
