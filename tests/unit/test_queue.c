/*
 * test_queue.c - the queue module: record format (round trip, escaping,
 * malformed input), the back-off schedule, and the directory operations
 * (add, list, update, fail, retry, remove, lock, crash leftovers), and
 * dropping the recipients a partial delivery reached.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "envelope.h"
#include "err.h"
#include "queue.h"
#include "tap.h"

static struct errinfo ei;
static char root[256];

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL) {
		abort();
	}
	return d;
}

/* A filled entry with awkward values in every string. */
static void
sample(struct queue_entry *e)
{
	queue_entry_init(e);
	e->account = xstrdup("work \\ account");
	e->config = xstrdup("/home/u/.config/oasmtp/config");
	e->env.from = xstrdup("s\xc3\xa9nder@example.org");
	e->env.rcpts = calloc(4, sizeof(char *));
	e->env.rcpts[0] = xstrdup("a@example.net");
	e->env.rcpts[1] = xstrdup("\"odd\\\\name\"@example.net");
	e->env.rcpts[2] = xstrdup("c@example.net");
	e->env.n_rcpts = 3;
	e->env.body_8bit = 1;
	e->env.smtputf8 = 0;
	e->env.dsn_notify = xstrdup("SUCCESS,FAILURE");
	e->env.dsn_return = xstrdup("HDRS");
	e->size = 1234;
	e->created = 1700000000;
	e->queued = 1700000100;
	e->attempts = 3;
	e->next_attempt = 1700000500;
	e->last_error = xstrdup("451 4.3.0 line one\r\n451 4.3.0 line\ttwo "
		"\x01 end\\");
	e->last_code = 451;
}

static void
test_record_round_trip(void)
{
	struct queue_entry a, b;
	struct buf rec;
	enum err e;

	sample(&a);
	buf_init(&rec, QUEUE_RECORD_MAX);
	e = queue_format_record(&a, &rec, &ei);
	is_int(e, ERR_OK, "format a record");
	ok(strchr(rec.data, '\r') == NULL, "no CR in the record");
	contains(rec.data, "last-error 451 4.3.0 line one\\r\\n451 4.3.0 "
		"line\\ttwo \\x01 end\\\\\n", "error escaped on one line");
	contains(rec.data, "account work \\\\ account\n", "backslash doubled");
	ok(strncmp(rec.data, "oasmtp-queue 1\n", 15) == 0, "format line first");
	ok(rec.len > 4 && strcmp(rec.data + rec.len - 4, "end\n") == 0,
		"end line last");
	e = queue_parse_record(rec.data, rec.len, &b, &ei);
	is_int(e, ERR_OK, "parse it back: %s", errinfo_msg(&ei));
	if (e == ERR_OK) {
		is_str(b.account, a.account, "account");
		is_str(b.config, a.config, "config");
		is_str(b.env.from, a.env.from, "8-bit sender kept");
		is_int((long long)b.env.n_rcpts, 3, "three recipients");
		is_str(b.env.rcpts[1], a.env.rcpts[1], "quoted recipient");
		ok(b.env.rcpts[3] == NULL, "recipient array NULL-terminated");
		is_int(b.env.body_8bit, 1, "8bit flag");
		is_str(b.env.dsn_notify, "SUCCESS,FAILURE", "dsn notify");
		is_str(b.env.dsn_return, "HDRS", "dsn return");
		ok(b.env.dsn_envid == NULL, "absent envid stays NULL");
		is_int((long long)b.size, 1234, "size");
		is_int(b.created, 1700000000, "created");
		is_int(b.queued, 1700000100, "queued");
		is_int(b.attempts, 3, "attempts");
		is_int(b.next_attempt, 1700000500, "next attempt");
		is_str(b.last_error, a.last_error, "multi-line error restored");
		is_int(b.last_code, 451, "last code");
	}
	queue_entry_release(&b);
	/* null sender and no error */
	free(a.env.from);
	a.env.from = xstrdup("");
	free(a.last_error);
	a.last_error = NULL;
	buf_reset(&rec);
	setup(queue_format_record(&a, &rec, &ei));
	e = queue_parse_record(rec.data, rec.len, &b, &ei);
	is_int(e, ERR_OK, "null sender record parses");
	if (e == ERR_OK) {
		is_str(b.env.from, "", "null sender kept as empty");
		ok(b.last_error == NULL, "no last error");
	}
	queue_entry_release(&b);
	queue_entry_release(&a);
	buf_release(&rec);
}

static void
test_record_malformed(void)
{
	static const char good[] =
		"oasmtp-queue 1\naccount a\nconfig \nfrom x@y\nrcpt r@s\n"
		"body-8bit 0\nsmtputf8 0\nsize 5\ncreated 1\nqueued 1\n"
		"attempts 0\nnext-attempt 1\nlast-code 0\nend\n";
	static const struct {
		const char *what, *from, *to;
	} edits[] = {
		{ "no end line", "end\n", "" },
		{ "truncated mid-line", "end\n", "en" },
		{ "wrong version", "oasmtp-queue 1", "oasmtp-queue 2" },
		{ "unknown key", "size 5", "colour 5" },
		{ "bad escape", "account a", "account a\\q" },
		{ "escaped NUL", "account a", "account a\\x00" },
		{ "duplicate account", "config \n", "config \naccount b\n" },
		{ "no recipient", "rcpt r@s\n", "" },
		{ "empty recipient", "rcpt r@s", "rcpt " },
		{ "missing size", "size 5\n", "" },
		{ "negative attempts", "attempts 0", "attempts -1" },
		{ "junk number", "created 1", "created 1x" },
		{ "data after end", "end\n", "end\nrcpt z@z\n" },
		{ "raw control byte", "account a", "account a\x01" },
	};
	struct queue_entry q;
	char buf[1024];
	size_t i;

	is_int(queue_parse_record(good, strlen(good), &q, &ei), ERR_OK,
		"the base record parses");
	queue_entry_release(&q);
	for (i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		const char *at = strstr(good, edits[i].from);
		size_t pre = (size_t)(at - good);

		snprintf(buf, sizeof(buf), "%.*s%s%s", (int)pre, good,
			edits[i].to, at + strlen(edits[i].from));
		is_int(queue_parse_record(buf, strlen(buf), &q, &ei), ERR_DATA,
			"rejected: %s", edits[i].what);
	}
}

static void
test_backoff(void)
{
	int64_t prev = 0;
	unsigned n;

	is_int(queue_backoff(0, 12345), 0, "no attempt: due now");
	is_int(queue_backoff(1, 0), 60 - 7, "first retry: 1 minute - 1/8");
	is_int(queue_backoff(1, 15), 60 - 7 + 15, "first retry: + 1/8");
	is_int(queue_backoff(1, 16), 60 - 7, "jitter wraps");
	is_int(queue_backoff(2, 0), 120 - 15, "second: 2 minutes");
	is_int(queue_backoff(3, 0), 240 - 30, "third: 4 minutes");
	is_int(queue_backoff(6, 0), 1920 - 240, "sixth: 32 minutes");
	is_int(queue_backoff(7, 0), 3600 - 450, "seventh: capped at 1 hour");
	is_int(queue_backoff(7, 900), 3600 + 450, "cap + 1/8 jitter");
	is_int(queue_backoff(1000, 0), 3600 - 450, "still 1 hour later");
	is_int(queue_backoff(4000000000u, 0), 3600 - 450, "huge count");
	for (n = 1; n < 20; n++) {
		int64_t mid = queue_backoff(n, 0) + queue_backoff(n, 0xffffffffu);

		ok(mid >= prev, "attempt %u: not shorter than attempt %u", n,
			n - 1);
		prev = mid;
	}
}

/* queue_entry_clock(): stored times against a clock that jumped. */
static void
test_clock(void)
{
	static const struct {
		const char *what;
		int64_t queued, next, now;
		int64_t want_queued, want_next;
		int changed;
	} cases[] = {
		{ "on time", 1000000, 1000060, 1000100, 1000000, 1000060, 0 },
		{ "not due yet", 1000000, 1003600, 1000100, 1000000, 1003600,
			0 },
		{ "the longest back-off ahead", 1000000, 1000000 + 4050,
			1000000, 1000000, 1000000 + 4050, 0 },
		{ "queued while the clock ran 30 days ahead", 1000000 + 2592000,
			1000000 + 2592000, 1000000, 1000000, 1000000, 1 },
		{ "next attempt 10 days ahead", 1000000, 1000000 + 864000,
			1000100, 1000000, 1000100, 1 },
		{ "late by less than a day", 1000000, 1000060,
			1000060 + 86000, 1000000, 1000060, 0 },
		{ "clock 10 days ahead: only a day counts", 1000000, 1000060,
			1000060 + 864000, 1000000 + 864000 - 86400,
			1000060 + 864000 - 86400, 1 },
		{ "due at 0 (edited): counts from now", 1000000, 0, 2000000,
			2000000, 2000000 - 86400, 1 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct queue_entry e;
		int changed;

		queue_entry_init(&e);
		e.queued = cases[i].queued;
		e.next_attempt = cases[i].next;
		changed = queue_entry_clock(&e, cases[i].now);
		is_int(changed, cases[i].changed, "%s: changed", cases[i].what);
		ok(e.queued == cases[i].want_queued, "%s: queued %lld",
			cases[i].what, (long long)e.queued);
		ok(e.next_attempt == cases[i].want_next, "%s: next %lld",
			cases[i].what, (long long)e.next_attempt);
		ok(queue_entry_clock(&e, cases[i].now) == 0,
			"%s: a second pass changes nothing", cases[i].what);
	}
}

static enum err
write_text(void *ctx, int fd, struct errinfo *reterr)
{
	const char *s = ctx;

	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s)) {
		return errinfo_set(reterr, ERR_IO, "write failed");
	}
	return ERR_OK;
}

static enum err
write_fails(void *ctx, int fd, struct errinfo *reterr)
{
	(void)ctx;
	(void)write(fd, "partial", 7);
	return errinfo_set(reterr, ERR_IO, "disk full (simulated)");
}

static int
count_lines(const char *text, const char *prefix)
{
	const char *p = text;
	int n = 0;

	while (p != NULL && *p != '\0') {
		n += strncmp(p, prefix, strlen(prefix)) == 0;
		p = strchr(p, '\n');
		p = p != NULL ? p + 1 : NULL;
	}
	return n;
}

static int
count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL) {
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' && de->d_type != DT_DIR) {
			n++;
		}
	}
	closedir(d);
	return n;
}

static int
mode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static void
make_old(const char *path)
{
	struct timespec ts[2];

	ts[0].tv_sec = time(NULL) - 2 * QUEUE_LEFTOVER_AGE;
	ts[0].tv_nsec = 0;
	ts[1] = ts[0];
	utimensat(AT_FDCWD, path, ts, 0);
}

static void
test_directory(void)
{
	static const char body[] = "Subject: hi\r\n\r\nbody\r\n";
	char dir[300], path[400], id[QUEUE_ID_LEN + 1], got[64];
	struct queue *q = NULL, *q2 = NULL;
	struct queue_entry e, *v = NULL;
	size_t n = 0, bad = 0, removed = 0;
	int fd, busy = 0;
	ssize_t r;
	time_t now = time(NULL);

	snprintf(dir, sizeof(dir), "%s/data/oasmtp/queue", root);
	is_int(queue_open(dir, 0, &q, &ei), ERR_OK, "missing dir opens");
	ok(q == NULL, "... as an empty queue");
	is_int(queue_list(NULL, 0, &v, &n, NULL, &ei), ERR_OK, "list nothing");
	is_int((long long)n, 0, "no entries");
	is_int(queue_open(dir, 1, &q, &ei), ERR_OK, "create the queue: %s",
		errinfo_msg(&ei));
	is_int(mode_of(dir), 0700, "queue dir 0700");
	snprintf(path, sizeof(path), "%s/tmp", dir);
	is_int(mode_of(path), 0700, "tmp/ 0700");
	snprintf(path, sizeof(path), "%s/failed", dir);
	is_int(mode_of(path), 0700, "failed/ 0700");

	sample(&e);
	e.created = e.queued = now;
	is_int(queue_add(q, &e, write_text, (void *)body, &ei), ERR_OK,
		"add an entry: %s", errinfo_msg(&ei));
	ok(queue_id_valid(e.id), "it got an id '%s'", e.id);
	is_int((long long)e.size, (long long)strlen(body), "size set");
	memcpy(id, e.id, sizeof(id));
	snprintf(path, sizeof(path), "%s/%s.msg", dir, id);
	is_int(mode_of(path), 0600, "message file 0600");
	snprintf(path, sizeof(path), "%s/%s.env", dir, id);
	is_int(mode_of(path), 0600, "envelope file 0600");
	snprintf(path, sizeof(path), "%s/tmp", dir);
	is_int(count_files(path), 0, "tmp/ empty after the add");
	queue_entry_release(&e);

	/* a failing body writer leaves nothing behind */
	sample(&e);
	e.created = e.queued = now;
	is_int(queue_add(q, &e, write_fails, NULL, &ei), ERR_IO,
		"a failed write is reported");
	queue_entry_release(&e);
	is_int(count_files(dir), 2, "... and leaves nothing (2 files)");
	is_int(count_files(path), 0, "... not even in tmp/");

	/* crash leftovers: a tmp file and an orphan message */
	snprintf(path, sizeof(path), "%s/tmp/0123456789abcdef.msg", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	close(fd);
	snprintf(path, sizeof(path), "%s/0123456789abcdef.msg", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	(void)write(fd, "half", 4);
	close(fd);
	is_int(queue_list(q, 0, &v, &n, &bad, &ei), ERR_OK, "list");
	is_int((long long)n, 1, "only the complete entry is listed");
	is_int((long long)bad, 0, "nothing malformed");
	if (n == 1) {
		is_str(v[0].id, id, "its id");
		is_str(v[0].env.rcpts[2], "c@example.net", "its recipients");
	}
	queue_entries_free(v, n);
	is_int(queue_cleanup(q, (int64_t)now, &removed, &ei), ERR_OK,
		"cleanup");
	is_int((long long)removed, 0, "fresh leftovers are kept (a writer "
		"may still be busy)");
	make_old(path);
	snprintf(path, sizeof(path), "%s/tmp/0123456789abcdef.msg", dir);
	make_old(path);
	is_int(queue_cleanup(q, (int64_t)now, &removed, &ei), ERR_OK,
		"cleanup again");
	is_int((long long)removed, 2, "old leftovers removed");
	is_int(count_files(dir), 2, "the entry itself is untouched");

	/* a malformed record is skipped and counted */
	snprintf(path, sizeof(path), "%s/fedcba9876543210.env", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	(void)write(fd, "oasmtp-queue 1\naccount x\n", 25);
	close(fd);
	is_int(queue_list(q, 0, &v, &n, &bad, &ei), ERR_OK, "list");
	is_int((long long)n, 1, "the broken record is not listed");
	is_int((long long)bad, 1, "... but counted");
	queue_entries_free(v, n);
	unlink(path);

	/* body bytes and update */
	is_int(queue_get(q, id, 0, &e, &ei), ERR_OK, "get by id");
	is_int(queue_open_message(q, &e, &fd, &ei), ERR_OK, "open message");
	r = read(fd, got, sizeof(got));
	close(fd);
	is_mem(got, r > 0 ? (size_t)r : 0, body, strlen(body),
		"message bytes exactly as written");
	e.attempts = 7;
	free(e.last_error);
	e.last_error = xstrdup("new error");
	is_int(queue_update(q, &e, &ei), ERR_OK, "update");
	queue_entry_release(&e);
	setup(queue_get(q, id, 0, &e, &ei));
	is_int(e.attempts, 7, "attempts updated");
	is_str(e.last_error, "new error", "error updated");

	/* the lock excludes a second flusher */
	is_int(queue_lock(q, 0, &busy, &ei), ERR_OK, "lock");
	is_int(busy, 0, "got it");
	setup(queue_open(dir, 0, &q2, &ei));
	is_int(queue_lock(q2, 0, &busy, &ei), ERR_OK, "second lock attempt");
	is_int(busy, 1, "... finds it busy");
	queue_close(q2);

	/* failed/ and back */
	is_int(queue_fail(q, &e, &ei), ERR_OK, "move to failed/");
	ok(e.failed, "marked failed");
	setup(queue_list(q, 0, &v, &n, NULL, &ei));
	is_int((long long)n, 0, "active queue empty");
	queue_entries_free(v, n);
	setup(queue_list(q, 1, &v, &n, NULL, &ei));
	is_int((long long)n, 1, "one failed entry");
	if (n == 1) {
		ok(v[0].failed, "listed as failed");
		is_str(v[0].last_error, "new error", "with its error");
	}
	queue_entries_free(v, n);
	is_int(queue_retry(q, &e, 1800000000, &ei), ERR_OK, "retry");
	queue_entry_release(&e);
	is_int(queue_get(q, id, 0, &e, &ei), ERR_OK, "active again");
	is_int(e.attempts, 0, "attempts reset");
	is_int(e.next_attempt, 1800000000, "due now");
	is_int(e.queued, 1800000000, "queued time reset (max age)");
	queue_entry_release(&e);
	is_int(queue_get(q, id, 1, &e, &ei), ERR_USAGE, "gone from failed/");

	/* an interrupted move to failed/: present in both places */
	is_int(queue_get(q, id, 0, &e, &ei), ERR_OK, "reload");
	snprintf(path, sizeof(path), "%s/%s.msg", dir, id);
	snprintf(got, sizeof(got), "%s", "");
	{
		char to[400];

		snprintf(to, sizeof(to), "%s/failed/%s.msg", dir, id);
		ok(link(path, to) == 0, "simulate: message linked to failed/");
		e.failed = 1;
		setup(queue_update(q, &e, &ei));	/* failed/ID.env written */
		e.failed = 0;
	}
	setup(queue_list(q, 0, &v, &n, NULL, &ei));
	is_int((long long)n, 1, "before cleanup: still active");
	queue_entries_free(v, n);
	setup(queue_cleanup(q, (int64_t)now, &removed, &ei));
	setup(queue_list(q, 0, &v, &n, NULL, &ei));
	is_int((long long)n, 0, "cleanup finished the move");
	queue_entries_free(v, n);
	setup(queue_list(q, 1, &v, &n, NULL, &ei));
	is_int((long long)n, 1, "entry is in failed/");
	queue_entries_free(v, n);

	/* remove */
	e.failed = 1;
	is_int(queue_remove(q, &e, &ei), ERR_OK, "remove");
	queue_entry_release(&e);
	snprintf(path, sizeof(path), "%s/failed", dir);
	is_int(count_files(path), 0, "failed/ empty");
	is_int(count_files(dir), 0, "queue empty");
	is_int(queue_get(q, "xyz", 0, &e, &ei), ERR_USAGE, "bad id refused");
	queue_close(q);
}

static void
test_default_dir(void)
{
	struct buf b;

	buf_init(&b, 4096);
	setenv("XDG_DATA_HOME", "/x/data", 1);
	setup(queue_default_dir(&b, &ei));
	is_str(buf_cstr(&b), "/x/data/oasmtp/queue", "XDG_DATA_HOME used");
	buf_reset(&b);
	setenv("XDG_DATA_HOME", "relative", 1);
	setenv("HOME", "/home/u", 1);
	setup(queue_default_dir(&b, &ei));
	is_str(buf_cstr(&b), "/home/u/.local/share/oasmtp/queue",
		"relative XDG_DATA_HOME ignored, HOME used");
	buf_reset(&b);
	unsetenv("XDG_DATA_HOME");
	unsetenv("HOME");
	is_int(queue_default_dir(&b, &ei), ERR_CONFIG, "neither: config "
		"error");
	buf_release(&b);
}

/*
 * After a 452 split delivered part of an entry, the delivered recipients
 * leave it for good: in memory, then durably through queue_update() and
 * queue_fail().
 */
static void
test_drop_rcpts(void)
{
	static const unsigned char gone_02[3] = { 1, 0, 1 };
	static const unsigned char gone_1[1] = { 1 };
	char dir[300], path[400];
	struct queue *q = NULL;
	struct queue_entry e, got;
	struct buf rec;

	sample(&e);
	is_int(queue_entry_drop_rcpts(&e, gone_02, &ei), ERR_OK,
		"drop the first and the last recipient");
	is_int((long long)e.env.n_rcpts, 1, "one left");
	is_str(e.env.rcpts[0], "\"odd\\\\name\"@example.net", "the middle one");
	ok(e.env.rcpts[1] == NULL, "the list stays NULL-terminated");
	is_int(queue_entry_drop_rcpts(&e, gone_1, &ei), ERR_DATA,
		"dropping the last one is refused");
	contains(errinfo_msg(&ei), "no recipient would be left", "  saying why");
	is_int((long long)e.env.n_rcpts, 1, "  and changes nothing");
	buf_init(&rec, QUEUE_RECORD_MAX);
	setup(queue_format_record(&e, &rec, &ei));
	is_int(count_lines(rec.data, "rcpt "), 1, "the record has one rcpt "
		"line");
	buf_release(&rec);
	queue_entry_release(&e);

	snprintf(dir, sizeof(dir), "%s/drop/queue", root);
	is_int(queue_open(dir, 1, &q, &ei), ERR_OK, "a queue for the drop "
		"test: %s", errinfo_msg(&ei));
	sample(&e);
	e.created = e.queued = time(NULL);
	is_int(queue_add(q, &e, write_text, (void *)"x\r\n", &ei), ERR_OK,
		"add a three-recipient entry");
	setup(queue_entry_drop_rcpts(&e, gone_02, &ei));
	is_int(queue_update(q, &e, &ei), ERR_OK, "rewrite its record");
	is_int(queue_get(q, e.id, 0, &got, &ei), ERR_OK, "read it back");
	is_int((long long)got.env.n_rcpts, 1, "  one recipient on disk");
	is_str(got.env.rcpts[0], "\"odd\\\\name\"@example.net",
		"  the one not delivered");
	queue_entry_release(&got);
	is_int(queue_fail(q, &e, &ei), ERR_OK, "move it to failed/");
	is_int(queue_get(q, e.id, 1, &got, &ei), ERR_OK, "read it there");
	is_int((long long)got.env.n_rcpts, 1, "  still one recipient");
	queue_entry_release(&got);
	is_int(queue_remove(q, &e, &ei), ERR_OK, "remove it");
	queue_entry_release(&e);
	queue_close(q);
	snprintf(path, sizeof(path), "%s/tmp", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/failed", dir);
	rmdir(path);
	rmdir(dir);
	snprintf(path, sizeof(path), "%s/drop", root);
	ok(rmdir(path) == 0, "nothing left behind");
}

int
main(void)
{
	char cmd[300];

	snprintf(root, sizeof(root), "/tmp/test_queue.XXXXXX");
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_record_round_trip();
	test_record_malformed();
	test_backoff();
	test_clock();
	test_directory();
	test_drop_rcpts();
	test_default_dir();
	snprintf(cmd, sizeof(cmd), "%s/data", root);
	/* best-effort removal of the (now empty) tree */
	{
		char p[400];

		snprintf(p, sizeof(p), "%s/oasmtp/queue/tmp", cmd);
		rmdir(p);
		snprintf(p, sizeof(p), "%s/oasmtp/queue/failed", cmd);
		rmdir(p);
		snprintf(p, sizeof(p), "%s/oasmtp/queue/.lock", cmd);
		unlink(p);
		snprintf(p, sizeof(p), "%s/oasmtp/queue", cmd);
		rmdir(p);
		snprintf(p, sizeof(p), "%s/oasmtp", cmd);
		rmdir(p);
		rmdir(cmd);
		rmdir(root);
	}
	return tap_done();
}
