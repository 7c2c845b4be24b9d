/*
 * smtp.h - sans-I/O SMTP client engine (RFC 5321 with PIPELINING 2920,
 * CHUNKING 3030, SIZE 1870, 8BITMIME 6152, SMTPUTF8 6531, DSN 3461,
 * ENHANCEDSTATUSCODES 2034, STARTTLS 3207, AUTH 4954).
 *
 * The engine knows no socket, clock, TLS library or message file.  The
 * driver (submit.c) loops:
 *
 *   for (;;) switch (smtp_next(s)) {
 *   case SMTP_EV_OUTPUT:     queue smtp_output() bytes, smtp_output_done()
 *   case SMTP_EV_SEND_BODY:  queue the body (smtp_body_size() bytes; raw
 *                            for BDAT, through struct smtp_dotstuff for
 *                            DATA when smtp_body_dotstuff()), then
 *                            smtp_body_done()
 *   case SMTP_EV_NEED_INPUT: flush what was queued, read one reply line,
 *                            smtp_feed() it
 *   case SMTP_EV_NEED_STARTTLS: check that nothing is buffered beyond the
 *                            220 line (else ERR_PROTO), handshake,
 *                            smtp_tls_started()
 *   case SMTP_EV_NEED_AUTH:  get the password/token, smtp_auth_secret()
 *   case SMTP_EV_AUTH_RETRY: the token was rejected: get a fresh one,
 *                            smtp_auth_secret() (or give up)
 *   case SMTP_EV_READY:      smtp_mail() for a transaction, or smtp_quit(),
 *                            or (transactions in flight) smtp_hold()
 *   case SMTP_EV_PARTIAL:    part of a transaction was committed (a 452
 *                            split it): smtp_rcpt_delivered() says who has
 *                            the message; record that before going on
 *   case SMTP_EV_TXN_DONE:   smtp_txn_result(); the session goes on
 *   case SMTP_EV_DONE:       the server answered QUIT; close
 *   case SMTP_EV_FAILED:     smtp_error(); close without QUIT
 *   }
 *
 * Session state (greeting, EHLO capabilities, TLS, AUTH) is kept apart from
 * transaction state (MAIL/RCPT/DATA/BDAT), and several transactions may run
 * back to back on one session.
 *
 * Cross-transaction pipelining: with PIPELINING and CHUNKING, a transaction
 * of one recipient ("MAIL, RCPT, BDAT n LAST" + body) needs no reply before
 * it commits, so SMTP_EV_READY is raised again while its replies are still
 * due: up to 32 transactions or about 1 MiB of body wait for replies (the
 * window).  Replies are matched to transactions strictly in order and
 * SMTP_EV_TXN_DONE comes once per transaction, in order, as soon as its last
 * reply is in.  A MAIL that follows a transaction whose outcome is unknown,
 * or one that failed after its MAIL was accepted, is preceded by RSET (a
 * server may keep the MAIL open after refusing every recipient).  A
 * transaction of several recipients (all-or-nothing needs the RCPT replies)
 * or any transaction with DATA runs alone: the window drains before it and
 * stays closed until it ends.
 *
 * A 452 to RCPT ("too many recipients", RFC 5321 section 4.5.3.1.10) is
 * no refusal: the recipients accepted so far are committed and the others
 * go in a further transaction on the same session, so one message may be
 * delivered in parts.  SMTP_EV_PARTIAL comes after each committed part
 * that leaves recipients to do, before the next part's MAIL is handed
 * out, and smtp_rcpt_delivered() tells, per recipient, whether the server
 * took the message for it.  A failure after a partial delivery (the rest
 * refused, a 421, a dropped connection) does not undo the parts already
 * committed: the driver must never send those recipients the message again.
 *
 * Secrets: AUTH payloads are built into secret buffers and wiped once
 * written out; the transcript callback sees them only as
 * "<redacted, N bytes>".  The output buffer is a secret buffer too.
 */
#ifndef OASMTP_SMTP_H
#define OASMTP_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "sasl.h"	/* enum auth_method */

struct buf;
struct envelope;
struct smtp_session;

enum smtp_state {
	SMTP_ST_GREETING = 0,	/* waiting for the 220 greeting */
	SMTP_ST_EHLO,
	SMTP_ST_HELO,
	SMTP_ST_STARTTLS,	/* waiting for the 220 to STARTTLS */
	SMTP_ST_TLS_HANDSHAKE,	/* driver runs the handshake */
	SMTP_ST_AUTH_SECRET,	/* driver fetches the secret */
	SMTP_ST_AUTH,		/* AUTH exchange in progress */
	SMTP_ST_READY,		/* idle session, may start a transaction */
	SMTP_ST_TXN,		/* transaction in progress */
	SMTP_ST_QUIT,		/* waiting for the 221 */
	SMTP_ST_DONE,
	SMTP_ST_FAILED,
	SMTP_ST_MAX
};

enum smtp_event {
	SMTP_EV_OUTPUT = 0,
	SMTP_EV_SEND_BODY,
	SMTP_EV_NEED_INPUT,
	SMTP_EV_NEED_STARTTLS,
	SMTP_EV_NEED_AUTH,
	SMTP_EV_AUTH_RETRY,
	SMTP_EV_READY,
	SMTP_EV_TXN_DONE,
	SMTP_EV_DONE,
	SMTP_EV_FAILED,
	SMTP_EV_PARTIAL,
	SMTP_EV_MAX
};

/* Direction of a transcript line. */
enum smtp_dir {
	SMTP_DIR_SEND = 0,	/* client to server */
	SMTP_DIR_RECV,		/* server to client */
	SMTP_DIR_NOTE,		/* engine remark (decoded error JSON, body) */
	SMTP_DIR_DETAIL,	/* -vv: TLS parameters (submit.c) */
	SMTP_DIR_TIMING,	/* -vvv: how long a step took (submit.c) */
};

/* Capabilities from the last EHLO (all zero after HELO or TLS start). */
enum smtp_cap {
	SMTP_CAP_PIPELINING = 1 << 0,
	SMTP_CAP_CHUNKING = 1 << 1,
	SMTP_CAP_SIZE = 1 << 2,
	SMTP_CAP_8BITMIME = 1 << 3,
	SMTP_CAP_SMTPUTF8 = 1 << 4,
	SMTP_CAP_DSN = 1 << 5,
	SMTP_CAP_ENHANCED = 1 << 6,
	SMTP_CAP_STARTTLS = 1 << 7,
	SMTP_CAP_AUTH = 1 << 8,
};

/* Copied by smtp_new(); the strings are borrowed and must outlive s. */
struct smtp_params {
	const char *helo;	/* EHLO argument ("localhost" when NULL) */
	int tls_required;	/* tls on: no HELO fallback, never in clear */
	int starttls;		/* do STARTTLS after the first EHLO */
	int tls_active;		/* implicit TLS already running */
	int peer_loopback;	/* cleartext AUTH allowed (loopback peer) */
	enum auth_method auth;	/* AUTH_OFF: never authenticate */
	int oauth;		/* with AUTH_ON: use a token mechanism */
	const char *user;	/* authentication identity */
	const char *host;	/* OAUTHBEARER host= */
	int port;		/* OAUTHBEARER port= */
	/* Every line sent and received, secrets redacted; may be NULL. */
	void (*transcript)(void *ctx, enum smtp_dir dir, const char *line,
		size_t len);
	void *transcript_ctx;
};

/* A new session waiting for the greeting.  NULL on allocation failure. */
struct smtp_session *smtp_new(const struct smtp_params *p);

/* Free the session, wiping secrets.  NULL is fine. */
void smtp_free(struct smtp_session *s);

enum smtp_state smtp_state(const struct smtp_session *s);
const char *smtp_state_name(enum smtp_state st);
const char *smtp_event_name(enum smtp_event ev);

/* What the driver must do next (see the loop above). */
enum smtp_event smtp_next(struct smtp_session *s);

/*
 * SMTP_EV_OUTPUT: the bytes to send, borrowed until the next call on s.
 * smtp_output_done() marks all of them consumed.
 */
void smtp_output(const struct smtp_session *s, const char **ret_p,
	size_t *ret_n);
void smtp_output_done(struct smtp_session *s);

/* SMTP_EV_SEND_BODY: how many bytes, and whether to dot-stuff them. */
uint64_t smtp_body_size(const struct smtp_session *s);
int smtp_body_dotstuff(const struct smtp_session *s);

/*
 * The body has been queued.  For DATA, at_line_start tells whether the
 * stuffed stream ended with CRLF (struct smtp_dotstuff knows); the engine
 * adds the CRLF if not, then ".".
 */
void smtp_body_done(struct smtp_session *s, int at_line_start);

/*
 * Feed one received line, without its CRLF.  Returns ERR_OK or the error
 * that moved the session to SMTP_ST_FAILED (also given by smtp_error()):
 * ERR_PROTO for a malformed or unexpected reply, the mapped code
 * (doc/design.md, Errors and exit codes) for a refusal of a session step.
 */
MUST_CHECK enum err smtp_feed(struct smtp_session *s, const char *line, size_t len);

/* SMTP_EV_NEED_STARTTLS: the handshake succeeded; caps are forgotten. */
void smtp_tls_started(struct smtp_session *s);

/*
 * SMTP_EV_NEED_AUTH / SMTP_EV_AUTH_RETRY: the password or access token.
 * Copied into a secret buffer (the caller wipes its own copy).  Errors
 * (session failed too): ERR_DATA for a secret the mechanism cannot carry,
 * ERR_NOMEM.
 */
MUST_CHECK enum err smtp_auth_secret(struct smtp_session *s, const char *secret,
	size_t len);

/* Name of the mechanism chosen for AUTH ("XOAUTH2"), NULL before. */
const char *smtp_auth_mech(const struct smtp_session *s);

/* Move to SMTP_ST_FAILED with the given error (e.g. no token available). */
void smtp_abort(struct smtp_session *s, const struct errinfo *ei);

/*
 * SMTP_EV_READY: start a transaction for env (borrowed until its
 * SMTP_EV_TXN_DONE) with a body of body_size wire bytes.  last: QUIT follows
 * the transaction (it is pipelined after the end of data when possible).
 * Refused before anything is sent (the session is unchanged): ERR_NOTSUPP
 * for SMTPUTF8 or DSN the server lacks, ERR_SMTP_PERM for a message larger
 * than the server's SIZE, ERR_DATA for an address with CR, LF or NUL or no
 * recipients, ERR_INTERNAL when no SMTP_EV_READY was raised.  With
 * transactions in flight, ERR_LIMIT: this one cannot join the window
 * (several recipients); call smtp_hold() and offer it again at the next
 * SMTP_EV_READY, which comes once the window has drained.
 */
MUST_CHECK enum err smtp_mail(struct smtp_session *s, const struct envelope *env,
	uint64_t body_size, int last, struct errinfo *reterr);

/*
 * SMTP_EV_READY with transactions in flight: add nothing to the window for
 * now; SMTP_EV_READY comes again when every transaction in flight is over.
 */
void smtp_hold(struct smtp_session *s);

/*
 * SMTP_EV_READY: end the session.  With transactions in flight, QUIT is
 * pipelined after them and SMTP_EV_DONE follows their SMTP_EV_TXN_DONEs.
 */
void smtp_quit(struct smtp_session *s);

/*
 * SMTP_EV_TXN_DONE: the transaction's outcome.  ERR_OK: every recipient
 * accepted and the end of data answered 250.  Else the mapped code; a
 * recipient refusal names every refused recipient with its reply.
 */
enum err smtp_txn_result(const struct smtp_session *s, struct errinfo *reterr);

/*
 * Per-recipient outcome of the last finished transaction: the reply code (0
 * when never answered) and its formatted reply.  Borrowed until the next
 * SMTP_EV_TXN_DONE.  NULL text when i is out of range.
 */
const char *smtp_rcpt_status(const struct smtp_session *s, size_t i,
	int *ret_code);

/*
 * SMTP_EV_PARTIAL, SMTP_EV_TXN_DONE: 1 when the server committed the message
 * for recipient i of that transaction (250 to an end of data: "." or BDAT
 * LAST), else 0 (also when i is out of range).  After SMTP_EV_TXN_DONE
 * with ERR_OK every recipient is delivered; with an error some may be,
 * when a 452 split the transaction and an earlier part was committed.
 */
int smtp_rcpt_delivered(const struct smtp_session *s, size_t i);

/*
 * The reply that ended the last transaction ("250 2.0.0 Ok: queued"); after
 * a failure that follows a partial delivery, the reply that committed the
 * last part; "" when nothing was committed.
 */
const char *smtp_final_reply(const struct smtp_session *s);

/* SMTP_EV_FAILED: copy the error; returns its code. */
enum err smtp_error(const struct smtp_session *s, struct errinfo *reterr);

/* Capabilities (enum smtp_cap bits) and SIZE limit (0 = none given). */
unsigned smtp_caps(const struct smtp_session *s);
uint64_t smtp_size_limit(const struct smtp_session *s);

/* Append a human description of the EHLO reply for --serverinfo. */
MUST_CHECK enum err smtp_describe(const struct smtp_session *s, struct buf *out);

/*
 * Dot-stuffing filter for DATA (RFC 5321 section 4.5.2), fed the body in
 * chunks of any size: a line start split across chunks is handled.  The
 * input already has CRLF line ends.
 */
struct smtp_dotstuff {
	int at_line_start;
};

void smtp_dotstuff_init(struct smtp_dotstuff *d);

/* Append the stuffed form of p[0..n) to out (ERR_LIMIT, ERR_NOMEM). */
MUST_CHECK enum err smtp_dotstuff(struct smtp_dotstuff *d, const void *p, size_t n,
	struct buf *out);

#endif
