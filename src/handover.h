/*
 * handover.h - handing a message to a session keeper over a Unix socket
 * (oasmtprc(5) session_persist; doc/git-send-email.md).
 *
 * A keeper is an oasmtp process that stayed behind after a send, holding
 * the authenticated SMTP session.  It listens on a socket in a private
 * directory ($XDG_RUNTIME_DIR/oasmtp/, else the cache dir; mode 0700,
 * owner checked) named from a hash of the session key: everything that
 * makes two sessions interchangeable (host, port, source address, EHLO
 * name, TLS settings and trust, user, mechanism, grant).
 *
 * The exchange, each message a record (record.h: "oasmtp-keeper-request
 * 1" ... "end"), bounded (HANDOVER_FRAME_MAX):
 *
 *   caller -> keeper   REQUEST: key, from, rcpt..., body-8bit, smtputf8,
 *                      dsn-notify, dsn-return, dsn-envid, message-id (the
 *                      message's own, for threading repair)
 *   keeper -> caller   READY (the session is idle and alive) with a pair
 *                      line per Message-ID the server renamed in this
 *                      keeper's life (original, assigned), or REFUSE:
 *                      reason
 *   caller -> keeper   COMMIT: size, with the body's file descriptor
 *                      (SCM_RIGHTS), the caller having cited the assigned
 *                      IDs; from here on the keeper owns the attempt
 *   keeper -> caller   RESULT: outcome, known, smtp-code, enhanced,
 *                      message, final-reply, auth-mech, tls, rcpt-code and
 *                      rcpt-delivered per recipient, the transcript lines
 *                      (sent, received, note)
 *
 * Before COMMIT the caller may walk away and send by itself: the keeper
 * sends nothing without it.  After COMMIT a lost keeper is a lost
 * connection: the server may or may not have the message.
 *
 * Both ends check the peer's uid (SO_PEERCRED) against their own.  Nothing
 * here prints; errors go to reterr.
 */
#ifndef OASMTP_HANDOVER_H
#define OASMTP_HANDOVER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "envelope.h"
#include "err.h"
#include "msgid_map.h"
#include "smtp.h"

struct account;
struct submit_result;

#define HANDOVER_VERSION 1
#define HANDOVER_FRAME_MAX (4 * 1024 * 1024)	/* a REQUEST or RESULT record */
#define HANDOVER_RCPTS_MAX 100000	/* recipients in a REQUEST */
#define HANDOVER_TRANSCRIPT_MAX (1024 * 1024)	/* its lines in a RESULT */
#define HANDOVER_READY_WAIT_MS 2000
#define HANDOVER_KEY_MAX (64 * 1024)	/* the session key's text */
#define HANDOVER_PATH_MAX 4096	/* the socket's path */
#define HANDOVER_REFUSAL_MAX 4096	/* a REFUSE record */
#define HANDOVER_COMMIT_MAX 64	/* a COMMIT record */
#define HANDOVER_IDS_MAX (1024 * 1024)	/* the keeper's pairs (a READY) */

/*
 * The session key of acc (appended to key) and the path of its socket
 * (appended to path; the lock file is path + ".lock").  create: make the
 * private directory when missing.  Errors: ERR_CONFIG (no usable private
 * directory: not ours, open to others, path too long for a socket),
 * ERR_IO, ERR_NOMEM.
 */
enum err handover_paths(const struct account *acc, int create,
	struct buf *key, struct buf *path, struct errinfo *reterr);

/* ---- the caller's side ---- */

/*
 * A memory file holding what write() writes (the message's wire form),
 * to be handed over.  Errors: ERR_IO, and those of write.
 */
enum err handover_body_fd(enum err (*write)(void *ctx, int fd,
	struct errinfo *reterr), void *ctx, int *ret_fd,
	struct errinfo *reterr);

struct handover_outcome {
	enum err e;		/* the transaction's outcome */
	int known;		/* 0: the session failed before the outcome */
};

/*
 * After READY: the keeper's pairs in ids (empty when it has none); the
 * caller cites the assigned IDs (message_rewrite_refs()) and gives the
 * body to hand over, a file (ret_fd, which handover_send() closes) of
 * *ret_size wire bytes.  An error: nothing is handed over.
 */
typedef enum err (*handover_body_fn)(void *ctx, const struct msgid_map *ids,
	int *ret_fd, uint64_t *ret_size);

/*
 * Hand env to the keeper at path; own_id: the message's Message-ID
 * (NULL: none, or no threading repair), body: gives the body after READY.
 * Returns 0 when nothing was handed over (no keeper, a refusal, a keeper
 * lost before COMMIT): the caller sends by itself.  Returns 1 when the
 * keeper owned the attempt: ret (initialised by the caller) and *ret_out
 * describe it as submit_message() would, reterr holds the error; a keeper
 * lost after COMMIT gives ERR_NET with known = 0.  The keeper's
 * transcript lines go to transcript (may be NULL).  The wait for READY is
 * at most HANDOVER_READY_WAIT_MS (or timeout_ms when shorter): a keeper
 * busy with another caller, or stopped, does not hold this one up for
 * longer than a login of its own would take; after COMMIT the wait is
 * bounded by timeout_ms * 12 (the keeper's own server deadlines come
 * first).
 */
int handover_send(const char *path, const char *key,
	const struct envelope *env, const char *own_id,
	handover_body_fn body, void *body_ctx, int64_t timeout_ms,
	void (*transcript)(void *ctx, enum smtp_dir dir, const char *line,
	size_t len), void *transcript_ctx,
	struct submit_result *ret, struct handover_outcome *ret_out,
	struct errinfo *reterr);

/* ---- the keeper's side ---- */

/*
 * Claim the keeper's place for path, before the connection to the server
 * (and so before the sending process confines itself: src/cmd/sandbox.h):
 * an exclusive lock on path + ".lock", held for the life of the process
 * (so a keeper killed with -9 leaves no stale claim; a socket file it
 * left is removed here), then a fresh socket bound at path but NOT
 * listening: a caller that arrives while this process is still sending
 * gets ECONNREFUSED at once and uses its own connection.  The keeper
 * listen()s on it after the message went out (keeper.h).  ERR_LIMIT when
 * another process holds the place; ERR_IO, ERR_CONFIG otherwise.
 */
enum err handover_claim(const char *path, int *ret_sock_fd, int *ret_lock_fd,
	struct errinfo *reterr);

/* A request received by the keeper; release with handover_request_release. */
struct handover_request {
	struct buf key;
	struct envelope env;
	struct buf msgid;	/* the message's own ID; empty when none */
	uint64_t size;		/* from the COMMIT */
	int body_fd;		/* from the COMMIT; -1 when none */
};

void handover_request_init(struct handover_request *r);
void handover_request_release(struct handover_request *r);

/*
 * Accepted connection fd: check the peer's uid, read the REQUEST (waiting
 * at most timeout_ms).  Errors: ERR_AUTH (another uid), ERR_PROTO (bad
 * record or version: the message names the key and line), ERR_NET,
 * ERR_TIMEOUT, ERR_NOMEM.
 */
enum err handover_recv_request(int fd, int64_t timeout_ms,
	struct handover_request *ret, struct errinfo *reterr);

/*
 * The REQUEST record in data[0..len) into ret (initialised; its body_fd
 * is left alone): what handover_recv_request() does with the bytes it
 * read.  Errors: ERR_PROTO, ERR_NOMEM.
 */
enum err handover_parse_request(const char *data, size_t len,
	struct handover_request *ret, struct errinfo *reterr);

/*
 * The keeper's answers, as the caller reads them (public for the fuzzer,
 * tests/fuzz/fuzz_record.c).  A READY's pairs (original and assigned
 * Message-ID) are added to ids.  A RESULT for n_rcpts recipients fills
 * ret (initialised by the caller) and out; its transcript lines go to
 * transcript (may be NULL); reterr gets the keeper's error when the
 * outcome is one.  The records are checked whole before anything is
 * used.  Errors: ERR_PROTO (a bad record: the message names the key and
 * line), ERR_NOMEM.
 */
MUST_CHECK enum err handover_parse_ready(const struct buf *data,
	struct msgid_map *ids, struct errinfo *reterr);
MUST_CHECK enum err handover_parse_result(const struct buf *data,
	size_t n_rcpts,
	void (*transcript)(void *, enum smtp_dir, const char *, size_t),
	void *transcript_ctx, struct submit_result *ret,
	struct handover_outcome *out, struct errinfo *reterr);

/* REFUSE with a reason, or READY (reason NULL) with the pairs of ids. */
enum err handover_send_ready(int fd, const char *refusal,
	const struct msgid_map *ids, struct errinfo *reterr);

/*
 * Wait for COMMIT; the body's descriptor and size go to req.  ERR_NET:
 * the caller went away (send nothing); ERR_PROTO (no body came with it).
 */
enum err handover_recv_commit(int fd, int64_t timeout_ms,
	struct handover_request *req, struct errinfo *reterr);

/* Collects transcript lines for the RESULT (a transcript callback). */
void handover_transcript_collect(void *ctx, enum smtp_dir dir,
	const char *line, size_t len);

/* The RESULT; transcript: lines collected above (may be empty). */
enum err handover_send_result(int fd, enum err e, int known,
	const struct errinfo *ei, const struct submit_result *res,
	const struct buf *transcript, struct errinfo *reterr);

#endif
