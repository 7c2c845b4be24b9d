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

struct job;
struct submit_conn;

/*
 * Fork the keeper for c (just used for a successful transaction for
 * job->acc).  In the calling process c is freed without a byte to the
 * server and the function returns; the child never returns.  When the
 * keeper cannot be set up (no private directory, fork failing) c is
 * closed with QUIT instead.
 */
void keeper_start(struct job *job, struct submit_conn *c);

#endif
