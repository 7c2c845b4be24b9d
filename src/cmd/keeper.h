/*
 * keeper.h - the session keeper: after a successful send, a detached child
 * keeps the authenticated SMTP session for the next invocation
 * (oasmtprc(5) session_persist, session_max_age, session_max_messages;
 * the protocol is in src/handover.h).
 *
 * The keeper leaves the caller's session and process group (setsid), has
 * /dev/null as stdin, stdout and stderr, and closes every other descriptor
 * it inherited, so nobody waiting for EOF on a pipe (git, cron) waits for
 * it.  It holds no secret: the configuration is freed (secrets wiped)
 * before it serves; what it keeps is the live TLS session.  It ends after
 * session_persist seconds without a request, at session_max_age, after
 * session_max_messages transactions, when the server says anything while
 * idle (a 421 or a close), or when another keeper holds its socket (it
 * QUITs).  It prints nothing.
 */
#ifndef OASMTP_KEEPER_H
#define OASMTP_KEEPER_H

#include "buf.h"

struct job;
struct submit_conn;
struct submit_result;

/*
 * The keeper's place (src/handover.h, handover_claim): claimed by a send
 * before it connects, so before it confines itself, and handed to the
 * keeper it starts.  sock is bound but not listening; the seccomp filter
 * of the confined process allows listen and accept on it only
 * (src/base/confine.h, listen_fd).
 */
struct keeper_place {
	int sock;		/* -1: no place */
	int lock;
	struct buf key, path;
};

void keeper_place_init(struct keeper_place *pl);

/*
 * The key and socket path of job->acc's session into pl (its directory
 * made private when missing), once per send: a later call keeps them.
 * Errors: those of handover_paths().
 */
MUST_CHECK enum err keeper_place_paths(const struct job *job,
	struct keeper_place *pl, struct errinfo *reterr);

/*
 * Claim the place of job->acc's session.  Returns 0 (pl->sock -1) when
 * there is none to have: no private directory, or another process holds
 * it (a live keeper, a send still under way); that send then keeps no
 * session.  Prints only with -v (log_debug).
 */
int keeper_claim(const struct job *job, struct keeper_place *pl);

/*
 * Give the place up (unless keeper_start() took it): remove the socket
 * file while the lock is still held (a confined process may not: the
 * next claim removes it), close both.
 */
void keeper_place_release(struct keeper_place *pl);

/*
 * Fork the keeper for c (just used for a successful transaction for
 * job->acc) with the place pl (claimed).  In the calling process c is
 * freed without a byte to the server, pl's descriptors are closed and the
 * function returns; the child never returns.  When the keeper cannot be
 * set up (no place, listen or fork failing) c is closed with QUIT instead.
 * own_id (NULL: none, or message_id_fix off) is the message just sent,
 * res its result: when the server renamed it, the keeper starts with that
 * pair in its memory (it tells later callers: handover.h).
 */
void keeper_start(struct job *job, struct submit_conn *c,
	struct keeper_place *pl, const char *own_id,
	const struct submit_result *res);

/*
 * Test seam: NULL in oasmtp; the test build oasmtp-keeper-fault
 * (tests/unit/keeper_fault.c) sets it.  The keeper calls it at each step:
 * "listening", "accepted", "request", "ready", "committed", "sent",
 * "result".
 */
extern void (*keeper_test_hook)(const char *step);

#endif
