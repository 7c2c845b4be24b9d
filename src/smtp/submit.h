/*
 * submit.h - the submission driver: the one place where the SMTP engine,
 * the transport, the message body and the secret (password or access
 * token) meet.
 *
 * Each entry point connects (TCP, implicit TLS or STARTTLS per the
 * server description), runs the engine to completion with per-step and
 * whole-session deadlines derived from the server's timeout, and writes each client flight with one
 * transport write where it can (commands plus the first body chunk).
 *
 * It never prints: the transcript (secrets already redacted) goes to the
 * caller's callback, errors to reterr.
 */
#ifndef OASMTP_SUBMIT_H
#define OASMTP_SUBMIT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "smtp.h"
#include "transport.h"

/* struct submit_result: the TLS description and --serverinfo text. */
#define SUBMIT_TLS_DESC_MAX 4096
#define SUBMIT_INFO_MAX (256 * 1024)

struct envelope;
struct transport;

/* The message as it goes on the wire (CRLF line ends, no dot-stuffing). */
struct submit_body {
	uint64_t size;
	/*
	 * Copy up to cap bytes at offset off into p; *ret_n > 0 unless off is
	 * at the end.  Errors: ERR_IO (with detail), anything else is passed
	 * through.
	 */
	enum err (*read)(void *ctx, uint64_t off, void *p, size_t cap,
		size_t *ret_n, struct errinfo *reterr);
	void *ctx;
};

/* Password or access token, fetched only when AUTH needs it. */
struct submit_secret {
	/*
	 * Append the secret to ret_secret (a secret buffer the driver wipes).
	 * force_fresh: the server rejected the previous token; bypass any
	 * cache (asked at most once per session).
	 */
	enum err (*get)(void *ctx, int force_fresh, struct buf *ret_secret,
		struct errinfo *reterr);
	void *ctx;
};

/* Optional replacements for the network, for tests (NULL = the real one). */
struct submit_io {
	enum err (*connect)(void *ctx, const char *host, int port,
		const char *source_ip, int64_t deadline,
		struct transport **ret_t, struct errinfo *reterr);
	enum err (*tls_start)(void *ctx, struct transport **t,
		const struct tls_params *params, int64_t deadline,
		struct errinfo *reterr);
	void *ctx;
};

/* One message of a batch (several transactions on one session). */
struct submit_item {
	/* borrowed until its done() call (which may change it) */
	const struct envelope *env;
	struct submit_body body;
};

/*
 * Several messages over one connection (queue flush): transactions back to
 * back on the same session, one AUTH (so one secret fetch) for all.  After
 * a successful transaction the next MAIL follows at once (no RSET); the
 * engine sends RSET when a transaction failed with the server still
 * holding state (MAIL accepted, a recipient or BDAT refused).
 */
struct submit_batch {
	struct submit_item *items;	/* borrowed, n of them */
	size_t n;
	/*
	 * Called once per item, in order, as soon as its outcome is known.
	 * e: ERR_OK when the server answered 250 to its end of data for every
	 * recipient.  in_txn: 1 when e is the server's answer to this
	 * message's own transaction, or a refusal of this message before
	 * sending it (SIZE, SMTPUTF8 or DSN not offered); 0 when the session
	 * failed or ended before this message's outcome was known (then the
	 * message is not to blame, and the server may or may not have it).
	 * ei: the detail (borrowed for the call).  final_reply: the reply
	 * that ended the transaction (or committed its last part), "" when
	 * none.  delivered: NULL when no recipient has the message for sure;
	 * else one flag per env->rcpts[j], nonzero when the server committed
	 * the message for that recipient - all of them with ERR_OK, some
	 * with an error after a 452 split (those must not get it again).
	 */
	void (*done)(void *ctx, size_t i, enum err e, int in_txn,
		const struct errinfo *ei, const char *final_reply,
		const unsigned char *delivered);
	/*
	 * Optional.  A 452 split item i and a part of its recipients was
	 * committed (delivered flags as for done); called before the next
	 * part's commands leave, so the caller can record it durably first.
	 * done() still follows for the item, with every part delivered.
	 */
	void (*partial)(void *ctx, size_t i, const unsigned char *delivered);
	void *ctx;
};

/*
 * The server and how to reach it, as plain values (strings borrowed).  The
 * submission layer knows nothing of configuration files: the caller fills
 * this from its account (account_submit_server()).
 */
struct submit_server {
	const char *name;	/* account name, for messages; NULL = "default" */
	const char *host;	/* NULL or "": ERR_CONFIG "no host configured" */
	int port;
	const char *source_ip;	/* optional */
	const char *proxy_host;	/* optional SOCKS5 proxy (socks.h): host is
				   then resolved and reached by the proxy */
	int proxy_port;		/* 0: SOCKS_DEFAULT_PORT */
	const char *domain;	/* EHLO argument */
	int timeout;		/* seconds per step; 0 = no deadlines */
	int tls;		/* TLS required (STARTTLS or implicit) */
	int starttls;		/* with tls: STARTTLS, else implicit TLS */
	struct tls_params tls_params;	/* session_cache is filled here */
	enum auth_method auth;	/* AUTH_OFF: never authenticate */
	int oauth;		/* with AUTH_ON: use a token mechanism */
	const char *user;
};

/* What every kind of session needs. */
struct submit_params {
	struct submit_server srv;
	struct submit_secret secret;
	void (*transcript)(void *ctx, enum smtp_dir dir, const char *line,
		size_t len);
	void *transcript_ctx;
	/* 1: no SMTP_DIR_DETAIL/TIMING lines are made (nobody shows them
	 * below -vv; the TLS details cost ~0.1 M instructions) */
	int no_detail;
	struct submit_io io;
};

/* Filled by submit_send(); release with submit_result_release(). */
struct submit_result {
	int smtp_code;		/* of the final reply (250 on success) */
	struct buf final_reply;	/* end-of-data reply, formatted */
	struct buf tls;		/* TLS description, "" without TLS */
	struct buf info;	/* --serverinfo text */
	int *rcpt_codes;	/* per env->rcpts[i]: reply code, 0 = none */
	/*
	 * Per env->rcpts[i]: 1 when the server committed the message for it
	 * (250 to an end of data).  Set for some recipients with an error
	 * when a 452 split the transaction and the failure came after a
	 * committed part: the message must not be sent to those again.
	 */
	unsigned char *rcpt_delivered;
	size_t n_rcpts;
	const char *auth_mech;	/* static string, NULL when no AUTH */
};

void submit_result_init(struct submit_result *r);
void submit_result_release(struct submit_result *r);

/*
 * The four kinds of session.  Each connects (TCP, then implicit TLS or
 * STARTTLS per p->srv), says EHLO, authenticates when p->srv asks for it,
 * does its work and QUITs; ret is filled as far as the session got.
 *
 * Errors (every entry point): ERR_NET, ERR_TIMEOUT, ERR_TLS, ERR_PROTO,
 * ERR_SMTP_TEMP, ERR_SMTP_PERM, ERR_RCPT_UNKNOWN, ERR_AUTH, ERR_NOTSUPP,
 * ERR_CONFIG (no host, AUTH without a user), errors of the body and secret
 * callbacks.
 */

/*
 * One message.  ERR_OK when the server accepted the end of data for every
 * recipient.  With an error check ret->rcpt_delivered: after a 452 split
 * part of the recipients may have the message.
 */
MUST_CHECK enum err submit_message(const struct submit_params *p,
	const struct envelope *env, const struct submit_body *body,
	struct submit_result *ret, struct errinfo *reterr);

/*
 * Several messages on one session (queue flush).  Each outcome goes to
 * batch->done; ret gets only the session facts (tls, auth_mech).  ERR_OK
 * when the session ran to its end, else the session's error (every item not
 * yet reported was reported with it first).  reterr must not be NULL: an
 * item's failure reaches batch->done through it.
 */
MUST_CHECK enum err submit_batch(const struct submit_params *p,
	const struct submit_batch *batch, struct submit_result *ret,
	struct errinfo *reterr);

/*
 * --check: connect, STARTTLS, EHLO and AUTH as for a message, then QUIT
 * without a transaction.  ERR_OK means every step passed (ret->auth_mech
 * names the mechanism).
 */
MUST_CHECK enum err submit_check(const struct submit_params *p,
	struct submit_result *ret, struct errinfo *reterr);

/* --serverinfo: EHLO (after TLS), ret->info describes the server, QUIT. */
MUST_CHECK enum err submit_serverinfo(const struct submit_params *p,
	struct submit_result *ret, struct errinfo *reterr);

/*
 * A session kept open between transactions, for a process that hands it
 * on (the session keeper, oasmtprc(5) session_persist).  It runs one
 * transaction at a time, on demand, with no QUIT after it.
 *
 * submit_open(): connect, TLS, EHLO, AUTH as for a message, then stop at
 * the idle session; ret gets the session facts (tls, auth_mech).  The
 * strings of p->srv are copied; p->secret is used during the open only
 * (never kept); p->io must outlive the session.  Errors as for
 * submit_message().
 */
struct submit_conn;

enum err submit_open(const struct submit_params *p, struct submit_conn **ret_c,
	struct submit_result *ret, struct errinfo *reterr);

/* Where the transcript of the next exchanges goes (NULL: nowhere). */
void submit_conn_set_transcript(struct submit_conn *c,
	void (*transcript)(void *ctx, enum smtp_dir dir, const char *line,
	size_t len), void *ctx);

/*
 * 1 when the session is idle and the server has said nothing since (any
 * byte from an idle server is a 421 or a close): a transaction may start.
 */
int submit_conn_usable(const struct submit_conn *c);

/* The socket, for poll(2) while idle. */
int submit_conn_fd(const struct submit_conn *c);

/* Transactions started on the session so far. */
unsigned submit_conn_transactions(const struct submit_conn *c);

/*
 * One transaction (pipelined: one round trip for one recipient with
 * CHUNKING, two for several), no QUIT; ret as for submit_message().
 * *ret_known: 1 when the outcome is the server's answer (or a refusal
 * before sending), 0 when the session failed first - then the server may
 * or may not have the message, and the session is over.
 */
enum err submit_conn_message(struct submit_conn *c, const struct envelope *env,
	const struct submit_body *body, struct submit_result *ret,
	int *ret_known, struct errinfo *reterr);

/* QUIT (waiting one step at most for the 221) and free.  NULL is fine. */
void submit_conn_close(struct submit_conn *c);

/*
 * Free without a byte to the server: after fork(), in the process that
 * does not carry the session on.  NULL is fine.
 */
void submit_conn_forget(struct submit_conn *c);

/*
 * The directory of the TLS session cache, paths_volatile_dir()/oasmtp,
 * appended to out; ERR_CONFIG without a directory.
 */
MUST_CHECK enum err submit_session_cache_dir(struct buf *out);

/*
 * The TLS session cache path for srv:
 * paths_volatile_dir()/oasmtp/tls-session-HOST-PORT-KEY ($XDG_RUNTIME_DIR,
 * else ${XDG_CACHE_HOME:-~/.cache}), KEY being transport_tls_session_key()
 * of srv->tls_params: a change of trust, pin, client certificate, server
 * name or TLS settings names another file, so a session is never resumed
 * under verification settings other than those it was made under.
 * Appended to out; ERR_CONFIG without a directory.
 */
MUST_CHECK enum err submit_session_cache_path(const struct submit_server *srv,
	struct buf *out);

#endif
