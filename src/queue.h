/*
 * queue.h - the on-disk mail queue (doc/design.md, On-disk state): messages kept
 * after a temporary failure (queue on-failure) or before any attempt
 * (queue always), flushed later by oasmtp -q.
 *
 * The directory layout and the file formats are documented at the top of
 * queue.c.  This module only stores, lists, updates, moves and removes
 * entries; it never talks SMTP, never prints and never exits.  Sending and
 * reporting belong to sendmail.c.
 *
 * Crash safety: every change is made with write-to-tmp, fsync, rename,
 * fsync of the directory, and the envelope file is the commit record, so a
 * crash at any point leaves either no entry or a complete one.  Leftovers
 * (files in tmp/, message files without an envelope) are invisible to
 * queue_list() and removed by queue_cleanup().
 *
 * Concurrency: adding an entry never takes the lock.  Everything that
 * sends, moves or removes entries must hold the queue lock (queue_lock()),
 * so two flushers never send the same entry.
 *
 * Secrets never reach a queue file: the entry holds the account name and
 * the configuration file, and the secret is obtained again at flush time.
 */
#ifndef OASMTP_QUEUE_H
#define OASMTP_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "err.h"

struct buf;
struct queue;

#define QUEUE_ID_LEN 16		/* hex digits: 8 of time, 8 random */
#define QUEUE_RECORD_MAX (4 * 1024 * 1024)	/* envelope file size cap */

/* Back-off: first retry after 1 minute, doubling up to 1 hour. */
#define QUEUE_BACKOFF_MIN 60
#define QUEUE_BACKOFF_MAX 3600

/* tmp/ files and orphan message files older than this are leftovers. */
#define QUEUE_LEFTOVER_AGE 3600

/*
 * One entry.  Strings and the envelope are heap-owned by the entry and
 * freed by queue_entry_release(); a NULL string reads as "".
 */
struct queue_entry {
	char id[QUEUE_ID_LEN + 1];
	int failed;		/* lives in failed/ */
	char *account;		/* account name in the configuration */
	char *config;		/* the -C file used, "" = the normal lookup */
	struct envelope env;
	uint64_t size;		/* bytes of the message file */
	int64_t created;	/* when first stored (unix time) */
	int64_t queued;		/* when (re-)entered the active queue */
	unsigned attempts;	/* delivery attempts made so far */
	int64_t next_attempt;	/* not before this time */
	char *last_error;	/* our message for the last failure, or NULL */
	int last_code;		/* SMTP reply code of that failure, 0 if none */
};

/* Zero e (all strings NULL). */
void queue_entry_init(struct queue_entry *e);

/* Free everything e owns and zero it.  NULL is fine. */
void queue_entry_release(struct queue_entry *e);

/*
 * Take the recipients with gone[i] set (one flag per e->env.rcpts[i]) out
 * of e, in memory; the others keep their order.  A 452 split that
 * delivered part of an entry leaves the rest this way, and queue_update()
 * (or queue_fail()) then makes it durable.  ERR_DATA when no recipient
 * would be left (an entry always has one; e is unchanged then).
 */
MUST_CHECK enum err queue_entry_drop_rcpts(struct queue_entry *e,
	const unsigned char *gone, struct errinfo *reterr);

/* Release n entries and free the array.  v may be NULL. */
void queue_entries_free(struct queue_entry *v, size_t n);

/*
 * Append the default queue directory to out: $XDG_DATA_HOME/oasmtp/queue,
 * else $HOME/.local/share/oasmtp/queue.  ERR_CONFIG when neither variable
 * holds an absolute path; ERR_LIMIT, ERR_NOMEM.
 */
MUST_CHECK enum err queue_default_dir(struct buf *out, struct errinfo *reterr);

/*
 * Append the queue directory of an account whose queue_dir setting is
 * configured (NULL or "": the default directory) to out.  Errors: those
 * of queue_default_dir().
 */
MUST_CHECK enum err queue_configured_dir(const char *configured, struct buf *out,
	struct errinfo *reterr);

/*
 * Open the queue in dir.  With create, missing directories (dir, tmp/,
 * failed/, and their parents) are made with mode 0700; without it a missing
 * dir is ERR_OK with *ret = NULL (an empty queue).  *ret is owned by the
 * caller (queue_close).  Errors: ERR_IO (with errno), ERR_NOMEM.
 */
MUST_CHECK enum err queue_open(const char *dir, int create, struct queue **ret,
	struct errinfo *reterr);

/* Release the lock, close everything.  NULL is fine. */
void queue_close(struct queue *q);

/* The directory given to queue_open() (owned by q). */
const char *queue_dir(const struct queue *q);

/*
 * Take the exclusive flusher lock (flock on DIR/.lock).  wait: block until
 * it is free; else *ret_busy = 1 and ERR_OK when another process holds it.
 * Held until queue_close().  Errors: ERR_IO.
 */
MUST_CHECK enum err queue_lock(struct queue *q, int wait, int *ret_busy,
	struct errinfo *reterr);

/*
 * Store a new entry.  e supplies everything but id and size, which are set
 * here; write_body writes the message bytes (exactly as they go on the
 * wire) to the file descriptor it is given.  Returns once the entry is
 * durable.  On failure nothing is left behind.  Errors: ERR_IO, ERR_NOMEM,
 * ERR_DATA (an envelope that cannot be stored), errors of write_body.
 */
MUST_CHECK enum err queue_add(struct queue *q, struct queue_entry *e,
	enum err (*write_body)(void *ctx, int fd, struct errinfo *reterr),
	void *ctx, struct errinfo *reterr);

/*
 * All complete entries of the active queue (failed = 0) or of failed/
 * (failed = 1), oldest first.  The array is the caller's
 * (queue_entries_free).  An envelope file that cannot be read or parsed is
 * skipped, counted in *ret_bad (may be NULL) and passed to the
 * queue_on_skip() function.  q NULL: no entries.
 * Errors: ERR_IO, ERR_NOMEM.
 */
/*
 * fn(ctx, message) is called for every entry queue_list() skips (the
 * message says which file and why); NULL: skipped silently.
 */
void queue_on_skip(struct queue *q, void (*fn)(void *ctx, const char *msg),
	void *ctx);

MUST_CHECK enum err queue_list(struct queue *q, int failed, struct queue_entry **ret,
	size_t *ret_n, size_t *ret_bad, struct errinfo *reterr);

/*
 * Read entry id from the active queue or failed/ (*ret_e filled; release it
 * with queue_entry_release).  ERR_USAGE "no queue entry 'ID'" when absent.
 */
MUST_CHECK enum err queue_get(struct queue *q, const char *id, int failed,
	struct queue_entry *ret_e, struct errinfo *reterr);

/* Open the message file of e read-only.  Errors: ERR_IO. */
MUST_CHECK enum err queue_open_message(struct queue *q, const struct queue_entry *e,
	int *ret_fd, struct errinfo *reterr);

/* Rewrite e's envelope file atomically (attempts, errors...).  ERR_IO. */
MUST_CHECK enum err queue_update(struct queue *q, const struct queue_entry *e,
	struct errinfo *reterr);

/*
 * Delete entry e (envelope first, so a crash leaves only an orphan message
 * file).  Errors: ERR_IO.
 */
MUST_CHECK enum err queue_remove(struct queue *q, const struct queue_entry *e,
	struct errinfo *reterr);

/*
 * Move active entry e to failed/, with e's fields (set last_error first)
 * as its record.  Crash-safe: the entry exists in one place or both, never
 * in neither; queue_cleanup() completes a move that was interrupted.
 * Sets e->failed.  Errors: ERR_IO.
 */
MUST_CHECK enum err queue_fail(struct queue *q, struct queue_entry *e,
	struct errinfo *reterr);

/*
 * Move entry e from failed/ back to the active queue, due at now, with the
 * attempt count reset and queued = now (so queue_max_age counts again).
 * Sets e->failed = 0.  Errors: ERR_IO.
 */
MUST_CHECK enum err queue_retry(struct queue *q, struct queue_entry *e, int64_t now,
	struct errinfo *reterr);

/*
 * With the lock held: delete tmp/ files and orphan message files last
 * changed more than QUEUE_LEFTOVER_AGE seconds before now, and finish moves
 * to failed/ that a crash interrupted.  *ret_removed (may be NULL) counts
 * the files deleted.  Errors: ERR_IO.
 */
MUST_CHECK enum err queue_cleanup(struct queue *q, int64_t now, size_t *ret_removed,
	struct errinfo *reterr);

/*
 * How late a flush may come for an entry before the rest of the delay
 * stops counting towards queue_max_age (see queue_entry_clock()).
 */
#define QUEUE_LATE_MAX 86400

/*
 * Make e's times usable after the wall clock jumped, as of now (in memory;
 * queue_update() makes it durable).  A next attempt later than the longest
 * back-off from now (set while the clock ran ahead) becomes now, and a
 * queued time in the future becomes now, so the entry neither waits for a
 * time the clock showed by mistake nor looks younger than it is.  When the
 * entry was due more than QUEUE_LATE_MAX seconds ago (the clock jumped
 * forward, or no flush ran: a machine switched off), the delay beyond
 * that does not count as time in the queue: queued moves forward by it.
 * Returns 1 when e changed.
 */
int queue_entry_clock(struct queue_entry *e, int64_t now);

/*
 * Seconds to wait after the attempts-th failed attempt (attempts >= 1):
 * QUEUE_BACKOFF_MIN doubling per attempt up to QUEUE_BACKOFF_MAX, then
 * jittered by rnd into [base - base/8, base + base/8].  0 for attempts 0.
 */
int64_t queue_backoff(unsigned attempts, uint32_t rnd);

/* A random value for queue_backoff() and ids (getentropy, else time). */
uint32_t queue_random(void);

/* Serialise e as an envelope record (the format in queue.c) into out. */
MUST_CHECK enum err queue_format_record(const struct queue_entry *e, struct buf *out,
	struct errinfo *reterr);

/*
 * Parse an envelope record.  ret_e is filled (caller releases) only on
 * success.  ERR_DATA for anything malformed or incomplete, ERR_NOMEM.
 */
MUST_CHECK enum err queue_parse_record(const char *data, size_t len,
	struct queue_entry *ret_e, struct errinfo *reterr);

/* 1 when s is a well-formed queue id (QUEUE_ID_LEN lower-case hex). */
int queue_id_valid(const char *s);

#endif
