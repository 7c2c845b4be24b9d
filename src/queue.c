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
 * Envelope record: UTF-8/ASCII text, one "key value" per line (a single
 * space between them), LF line ends, in this order:
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
 * Values are escaped: a backslash is written "\\", LF "\n", CR "\r", TAB
 * "\t", and every other byte below 0x20 or 0x7f as "\xHH"; nothing else
 * is escaped, so a value never contains a line break.  Unknown keys are an
 * error (a newer format gets a new version number).  No secret is ever
 * part of a record.
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
#include "util.h"

#define FORMAT_LINE "oasmtp-queue 1"

struct queue {
	char *dir;
	int dfd;		/* DIR */
	int lockfd;		/* DIR/.lock once locked, else -1 */
};

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
	const char *data = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");
	enum err e;

	if (data != NULL && data[0] == '/') {
		e = buf_printf(out, "%s/oasmtp/queue", data);
	} else if (home != NULL && home[0] == '/') {
		e = buf_printf(out, "%s/.local/share/oasmtp/queue", home);
	} else {
		return errinfo_set(reterr, ERR_CONFIG, "no queue directory: "
			"neither XDG_DATA_HOME nor HOME is an absolute path; "
			"set queue_dir");
	}
	return e == ERR_OK ? ERR_OK : errinfo_set(reterr, e,
		"queue directory name too long");
}

/* ---- the record format ---- */

static MUST_CHECK enum err
put_escaped(struct buf *out, const char *s)
{
	enum err e = ERR_OK;

	for (; s != NULL && *s != '\0' && e == ERR_OK; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '\\':
			e = buf_append_str(out, "\\\\");
			break;
		case '\n':
			e = buf_append_str(out, "\\n");
			break;
		case '\r':
			e = buf_append_str(out, "\\r");
			break;
		case '\t':
			e = buf_append_str(out, "\\t");
			break;
		default:
			if (c < 0x20 || c == 0x7f) {
				e = buf_printf(out, "\\x%02x", c);
			} else {
				e = buf_putc(out, (char)c);
			}
			break;
		}
	}
	return e;
}

static MUST_CHECK enum err
put_field(struct buf *out, const char *key, const char *value)
{
	enum err e = buf_printf(out, "%s ", key);

	if (e == ERR_OK) {
		e = put_escaped(out, value);
	}
	if (e == ERR_OK) {
		e = buf_putc(out, '\n');
	}
	return e;
}

enum err
queue_format_record(const struct queue_entry *q, struct buf *out,
	struct errinfo *reterr)
{
	const struct envelope *env = &q->env;
	enum err e;
	size_t i;

	e = buf_append_str(out, FORMAT_LINE "\n");
	if (e == ERR_OK) {
		e = put_field(out, "account", q->account);
	}
	if (e == ERR_OK) {
		e = put_field(out, "config", q->config);
	}
	if (e == ERR_OK) {
		e = put_field(out, "from", env->from);
	}
	for (i = 0; i < env->n_rcpts && e == ERR_OK; i++) {
		e = put_field(out, "rcpt", env->rcpts[i]);
	}
	if (e == ERR_OK) {
		e = buf_printf(out, "body-8bit %d\nsmtputf8 %d\n",
			env->body_8bit ? 1 : 0, env->smtputf8 ? 1 : 0);
	}
	if (e == ERR_OK && env->dsn_notify != NULL) {
		e = put_field(out, "dsn-notify", env->dsn_notify);
	}
	if (e == ERR_OK && env->dsn_return != NULL) {
		e = put_field(out, "dsn-return", env->dsn_return);
	}
	if (e == ERR_OK && env->dsn_envid != NULL) {
		e = put_field(out, "dsn-envid", env->dsn_envid);
	}
	if (e == ERR_OK) {
		e = buf_printf(out, "size %" PRIu64 "\ncreated %" PRId64 "\n"
			"queued %" PRId64 "\nattempts %u\nnext-attempt %" PRId64
			"\nlast-code %d\n", q->size, q->created, q->queued,
			q->attempts, q->next_attempt, q->last_code);
	}
	if (e == ERR_OK && q->last_error != NULL) {
		e = put_field(out, "last-error", q->last_error);
	}
	if (e == ERR_OK) {
		e = buf_append_str(out, "end\n");
	}
	if (e != ERR_OK) {
		return errinfo_set(reterr, e == ERR_LIMIT ? ERR_DATA : e,
			"queue record too large");
	}
	return ERR_OK;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

/* Unescape p[0..n) into a new string; NULL on bad escapes or NUL. */
static char *
unescape(const char *p, size_t n, int *ret_nomem)
{
	char *s = malloc(n + 1);
	size_t i, o = 0;

	*ret_nomem = s == NULL;
	if (s == NULL) {
		return NULL;
	}
	for (i = 0; i < n; i++) {
		char c = p[i];

		if (c == '\\') {
			if (i + 1 >= n) {
				goto bad;
			}
			c = p[++i];
			if (c == 'n') {
				c = '\n';
			} else if (c == 'r') {
				c = '\r';
			} else if (c == 't') {
				c = '\t';
			} else if (c == 'x') {
				int hi, lo;

				if (i + 2 >= n) {
					goto bad;
				}
				hi = hexval(p[i + 1]);
				lo = hexval(p[i + 2]);
				if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
					goto bad;
				}
				c = (char)(hi * 16 + lo);
				i += 2;
			} else if (c != '\\') {
				goto bad;
			}
		} else if ((unsigned char)c < 0x20 || c == 0x7f) {
			goto bad;
		}
		s[o++] = c;
	}
	s[o] = '\0';
	return s;
bad:
	free(s);
	return NULL;
}

static int
parse_i64(const char *s, int64_t *ret)
{
	long v;

	if (util_parse_long(s, 0, LONG_MAX, &v) != 0) {
		return -1;
	}
	*ret = v;
	return 0;
}

/* Set a string field, refusing a repeat. */
static int
set_once(char **field, char *v)
{
	if (*field != NULL) {
		free(v);
		return -1;
	}
	*field = v;
	return 0;
}

static int
add_rcpt(struct envelope *env, char *v)
{
	char **n = realloc(env->rcpts, (env->n_rcpts + 2) * sizeof(char *));

	if (n == NULL) {
		free(v);
		return -1;
	}
	env->rcpts = n;
	env->rcpts[env->n_rcpts++] = v;
	env->rcpts[env->n_rcpts] = NULL;
	return 0;
}

/* Which of the scalar fields were seen (all are mandatory). */
enum {
	SEEN_8BIT = 1 << 0, SEEN_UTF8 = 1 << 1, SEEN_SIZE = 1 << 2,
	SEEN_CREATED = 1 << 3, SEEN_QUEUED = 1 << 4, SEEN_ATTEMPTS = 1 << 5,
	SEEN_NEXT = 1 << 6, SEEN_CODE = 1 << 7, SEEN_ALL = (1 << 8) - 1,
};

static int
parse_scalar(struct queue_entry *q, const char *key, const char *v,
	unsigned *seen)
{
	int64_t n;
	unsigned bit;

	if (parse_i64(v, &n) != 0) {
		return -1;
	}
	if (strcmp(key, "body-8bit") == 0 && n <= 1) {
		bit = SEEN_8BIT;
		q->env.body_8bit = (int)n;
	} else if (strcmp(key, "smtputf8") == 0 && n <= 1) {
		bit = SEEN_UTF8;
		q->env.smtputf8 = (int)n;
	} else if (strcmp(key, "size") == 0) {
		bit = SEEN_SIZE;
		q->size = (uint64_t)n;
	} else if (strcmp(key, "created") == 0) {
		bit = SEEN_CREATED;
		q->created = n;
	} else if (strcmp(key, "queued") == 0) {
		bit = SEEN_QUEUED;
		q->queued = n;
	} else if (strcmp(key, "attempts") == 0 && n <= 1000000) {
		bit = SEEN_ATTEMPTS;
		q->attempts = (unsigned)n;
	} else if (strcmp(key, "next-attempt") == 0) {
		bit = SEEN_NEXT;
		q->next_attempt = n;
	} else if (strcmp(key, "last-code") == 0 && n <= 999) {
		bit = SEEN_CODE;
		q->last_code = (int)n;
	} else {
		return -1;
	}
	if (*seen & bit) {
		return -1;
	}
	*seen |= bit;
	return 0;
}

enum err
queue_parse_record(const char *data, size_t len, struct queue_entry *ret_e,
	struct errinfo *reterr)
{
	struct queue_entry q;
	const char *p = data, *end = data + len;
	unsigned seen = 0;
	int line = 0, done = 0, nomem = 0;

	queue_entry_init(&q);
	while (p < end && !done) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *sp;
		char key[16];
		size_t klen;
		char *v;
		int bad = 0;

		if (nl == NULL) {
			goto bad;
		}
		line++;
		if (line == 1) {
			if ((size_t)(nl - p) != strlen(FORMAT_LINE) ||
			    memcmp(p, FORMAT_LINE, strlen(FORMAT_LINE)) != 0) {
				goto bad;
			}
			p = nl + 1;
			continue;
		}
		if (nl - p == 3 && memcmp(p, "end", 3) == 0) {
			done = 1;
			p = nl + 1;
			break;
		}
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (sp == NULL || (size_t)(sp - p) >= sizeof(key)) {
			goto bad;
		}
		klen = (size_t)(sp - p);
		memcpy(key, p, klen);
		key[klen] = '\0';
		v = unescape(sp + 1, (size_t)(nl - sp - 1), &nomem);
		if (v == NULL) {
			goto bad;
		}
		if (strcmp(key, "account") == 0) {
			bad = set_once(&q.account, v);
		} else if (strcmp(key, "config") == 0) {
			bad = set_once(&q.config, v);
		} else if (strcmp(key, "from") == 0) {
			bad = set_once(&q.env.from, v);
		} else if (strcmp(key, "rcpt") == 0) {
			bad = v[0] == '\0' ? (free(v), -1) : add_rcpt(&q.env, v);
		} else if (strcmp(key, "dsn-notify") == 0) {
			bad = set_once(&q.env.dsn_notify, v);
		} else if (strcmp(key, "dsn-return") == 0) {
			bad = set_once(&q.env.dsn_return, v);
		} else if (strcmp(key, "dsn-envid") == 0) {
			bad = set_once(&q.env.dsn_envid, v);
		} else if (strcmp(key, "last-error") == 0) {
			bad = set_once(&q.last_error, v);
		} else {
			bad = parse_scalar(&q, key, v, &seen);
			free(v);
		}
		if (bad) {
			goto bad;
		}
		p = nl + 1;
	}
	if (!done || p != end || seen != SEEN_ALL || q.account == NULL ||
	    q.config == NULL || q.env.from == NULL || q.env.n_rcpts == 0) {
		goto bad;
	}
	*ret_e = q;
	return ERR_OK;
bad:
	queue_entry_release(&q);
	if (nomem) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	return errinfo_set(reterr, ERR_DATA, "malformed queue record "
		"(line %d)", line);
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
	char name[64];
	struct buf data;
	char chunk[8192];
	enum err e = ERR_OK;
	int fd;

	name_of(name, sizeof(name), failed, id, "env");
	fd = openat(q->dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			return errinfo_set(reterr, ERR_USAGE, "no queue entry "
				"'%s'%s", id, failed ? " in failed/" : "");
		}
		return io_error(reterr, q, "open", name);
	}
	buf_init(&data, QUEUE_RECORD_MAX);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			e = io_error(reterr, q, "read", name);
			break;
		}
		if (n == 0) {
			break;
		}
		if (buf_append(&data, chunk, (size_t)n) != ERR_OK) {
			e = errinfo_set(reterr, ERR_DATA, "queue record '%s' "
				"is too large", name);
			break;
		}
	}
	close(fd);
	if (e == ERR_OK) {
		e = queue_parse_record(data.data, data.len, ret_e, reterr);
		if (e == ERR_DATA) {
			errinfo_prefix(reterr, "%s/%s: ", q->dir, name);
		}
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
	if (r != ERR_OK && r != ERR_DATA && r != ERR_USAGE) {
		errinfo_set(l->reterr, r, "%s", errinfo_msg(&scratch));
	}
	errinfo_release(&scratch);
	if (r == ERR_DATA || r == ERR_USAGE) {
		/* malformed, or removed by someone else meanwhile */
		l->bad += r == ERR_DATA;
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
