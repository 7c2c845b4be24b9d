/*
 * queue.c - the on-disk mail queue; see queue.h.
 *
 * Directory layout (every directory 0700, every file 0600):
 *
 *   DIR/.lock            flock(2)ed by whoever flushes, drops or retries
 *   DIR/tmp/             files being written; never read by anyone
 *   DIR/ID.msg           the message, byte for byte as it goes on the wire
 *                        (CRLF line ends, headers already rewritten, not
 *                        dot-stuffed)
 *   DIR/ID.env           the envelope record; its presence commits the entry
 *   DIR/failed/ID.msg    entries that will not be retried automatically
 *   DIR/failed/ID.env
 *
 * ID is 16 lower-case hex digits: 8 of the creation time, 8 random, so a
 * listing sorted by name is sorted by age.
 *
 * Envelope record (the record format of record.h, which also gives the
 * escape rule), written in this order:
 *
 *   oasmtp-queue 1          format name and version, always first
 *   account NAME            account name in the configuration
 *   config PATH             -C file used when queued; empty = normal lookup
 *   from ADDR               envelope sender; empty = null sender <>
 *   rcpt ADDR               one line per recipient, in order (at least one)
 *   body-8bit 0|1           BODY=8BITMIME
 *   smtputf8 0|1            SMTPUTF8
 *   dsn-notify VALUE        optional (NOTIFY=)
 *   dsn-return VALUE        optional (RET=)
 *   dsn-envid VALUE         optional (ENVID=)
 *   size N                  bytes in ID.msg
 *   created T               unix time first stored
 *   queued T                unix time it (re-)entered the active queue
 *   attempts N              delivery attempts so far
 *   next-attempt T          unix time before which a flush skips it
 *   last-code N             SMTP code of the last failure, 0 = none
 *   last-error TEXT         optional: our message for the last failure
 *   end                     always last: a record without it is incomplete
 *
 * Unknown keys are an error (a newer format gets a new version number).
 * No secret is ever part of a record.
 *
 * Writing an entry: ID.msg is written in tmp/, fsynced and renamed into
 * DIR, then ID.env likewise, then DIR is fsynced.  A crash before the
 * second rename leaves at most an orphan ID.msg or tmp/ files, which the
 * listing ignores and queue_cleanup() deletes once old.  An update writes
 * a new ID.env the same way.  Removal unlinks ID.env first.  A move to
 * failed/ hard-links the message there, commits failed/ID.env, then
 * removes the active entry: interrupted, the entry is in both places and
 * queue_cleanup() finishes the move.
 */
#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fileio.h"
#include "paths.h"
#include "record.h"
#include "util.h"

struct queue {
	char *dir;
	int dfd;		/* DIR */
	int lockfd;		/* DIR/.lock once locked, else -1 */
	void (*on_skip)(void *ctx, const char *msg);	/* queue_on_skip */
	void *skip_ctx;
};

void
queue_on_skip(struct queue *q, void (*fn)(void *ctx, const char *msg),
	void *ctx)
{
	q->on_skip = fn;
	q->skip_ctx = ctx;
}

void
queue_entry_init(struct queue_entry *e)
{
	memset(e, 0, sizeof(*e));
}

void
queue_entry_release(struct queue_entry *e)
{
	if (e == NULL) {
		return;
	}
	free(e->account);
	free(e->config);
	free(e->last_error);
	envelope_release(&e->env);
	memset(e, 0, sizeof(*e));
}

enum err
queue_entry_drop_rcpts(struct queue_entry *e, const unsigned char *gone,
	struct errinfo *reterr)
{
	size_t i, kept = 0;

	for (i = 0; i < e->env.n_rcpts; i++) {
		kept += !gone[i];
	}
	if (kept == 0) {
		return errinfo_set(reterr, ERR_DATA, "queue entry %s: no "
			"recipient would be left", e->id);
	}
	kept = 0;
	for (i = 0; i < e->env.n_rcpts; i++) {
		if (gone[i]) {
			free(e->env.rcpts[i]);
		} else {
			e->env.rcpts[kept++] = e->env.rcpts[i];
		}
	}
	if (kept < e->env.n_rcpts) {
		/* NULL-terminated, as the parser builds it */
		e->env.rcpts[kept] = NULL;
	}
	e->env.n_rcpts = kept;
	return ERR_OK;
}

void
queue_entries_free(struct queue_entry *v, size_t n)
{
	size_t i;

	if (v == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		queue_entry_release(&v[i]);
	}
	free(v);
}

int
queue_id_valid(const char *s)
{
	size_t i;

	if (s == NULL) {
		return 0;
	}
	for (i = 0; i < QUEUE_ID_LEN; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f'))) {
			return 0;
		}
	}
	return s[QUEUE_ID_LEN] == '\0';
}

uint32_t
queue_random(void)
{
	uint32_t r;
	struct timespec ts;

	if (getentropy(&r, sizeof(r)) == 0) {
		return r;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint32_t)ts.tv_nsec ^ ((uint32_t)getpid() << 16);
}

int64_t
queue_backoff(unsigned attempts, uint32_t rnd)
{
	int64_t base = QUEUE_BACKOFF_MIN;
	unsigned i;

	if (attempts == 0) {
		return 0;
	}
	for (i = 1; i < attempts && base < QUEUE_BACKOFF_MAX; i++) {
		base *= 2;
	}
	if (base > QUEUE_BACKOFF_MAX) {
		base = QUEUE_BACKOFF_MAX;
	}
	return base - base / 8 + (int64_t)(rnd % (uint32_t)(base / 4 + 1));
}

int
queue_entry_clock(struct queue_entry *e, int64_t now)
{
	/* the latest next attempt this code ever sets: see queue_backoff() */
	const int64_t horizon = QUEUE_BACKOFF_MAX + QUEUE_BACKOFF_MAX / 8;
	int changed = 0;

	/* differences only: the stored times come from a file */
	if (e->next_attempt > now && e->next_attempt - now > horizon) {
		e->next_attempt = now;
		changed = 1;
	}
	if (e->queued > now) {
		e->queued = now;
		changed = 1;
	}
	if (e->next_attempt < now && now - e->next_attempt > QUEUE_LATE_MAX) {
		int64_t skip = now - e->next_attempt - QUEUE_LATE_MAX;

		e->queued = skip > now - e->queued ? now : e->queued + skip;
		e->next_attempt = now - QUEUE_LATE_MAX;
		changed = 1;
	}
	return changed;
}

enum err
queue_configured_dir(const char *configured, struct buf *out, struct errinfo *reterr)
{
	if (configured == NULL || configured[0] == '\0') {
		return queue_default_dir(out, reterr);
	}
	if (buf_append_str(out, configured) != ERR_OK) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	return ERR_OK;
}

enum err
queue_default_dir(struct buf *out, struct errinfo *reterr)
{
	struct buf data;
	enum err e;

	buf_init(&data, PATH_MAX);
	e = paths_data_dir(&data);
	if (e == ERR_CONFIG) {
		buf_release(&data);
		return errinfo_set(reterr, ERR_CONFIG, "no queue directory: "
			"neither XDG_DATA_HOME nor HOME is an absolute path; "
			"set queue_dir");
	}
	if (e == ERR_OK) {
		e = buf_printf(out, "%s/oasmtp/queue", buf_cstr(&data));
	}
	buf_release(&data);
	return e == ERR_OK ? ERR_OK : errinfo_set(reterr, e,
		"queue directory name too long");
}

/* ---- the record format ---- */

static const struct record_key queue_keys[] = {
	{ "account", RECORD_REQUIRED }, { "config", RECORD_REQUIRED },
	{ "from", RECORD_REQUIRED }, { "rcpt", RECORD_REQUIRED | RECORD_REPEAT },
	{ "body-8bit", RECORD_REQUIRED }, { "smtputf8", RECORD_REQUIRED },
	{ "dsn-notify", 0 }, { "dsn-return", 0 }, { "dsn-envid", 0 },
	{ "size", RECORD_REQUIRED }, { "created", RECORD_REQUIRED },
	{ "queued", RECORD_REQUIRED }, { "attempts", RECORD_REQUIRED },
	{ "next-attempt", RECORD_REQUIRED }, { "last-code", RECORD_REQUIRED },
	{ "last-error", 0 }, { NULL, 0 },
};

static const struct record_spec queue_spec = {
	.name = "oasmtp-queue", .what = "queue record",
	.min_version = 1, .max_version = 1, .trailer_since = 1,
	.keys = queue_keys,
};

enum err
queue_format_record(const struct queue_entry *q, struct buf *out,
	struct errinfo *reterr)
{
	const struct envelope *env = &q->env;
	enum err e;
	size_t i;

	e = record_begin(out, queue_spec.name, 1);
	if (e == ERR_OK) {
		e = record_put_str(out, "account", q->account);
	}
	if (e == ERR_OK) {
		e = record_put_str(out, "config", q->config);
	}
	if (e == ERR_OK) {
		e = record_put_str(out, "from", env->from);
	}
	for (i = 0; i < env->n_rcpts && e == ERR_OK; i++) {
		e = record_put_str(out, "rcpt", env->rcpts[i]);
	}
	if (e == ERR_OK) {
		e = record_put_long(out, "body-8bit", env->body_8bit ? 1 : 0);
	}
	if (e == ERR_OK) {
		e = record_put_long(out, "smtputf8", env->smtputf8 ? 1 : 0);
	}
	if (e == ERR_OK && env->dsn_notify != NULL) {
		e = record_put_str(out, "dsn-notify", env->dsn_notify);
	}
	if (e == ERR_OK && env->dsn_return != NULL) {
		e = record_put_str(out, "dsn-return", env->dsn_return);
	}
	if (e == ERR_OK && env->dsn_envid != NULL) {
		e = record_put_str(out, "dsn-envid", env->dsn_envid);
	}
	if (e == ERR_OK) {
		e = record_put_long(out, "size", (long long)q->size);
	}
	if (e == ERR_OK) {
		e = record_put_long(out, "created", q->created);
	}
	if (e == ERR_OK) {
		e = record_put_long(out, "queued", q->queued);
	}
	if (e == ERR_OK) {
		e = record_put_long(out, "attempts", q->attempts);
	}
	if (e == ERR_OK) {
		e = record_put_long(out, "next-attempt", q->next_attempt);
	}
	if (e == ERR_OK) {
		e = record_put_long(out, "last-code", q->last_code);
	}
	if (e == ERR_OK && q->last_error != NULL) {
		e = record_put_str(out, "last-error", q->last_error);
	}
	if (e == ERR_OK) {
		e = record_finish(out);
	}
	if (e != ERR_OK) {
		return errinfo_set(reterr, e == ERR_LIMIT ? ERR_DATA : e,
			"queue record too large");
	}
	return ERR_OK;
}

/* The string fields of an entry, by key (rcpt aside). */
static char **
string_field(struct queue_entry *q, const char *key)
{
	if (strcmp(key, "account") == 0) {
		return &q->account;
	}
	if (strcmp(key, "config") == 0) {
		return &q->config;
	}
	if (strcmp(key, "from") == 0) {
		return &q->env.from;
	}
	if (strcmp(key, "dsn-notify") == 0) {
		return &q->env.dsn_notify;
	}
	if (strcmp(key, "dsn-return") == 0) {
		return &q->env.dsn_return;
	}
	if (strcmp(key, "dsn-envid") == 0) {
		return &q->env.dsn_envid;
	}
	if (strcmp(key, "last-error") == 0) {
		return &q->last_error;
	}
	return NULL;
}

static int
add_rcpt(struct envelope *env, char *v)
{
	char **n = realloc(env->rcpts, (env->n_rcpts + 2) * sizeof(char *));

	if (n == NULL) {
		return -1;
	}
	env->rcpts = n;
	env->rcpts[env->n_rcpts++] = v;
	env->rcpts[env->n_rcpts] = NULL;
	return 0;
}

/* A numeric field of an entry: its key, upper bound and place. */
static MUST_CHECK enum err
number_field(struct queue_entry *q, const struct record_field *f,
	struct errinfo *reterr)
{
	long max = strcmp(f->key, "body-8bit") == 0 ||
		strcmp(f->key, "smtputf8") == 0 ? 1 :
		strcmp(f->key, "attempts") == 0 ? 1000000 :
		strcmp(f->key, "last-code") == 0 ? 999 : LONG_MAX;
	long n;
	enum err e = record_field_long(&queue_spec, f, 0, max, &n, reterr);

	if (e != ERR_OK) {
		return e;
	}
	if (strcmp(f->key, "body-8bit") == 0) {
		q->env.body_8bit = (int)n;
	} else if (strcmp(f->key, "smtputf8") == 0) {
		q->env.smtputf8 = (int)n;
	} else if (strcmp(f->key, "size") == 0) {
		q->size = (uint64_t)n;
	} else if (strcmp(f->key, "created") == 0) {
		q->created = n;
	} else if (strcmp(f->key, "queued") == 0) {
		q->queued = n;
	} else if (strcmp(f->key, "attempts") == 0) {
		q->attempts = (unsigned)n;
	} else if (strcmp(f->key, "next-attempt") == 0) {
		q->next_attempt = n;
	} else {
		q->last_code = (int)n;
	}
	return ERR_OK;
}

/* Move the value of f into q (the record gives it up). */
static MUST_CHECK enum err
take_field(struct queue_entry *q, struct record_field *f,
	struct errinfo *reterr)
{
	char **place = string_field(q, f->key);
	const char *v;
	enum err e;

	if (place == NULL && strcmp(f->key, "rcpt") != 0) {
		return number_field(q, f, reterr);
	}
	e = record_field_str(&queue_spec, f, &v, reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (place == NULL && v[0] == '\0') {
		return errinfo_set(reterr, ERR_DATA, "queue record, line %u: "
			"empty recipient", f->line);
	}
	if (place == NULL && add_rcpt(&q->env, f->value) != 0) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	if (place != NULL) {
		*place = f->value;
	}
	f->value = NULL;
	f->len = 0;
	return ERR_OK;
}

enum err
queue_parse_record(const char *data, size_t len, struct queue_entry *ret_e,
	struct errinfo *reterr)
{
	struct queue_entry q;
	struct record rec;
	enum err e;
	size_t i;

	e = record_parse(&queue_spec, data, len, &rec, reterr);
	if (e != ERR_OK) {
		return e;
	}
	queue_entry_init(&q);
	for (i = 0; i < rec.n && e == ERR_OK; i++) {
		e = take_field(&q, &rec.fields[i], reterr);
	}
	record_release(&rec);
	if (e != ERR_OK) {
		queue_entry_release(&q);
		return e;
	}
	*ret_e = q;
	return ERR_OK;
}

/* ---- files ---- */

static MUST_CHECK enum err
io_error(struct errinfo *reterr, const struct queue *q, const char *what,
	const char *name)
{
	int err = errno;
	enum err e = errinfo_set(reterr, ERR_IO, "queue %s: cannot %s '%s': "
		"%s", q->dir, what, name, strerror(err));

	errinfo_set_errno(reterr, err);
	errno = err;
	return e;
}

static MUST_CHECK enum err
mkdirs(char *path, struct errinfo *reterr)
{
	char *p;

	for (p = path + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(path, 0700) != 0 && errno != EEXIST) {
				int err = errno;

				errinfo_set(reterr, ERR_IO, "cannot create "
					"queue directory '%s': %s", path,
					strerror(err));
				*p = c;
				return ERR_IO;
			}
			*p = c;
			if (c == '\0') {
				break;
			}
		}
	}
	return ERR_OK;
}

enum err
queue_open(const char *dir, int create, struct queue **ret,
	struct errinfo *reterr)
{
	struct queue *q;
	char *path;
	int dfd;

	if (dir == NULL || dir[0] != '/') {
		return errinfo_set(reterr, ERR_CONFIG, "queue_dir '%s' is not "
			"an absolute path", dir ? dir : "");
	}
	path = strdup(dir);
	if (path == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	if (create && mkdirs(path, reterr) != ERR_OK) {
		free(path);
		return ERR_IO;
	}
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int err = errno;

		free(path);
		if (!create && err == ENOENT) {
			*ret = NULL;
			return ERR_OK;
		}
		return errinfo_set(reterr, ERR_IO, "cannot open queue "
			"directory '%s': %s", dir, strerror(err));
	}
	if (create && ((mkdirat(dfd, "tmp", 0700) != 0 && errno != EEXIST) ||
	    (mkdirat(dfd, "failed", 0700) != 0 && errno != EEXIST))) {
		int err = errno;

		close(dfd);
		free(path);
		return errinfo_set(reterr, ERR_IO, "cannot create the "
			"subdirectories of queue '%s': %s", dir, strerror(err));
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		close(dfd);
		free(path);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	q->dir = path;
	q->dfd = dfd;
	q->lockfd = -1;
	*ret = q;
	return ERR_OK;
}

void
queue_close(struct queue *q)
{
	if (q == NULL) {
		return;
	}
	if (q->lockfd >= 0) {
		close(q->lockfd);
	}
	close(q->dfd);
	free(q->dir);
	free(q);
}

const char *
queue_dir(const struct queue *q)
{
	return q->dir;
}

enum err
queue_lock(struct queue *q, int wait, int *ret_busy, struct errinfo *reterr)
{
	int r;

	*ret_busy = 0;
	if (q->lockfd < 0) {
		q->lockfd = openat(q->dfd, ".lock", O_RDWR | O_CREAT |
			O_CLOEXEC, 0600);
		if (q->lockfd < 0) {
			return io_error(reterr, q, "open", ".lock");
		}
	}
	do {
		r = flock(q->lockfd, LOCK_EX | (wait ? 0 : LOCK_NB));
	} while (r != 0 && errno == EINTR);
	if (r != 0) {
		if (errno == EWOULDBLOCK) {
			*ret_busy = 1;
			return ERR_OK;
		}
		return io_error(reterr, q, "lock", ".lock");
	}
	return ERR_OK;
}

/* "failed/ID.env" style names. */
static void
name_of(char *out, size_t cap, int failed, const char *id, const char *ext)
{
	snprintf(out, cap, "%s%s.%s", failed ? "failed/" : "", id, ext);
}

static MUST_CHECK enum err
sync_dir(struct queue *q, const char *sub, struct errinfo *reterr)
{
	int fd = sub != NULL ? openat(q->dfd, sub, O_RDONLY | O_DIRECTORY |
		O_CLOEXEC) : q->dfd;
	int r;

	if (fd < 0) {
		return io_error(reterr, q, "open", sub != NULL ? sub : ".");
	}
	r = fsync(fd);
	if (sub != NULL) {
		close(fd);
	}
	if (r != 0 && errno != EINVAL) {
		return io_error(reterr, q, "sync", sub != NULL ? sub : ".");
	}
	return ERR_OK;
}

/*
 * Write tmp/ID.ext through fill (or data), fsync, rename to dest.  Leaves
 * nothing in tmp/ on failure.
 */
static MUST_CHECK enum err
commit_file(struct queue *q, const char *id, const char *ext,
	const char *dest, const struct buf *data,
	enum err (*fill)(void *ctx, int fd, struct errinfo *reterr), void *ctx,
	uint64_t *ret_size, struct errinfo *reterr)
{
	char tmp[64];
	struct stat st;
	enum err e = ERR_OK;
	int fd;

	snprintf(tmp, sizeof(tmp), "tmp/%s.%s", id, ext);
	fd = openat(q->dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		0600);
	if (fd < 0) {
		return io_error(reterr, q, "create", tmp);
	}
	if (data != NULL) {
		if (util_write_all(fd, data->data, data->len) != 0) {
			e = io_error(reterr, q, "write", tmp);
		}
	} else {
		e = fill(ctx, fd, reterr);
	}
	if (e == ERR_OK && fsync(fd) != 0) {
		e = io_error(reterr, q, "sync", tmp);
	}
	if (e == ERR_OK && ret_size != NULL) {
		if (fstat(fd, &st) != 0) {
			e = io_error(reterr, q, "stat", tmp);
		} else {
			*ret_size = (uint64_t)st.st_size;
		}
	}
	if (close(fd) != 0 && e == ERR_OK) {
		e = io_error(reterr, q, "write", tmp);
	}
	if (e == ERR_OK && renameat(q->dfd, tmp, q->dfd, dest) != 0) {
		e = io_error(reterr, q, "rename", tmp);
	}
	if (e != ERR_OK) {
		unlinkat(q->dfd, tmp, 0);
	}
	return e;
}

static MUST_CHECK enum err
write_record(struct queue *q, const struct queue_entry *e, int failed,
	struct errinfo *reterr)
{
	char dest[64];
	struct buf rec;
	enum err r;

	buf_init(&rec, QUEUE_RECORD_MAX);
	r = queue_format_record(e, &rec, reterr);
	if (r == ERR_OK) {
		name_of(dest, sizeof(dest), failed, e->id, "env");
		r = commit_file(q, e->id, "env", dest, &rec, NULL, NULL, NULL,
			reterr);
	}
	buf_release(&rec);
	if (r == ERR_OK) {
		r = sync_dir(q, failed ? "failed" : NULL, reterr);
	}
	return r;
}

static void
new_id(char *out, int64_t now)
{
	snprintf(out, QUEUE_ID_LEN + 1, "%08" PRIx32 "%08" PRIx32,
		(uint32_t)now, queue_random());
}

enum err
queue_add(struct queue *q, struct queue_entry *e,
	enum err (*write_body)(void *ctx, int fd, struct errinfo *reterr),
	void *ctx, struct errinfo *reterr)
{
	char msg[64];
	struct stat st;
	enum err r;
	int tries;

	/* a fresh id: neither an entry nor a message file may exist */
	for (tries = 0; ; tries++) {
		new_id(e->id, e->created);
		name_of(msg, sizeof(msg), 0, e->id, "msg");
		if (fstatat(q->dfd, msg, &st, 0) != 0 && errno == ENOENT) {
			break;
		}
		if (tries > 100) {
			return io_error(reterr, q, "find a free name for",
				msg);
		}
	}
	e->failed = 0;
	r = commit_file(q, e->id, "msg", msg, NULL, write_body, ctx, &e->size,
		reterr);
	if (r == ERR_OK) {
		r = sync_dir(q, NULL, reterr);
	}
	if (r == ERR_OK) {
		r = write_record(q, e, 0, reterr);
	}
	if (r != ERR_OK) {
		unlinkat(q->dfd, msg, 0);
	}
	return r;
}

/* Read and parse DIR/[failed/]ID.env. */
static MUST_CHECK enum err
read_entry(struct queue *q, const char *id, int failed,
	struct queue_entry *ret_e, struct errinfo *reterr)
{
	static const struct fileio_private rules = {
		.what = "queue record", .owner = FILEIO_ANY_OWNER,
		.max = QUEUE_RECORD_MAX, .refused = ERR_DATA,
	};
	char name[64];
	struct buf data;
	enum err e;
	int exists;

	name_of(name, sizeof(name), failed, id, "env");
	buf_init(&data, QUEUE_RECORD_MAX);
	e = fileio_read_private(q->dfd, name, &rules, &data, &exists, reterr);
	if (e == ERR_OK && !exists) {
		e = errinfo_set(reterr, ERR_USAGE, "no queue entry '%s'%s", id,
			failed ? " in failed/" : "");
	} else if (e == ERR_OK) {
		e = queue_parse_record(data.data, data.len, ret_e, reterr);
	}
	if (e == ERR_DATA || (e == ERR_IO && exists)) {
		errinfo_prefix(reterr, "%s/%s: ", q->dir, name);
	}
	buf_release(&data);
	if (e == ERR_OK) {
		util_strlcpy(ret_e->id, id, sizeof(ret_e->id));
		ret_e->failed = failed;
	}
	return e;
}

enum err
queue_get(struct queue *q, const char *id, int failed,
	struct queue_entry *ret_e, struct errinfo *reterr)
{
	if (!queue_id_valid(id)) {
		return errinfo_set(reterr, ERR_USAGE, "'%s' is not a queue id "
			"(16 hex digits, as mailq shows them)", id);
	}
	return read_entry(q, id, failed, ret_e, reterr);
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(((const struct queue_entry *)a)->id,
		((const struct queue_entry *)b)->id);
}

/* The ids of DIR/[failed/]*.ext, via cb. */
static MUST_CHECK enum err
scan(struct queue *q, const char *sub, const char *ext,
	enum err (*cb)(void *ctx, const char *id), void *ctx,
	struct errinfo *reterr)
{
	size_t elen = strlen(ext);
	struct dirent *de;
	enum err e = ERR_OK;
	DIR *d;
	int fd;

	fd = openat(q->dfd, sub != NULL ? sub : ".", O_RDONLY | O_DIRECTORY |
		O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			return ERR_OK;
		}
		return io_error(reterr, q, "open", sub != NULL ? sub : ".");
	}
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return io_error(reterr, q, "read", sub != NULL ? sub : ".");
	}
	while (e == ERR_OK && (de = readdir(d)) != NULL) {
		char id[QUEUE_ID_LEN + 1];
		size_t n = strlen(de->d_name);

		if (n != QUEUE_ID_LEN + 1 + elen || de->d_name[QUEUE_ID_LEN] !=
		    '.' || strcmp(de->d_name + QUEUE_ID_LEN + 1, ext) != 0) {
			continue;
		}
		memcpy(id, de->d_name, QUEUE_ID_LEN);
		id[QUEUE_ID_LEN] = '\0';
		if (queue_id_valid(id)) {
			e = cb(ctx, id);
		}
	}
	closedir(d);
	return e;
}

struct lister {
	struct queue *q;
	int failed;
	struct queue_entry *v;
	size_t n, cap, bad;
	struct errinfo *reterr;
};

static MUST_CHECK enum err
list_one(void *ctx, const char *id)
{
	struct lister *l = ctx;
	struct queue_entry e;
	struct errinfo scratch = ERRINFO_INIT;
	enum err r;

	r = read_entry(l->q, id, l->failed, &e, &scratch);
	if (r == ERR_USAGE) {
		return ERR_OK;	/* removed by someone else meanwhile */
	}
	if (r == ERR_DATA || r == ERR_IO) {
		/*
		 * Malformed, or unreadable (another owner, a bad sector): one
		 * such entry must not hide or stop all the others.  Skipped
		 * and reported.
		 */
		l->bad++;
		if (l->q->on_skip != NULL) {
			l->q->on_skip(l->q->skip_ctx, errinfo_msg(&scratch));
		}
		return ERR_OK;
	}
	if (r != ERR_OK) {
		return r;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct queue_entry *nv = realloc(l->v, cap * sizeof(*nv));

		if (nv == NULL) {
			queue_entry_release(&e);
			return errinfo_set(l->reterr, ERR_NOMEM,
				"out of memory");
		}
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n++] = e;
	return ERR_OK;
}

enum err
queue_list(struct queue *q, int failed, struct queue_entry **ret,
	size_t *ret_n, size_t *ret_bad, struct errinfo *reterr)
{
	struct lister l;
	enum err e;

	memset(&l, 0, sizeof(l));
	l.q = q;
	l.failed = failed;
	l.reterr = reterr;
	if (q != NULL) {
		e = scan(q, failed ? "failed" : NULL, "env", list_one, &l,
			reterr);
		if (e != ERR_OK) {
			queue_entries_free(l.v, l.n);
			return e;
		}
	}
	if (l.n > 1) {
		qsort(l.v, l.n, sizeof(*l.v), cmp_id);
	}
	*ret = l.v;
	*ret_n = l.n;
	if (ret_bad != NULL) {
		*ret_bad = l.bad;
	}
	return ERR_OK;
}

enum err
queue_open_message(struct queue *q, const struct queue_entry *e,
	int *ret_fd, struct errinfo *reterr)
{
	char name[64];
	int fd;

	name_of(name, sizeof(name), e->failed, e->id, "msg");
	fd = openat(q->dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return io_error(reterr, q, "open", name);
	}
	*ret_fd = fd;
	return ERR_OK;
}

enum err
queue_update(struct queue *q, const struct queue_entry *e,
	struct errinfo *reterr)
{
	return write_record(q, e, e->failed, reterr);
}

static MUST_CHECK enum err
remove_files(struct queue *q, const char *id, int failed,
	struct errinfo *reterr)
{
	char name[64];

	name_of(name, sizeof(name), failed, id, "env");
	if (unlinkat(q->dfd, name, 0) != 0 && errno != ENOENT) {
		return io_error(reterr, q, "remove", name);
	}
	name_of(name, sizeof(name), failed, id, "msg");
	if (unlinkat(q->dfd, name, 0) != 0 && errno != ENOENT) {
		return io_error(reterr, q, "remove", name);
	}
	return sync_dir(q, failed ? "failed" : NULL, reterr);
}

enum err
queue_remove(struct queue *q, const struct queue_entry *e,
	struct errinfo *reterr)
{
	return remove_files(q, e->id, e->failed, reterr);
}

/* Hard-link the message of id from one side to the other. */
static MUST_CHECK enum err
link_message(struct queue *q, const char *id, int to_failed,
	struct errinfo *reterr)
{
	char from[64], to[64];

	name_of(from, sizeof(from), !to_failed, id, "msg");
	name_of(to, sizeof(to), to_failed, id, "msg");
	if (linkat(q->dfd, from, q->dfd, to, 0) != 0 && errno != EEXIST) {
		return io_error(reterr, q, "link", from);
	}
	return ERR_OK;
}

enum err
queue_fail(struct queue *q, struct queue_entry *e, struct errinfo *reterr)
{
	enum err r;

	if (e->failed) {
		return queue_update(q, e, reterr);
	}
	r = link_message(q, e->id, 1, reterr);
	if (r == ERR_OK) {
		r = write_record(q, e, 1, reterr);
	}
	if (r == ERR_OK) {
		r = remove_files(q, e->id, 0, reterr);
	}
	if (r == ERR_OK) {
		e->failed = 1;
	}
	return r;
}

enum err
queue_retry(struct queue *q, struct queue_entry *e, int64_t now,
	struct errinfo *reterr)
{
	enum err r;

	e->attempts = 0;
	e->next_attempt = now;
	e->queued = now;
	r = link_message(q, e->id, 0, reterr);
	if (r == ERR_OK) {
		r = sync_dir(q, NULL, reterr);
	}
	if (r == ERR_OK) {
		r = write_record(q, e, 0, reterr);
	}
	if (r == ERR_OK) {
		r = remove_files(q, e->id, 1, reterr);
	}
	if (r == ERR_OK) {
		e->failed = 0;
	}
	return r;
}

struct cleaner {
	struct queue *q;
	const char *sub;
	int64_t now;
	size_t removed;
	struct errinfo *reterr;
};

/* Remove sub/name when it is older than the leftover age. */
static MUST_CHECK enum err
remove_if_old(struct cleaner *c, const char *name)
{
	char path[300];
	struct stat st;

	snprintf(path, sizeof(path), "%s%s%s", c->sub ? c->sub : "",
		c->sub ? "/" : "", name);
	if (fstatat(c->q->dfd, path, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
	    !S_ISREG(st.st_mode) || c->now - (int64_t)st.st_mtime <
	    QUEUE_LEFTOVER_AGE) {
		return ERR_OK;
	}
	if (unlinkat(c->q->dfd, path, 0) != 0 && errno != ENOENT) {
		return io_error(c->reterr, c->q, "remove", path);
	}
	c->removed++;
	return ERR_OK;
}

/* A message file: an orphan when its envelope is missing. */
static MUST_CHECK enum err
clean_msg(void *ctx, const char *id)
{
	struct cleaner *c = ctx;
	char name[64];
	struct stat st;
	int failed = c->sub != NULL;

	name_of(name, sizeof(name), failed, id, "env");
	if (fstatat(c->q->dfd, name, &st, 0) == 0) {
		return ERR_OK;
	}
	name_of(name, sizeof(name), 0, id, "msg");
	return remove_if_old(c, name);
}

/* An active entry that also exists in failed/: finish the move. */
static MUST_CHECK enum err
clean_dup(void *ctx, const char *id)
{
	struct cleaner *c = ctx;
	char name[64];
	struct stat st;

	name_of(name, sizeof(name), 1, id, "env");
	if (fstatat(c->q->dfd, name, &st, 0) != 0) {
		return ERR_OK;
	}
	c->removed++;
	return remove_files(c->q, id, 0, c->reterr);
}

enum err
queue_cleanup(struct queue *q, int64_t now, size_t *ret_removed,
	struct errinfo *reterr)
{
	struct cleaner c;
	struct dirent *de;
	enum err e;
	DIR *d;
	int fd;

	memset(&c, 0, sizeof(c));
	c.q = q;
	c.now = now;
	c.reterr = reterr;
	e = scan(q, NULL, "env", clean_dup, &c, reterr);
	if (e == ERR_OK) {
		e = scan(q, NULL, "msg", clean_msg, &c, reterr);
	}
	if (e == ERR_OK) {
		c.sub = "failed";
		e = scan(q, "failed", "msg", clean_msg, &c, reterr);
	}
	if (e != ERR_OK) {
		return e;
	}
	c.sub = "tmp";
	fd = openat(q->dfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		d = fdopendir(fd);
		if (d == NULL) {
			close(fd);
			return io_error(reterr, q, "read", "tmp");
		}
		while (e == ERR_OK && (de = readdir(d)) != NULL) {
			if (de->d_name[0] != '.') {
				e = remove_if_old(&c, de->d_name);
			}
		}
		closedir(d);
	}
	if (ret_removed != NULL) {
		*ret_removed = c.removed;
	}
	return e;
}
