/*
 * test_record.c - the record codec (record.h: escape rule, strict reader,
 * writer), the private-file layer (fileio_read_private/_write_private),
 * and the files oasmtp 0.1.0 wrote (tests/fixtures/v0.1.0), read by
 * today's readers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "err.h"
#include "fileio.h"
#include "grant_state.h"
#include "maildrop.h"
#include "queue.h"
#include "record.h"
#include "tap.h"
#include "token_cache.h"
#include "util.h"

static struct errinfo ei;
static char root[] = "/tmp/oasmtp-test-record-XXXXXX";

static const struct record_key test_keys[] = {
	{ "a", RECORD_REQUIRED }, { "b", 0 }, { "many", RECORD_REPEAT },
	{ NULL, 0 },
};

static const struct record_spec test_spec = {
	.name = "oasmtp-test", .what = "test record",
	.min_version = 1, .max_version = 2, .trailer_since = 2,
	.keys = test_keys,
};

static void
path_in(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", root, name);
}

static enum err
parse(const char *text, struct record *ret)
{
	errinfo_init(&ei);
	return record_parse(&test_spec, text, strlen(text), ret, &ei);
}

/* Every byte value, alone and all together, survives the escape rule. */
static void
test_every_byte(void)
{
	char all[256];
	struct record r;
	struct buf b;
	int c, bad = 0;

	for (c = 0; c < 256; c++) {
		char v[3] = { 'x', (char)c, 'y' };

		all[c] = (char)c;
		buf_init(&b, 4096);
		if (record_begin(&b, "oasmtp-test", 2) != ERR_OK ||
		    record_put(&b, "a", v, 3) != ERR_OK ||
		    record_finish(&b) != ERR_OK ||
		    memchr(b.data + strlen("oasmtp-test 2\na "), '\n',
			b.len - strlen("oasmtp-test 2\na \nend\n")) != NULL ||
		    record_parse(&test_spec, b.data, b.len, &r, &ei) != ERR_OK) {
			bad++;
			diag("byte 0x%02x: %s", c, errinfo_msg(&ei));
		} else {
			bad += r.n != 1 || r.fields[0].len != 3 ||
				memcmp(r.fields[0].value, v, 3) != 0;
			record_release(&r);
		}
		buf_release(&b);
	}
	is_int(bad, 0, "each of the 256 byte values round-trips on one line");
	buf_init(&b, 4096);
	ok(record_begin(&b, "oasmtp-test", 2) == ERR_OK &&
		record_put(&b, "a", all, sizeof(all)) == ERR_OK &&
		record_put_str(&b, "b", NULL) == ERR_OK &&
		record_put_long(&b, "many", -9223372036854775807LL - 1) ==
		ERR_OK && record_put_long(&b, "many", 0) == ERR_OK &&
		record_finish(&b) == ERR_OK, "a record of all bytes is written");
	contains(b.data, "a \\x00\\x01", "NUL and 0x01 as \\xHH");
	contains(b.data, "\\t\\n\\x0b\\x0c\\r\\x0e", "TAB, LF, CR by name");
	contains(b.data, "[\\\\]", "backslash doubled");
	contains(b.data, "~\\x7f\x80", "0x7f escaped, 0x80 as itself");
	contains(b.data, "\nb \nmany -9223372036854775808\nmany 0\nend\n",
		"empty value, numbers, trailer");
	if (is_int(record_parse(&test_spec, b.data, b.len, &r, &ei), ERR_OK,
		"it parses (%s)", errinfo_msg(&ei)) == 1) {
		is_mem(r.fields[0].value, r.fields[0].len, all, sizeof(all),
			"all 256 bytes back in order");
		is_str(record_get(&r, "b"), "", "empty value");
		is_str(record_get(&r, "many"), "-9223372036854775808",
			"first of a repeated key");
		is_int((long long)r.length, (long long)b.len, "length = all");
		record_release(&r);
	}
	buf_release(&b);
	/* upper-case hex is read too */
	if (is_int(parse("oasmtp-test 2\na \\x7F\\xfF\nend\n", &r), ERR_OK,
		"upper-case \\xHH read")) {
		is_mem(r.fields[0].value, r.fields[0].len, "\x7f\xff", 2,
			"as the bytes");
		record_release(&r);
	}
}

/* Keys and names: only [a-z0-9-], 1 to 31 bytes, never "end". */
static void
test_keys_rule(void)
{
	struct buf b;
	char key[2] = { 0, 0 };
	int c, wrong = 0;

	buf_init(&b, 16 * 1024);
	for (c = 1; c < 256; c++) {
		int good = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			c == '-';

		key[0] = (char)c;
		wrong += (record_put_str(&b, key, "v") == ERR_OK) != good;
	}
	is_int(wrong, 0, "a key byte is written iff it is one of [a-z0-9-]");
	is_int(record_put_str(&b, "end", "x"), ERR_INTERNAL, "key 'end' refused");
	is_int(record_put_str(&b, "", "x"), ERR_INTERNAL, "empty key refused");
	is_int(record_put_str(&b, "abcdefghijklmnopqrstuvwxyz0123456", "x"),
		ERR_INTERNAL, "a 33-byte key refused");
	is_int(record_begin(&b, "Oasmtp", 1), ERR_INTERNAL,
		"an upper-case name refused");
	buf_release(&b);
}

/* The strict reader: each defect refused, with a precise message. */
static void
test_strict(void)
{
	static const struct {
		const char *text, *msg;
	} bad[] = {
		{ "", "test record: empty" },
		{ "oasmtp-other 1\na x\n", "line 1: not a 'oasmtp-test' record" },
		{ "oasmtp-test 3\na x\nend\n", "version '3' is not known" },
		{ "oasmtp-test 0\na x\nend\n", "version '0' is not known" },
		{ "oasmtp-test x\na x\nend\n", "line 1: a bad version number" },
		{ "oasmtp-test 2\na x\na y\nend\n", "line 3: key 'a' repeated" },
		{ "oasmtp-test 2\na x\nc y\nend\n", "line 3: unknown key 'c'" },
		{ "oasmtp-test 2\na x\nB y\nend\n", "line 3: not a 'key value'" },
		{ "oasmtp-test 2\na x\nb\nend\n", "line 3: not a 'key value'" },
		{ "oasmtp-test 2\nb y\nend\n", "key 'a' is missing" },
		{ "oasmtp-test 2\na x\n", "incomplete (no 'end' line" },
		{ "oasmtp-test 2\na x\nend", "line 3: incomplete (no line end)" },
		{ "oasmtp-test 2\na x\nend\nb y\n", "text after the 'end' line" },
		{ "oasmtp-test 2\na x\\q\nend\n", "line 2: a bad escape" },
		{ "oasmtp-test 2\na x\\\nend\n", "line 2: a bad escape" },
		{ "oasmtp-test 2\na \\x4\nend\n", "line 2: a bad escape" },
		{ "oasmtp-test 2\na \\xg0\nend\n", "line 2: a bad escape" },
		{ "oasmtp-test 2\na x\ty\nend\n", "a control character" },
		{ "oasmtp-test 2\na x\ry\nend\n", "a control character" },
		{ "oasmtp-test 2\r\na x\nend\n", "a bad version number" },
	};
	struct record r;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		is_int(parse(bad[i].text, &r), ERR_DATA, "refused: %s",
			bad[i].msg);
		contains(errinfo_msg(&ei), bad[i].msg, "message says so (%s)", errinfo_msg(&ei));
	}
	/* version 1 predates the trailer: complete lines are enough */
	if (is_int(parse("oasmtp-test 1\na x\nmany 1\nmany 2\n", &r), ERR_OK,
		"a version 1 record needs no trailer (%s)", errinfo_msg(&ei))) {
		is_int((long long)r.n, 3, "its three fields");
		record_release(&r);
	}
	is_int(parse("oasmtp-test 1\na x\nmany 1", &r), ERR_DATA,
		"version 1 still needs its last line end");
}

/* A file cut anywhere (a torn write) is never taken for a record. */
static void
test_torn(void)
{
	static const char good[] = "oasmtp-test 2\na one\nb two\nend\n";
	struct record r;
	size_t n, taken = 0;

	for (n = 0; n < strlen(good); n++) {
		if (record_parse(&test_spec, good, n, &r, NULL) == ERR_OK) {
			taken++;
			record_release(&r);
		}
	}
	is_int((long long)taken, 0, "no proper prefix of a record parses");
	is_int(record_parse(&test_spec, good, strlen(good), &r, NULL), ERR_OK,
		"the whole one does");
	record_release(&r);
}

/* A body after the trailer, where the format carries one. */
static void
test_body(void)
{
	static const struct record_spec with_body = {
		.name = "oasmtp-test", .what = "test record",
		.min_version = 2, .max_version = 2, .trailer_since = 2,
		.body_follows = 1, .keys = test_keys,
	};
	static const char text[] = "oasmtp-test 2\na end\nend\nbody\nend\n";
	struct record r;

	is_int((long long)record_trailer_end(text, strlen(text)), 24,
		"the trailer ends after the first 'end' line");
	is_int((long long)record_trailer_end(text, 20), 0,
		"no trailer read yet");
	is_int((long long)record_trailer_end("end\n", 4), 0,
		"a first line is never the trailer");
	if (is_int(record_parse(&with_body, text, strlen(text), &r, &ei),
		ERR_OK, "a record with a body parses (%s)", errinfo_msg(&ei))) {
		is_int((long long)r.length, 24, "length: where the body starts");
		is_str(record_get(&r, "a"), "end", "a value 'end' is a value");
		record_release(&r);
	}
}

static void
test_field_helpers(void)
{
	struct record r;
	const char *s = NULL;
	long n = 0;

	if (!is_int(parse("oasmtp-test 2\na 12\nb x\\x00y\nmany 7x\nend\n",
		&r), ERR_OK, "helper input parses")) {
		return;
	}
	is_int(record_field_long(&test_spec, &r.fields[0], 0, 99, &n, &ei),
		ERR_OK, "a number");
	is_int(n, 12, "its value");
	is_int(record_field_long(&test_spec, &r.fields[0], 0, 11, &n, &ei),
		ERR_DATA, "out of range refused");
	contains(errinfo_msg(&ei), "test record, line 2: 'a' is not a number from 0 "
		"to 11", "range message");
	is_int(record_field_long(&test_spec, &r.fields[2], 0, 99, &n, &ei),
		ERR_DATA, "junk number refused");
	is_int(record_field_str(&test_spec, &r.fields[1], &s, &ei), ERR_DATA,
		"a NUL where a C string is wanted is refused");
	contains(errinfo_msg(&ei), "line 3: 'b' holds a NUL byte", "NUL message");
	is_int(record_field_str(&test_spec, &r.fields[0], &s, &ei), ERR_OK,
		"a C string");
	is_str(s, "12", "its text");
	ok(record_get(&r, "nope") == NULL, "absent key: NULL");
	record_release(&r);
	record_release(NULL);
}

/* ---- the private-file layer ---- */

static int
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	size_t n = strlen(text);

	if (fd < 0 || write(fd, text, n) != (ssize_t)n) {
		return -1;
	}
	close(fd);
	return chmod(path, mode);
}

/* Files in root named "private.*" (fileio_write_private's temporaries). */
static int
temporaries(void)
{
	DIR *d = opendir(root);
	struct dirent *de;
	int n = 0;

	while (d != NULL && (de = readdir(d)) != NULL) {
		n += strncmp(de->d_name, "private.", 8) == 0;
	}
	if (d != NULL) {
		closedir(d);
	}
	return n;
}

static enum err
read_priv(const char *path, const struct fileio_private *p, struct buf *b,
	int *exists)
{
	buf_reset(b);
	errinfo_init(&ei);
	return fileio_read_private(AT_FDCWD, path, p, b, exists, &ei);
}

static void
test_private_files(void)
{
	struct fileio_private p = {
		.what = "test file", .owner = geteuid(), .forbidden = 077,
		.max = 64, .refused = ERR_CONFIG,
	};
	char file[PATH_MAX], link[PATH_MAX], fifo[PATH_MAX], big[PATH_MAX];
	char name[PATH_MAX];
	struct stat st;
	struct buf b;
	int exists = -1, dfd;

	buf_init_secret(&b, 1024);
	path_in(file, sizeof(file), "private");
	path_in(link, sizeof(link), "private-link");
	path_in(fifo, sizeof(fifo), "private-fifo");
	path_in(big, sizeof(big), "private-big");

	/* write: mode 0600, atomic, no temporary left, a link replaced */
	ok(symlink("/nonexistent-target", file) == 0, "a link where we write");
	is_int(fileio_write_private(file, "secret\n", 7, 1, &ei), ERR_OK,
		"write_private (%s)", errinfo_msg(&ei));
	ok(lstat(file, &st) == 0 && S_ISREG(st.st_mode) &&
		(st.st_mode & 0777) == 0600, "a regular file of mode 0600 "
		"replaced the link");
	is_int(temporaries(), 0, "no temporary file left");

	/* read: the good case, relative to a directory too */
	is_int(read_priv(file, &p, &b, &exists), ERR_OK, "read_private (%s)",
		errinfo_msg(&ei));
	is_int(exists, 1, "it exists");
	is_mem(b.data, b.len, "secret\n", 7, "its bytes");
	dfd = open(root, O_RDONLY | O_DIRECTORY);
	buf_reset(&b);
	is_int(fileio_read_private(dfd, "private", &p, &b, NULL, &ei), ERR_OK,
		"read_private relative to a directory");
	is_mem(b.data, b.len, "secret\n", 7, "same bytes");
	close(dfd);

	/* missing */
	path_in(name, sizeof(name), "absent");
	is_int(read_priv(name, &p, &b, &exists), ERR_OK, "missing is no error "
		"when asked");
	is_int(exists, 0, "and reported as missing");
	is_int(read_priv(name, &p, &b, NULL), ERR_IO, "else ERR_IO");
	contains(errinfo_msg(&ei), "cannot open test file", "names the file");

	/* a symbolic link is refused, unless the caller follows links */
	ok(symlink(file, link) == 0, "a link to it");
	is_int(read_priv(link, &p, &b, NULL), ERR_CONFIG, "symlink refused");
	contains(errinfo_msg(&ei), "is a symbolic link", "message says why (%s)", errinfo_msg(&ei));
	is_int((long long)b.len, 0, "nothing read");
	p.follow = 1;
	is_int(read_priv(link, &p, &b, NULL), ERR_OK, "followed when asked");
	p.follow = 0;

	/* wrong mode, wrong owner */
	chmod(file, 0640);
	is_int(read_priv(file, &p, &b, NULL), ERR_CONFIG, "mode 0640 refused");
	contains(errinfo_msg(&ei), "is accessible by others (mode 640): run `chmod 600",
		"with the fix (%s)", errinfo_msg(&ei));
	is_int((long long)b.len, 0, "nothing read");
	p.forbidden = 0;
	is_int(read_priv(file, &p, &b, NULL), ERR_OK, "mode free when allowed");
	chmod(file, 0600);
	p.owner = geteuid() + 1;
	is_int(read_priv(file, &p, &b, NULL), ERR_CONFIG, "wrong owner refused");
	contains(errinfo_msg(&ei), "is not owned by you", "with the fix (%s)", errinfo_msg(&ei));
	p.owner = FILEIO_ANY_OWNER;
	is_int(read_priv(file, &p, &b, NULL), ERR_OK, "any owner when allowed");
	p.owner = geteuid();

	/* oversize, and the caller's code for a refusal */
	ok(write_file(big, "0123456789012345678901234567890123456789"
		"0123456789012345678901234", 0600) == 0, "a 65-byte file");
	is_int(read_priv(big, &p, &b, NULL), ERR_CONFIG, "oversize refused");
	contains(errinfo_msg(&ei), "is larger than 64 bytes", "says so (%s)", errinfo_msg(&ei));
	is_int((long long)b.len, 0, "nothing read");
	p.refused = ERR_DATA;
	is_int(read_priv(big, &p, &b, NULL), ERR_DATA, "refusal code is the "
		"caller's");
	p.refused = ERR_CONFIG;

	/* a FIFO is refused at once, never waited on */
	ok(mkfifo(fifo, 0600) == 0, "a FIFO");
	is_int(read_priv(fifo, &p, &b, NULL), ERR_CONFIG, "FIFO refused");
	contains(errinfo_msg(&ei), "is not a regular file", "says so");
	buf_release(&b);
}

/* ---- files written by oasmtp 0.1.0 ---- */

/* Copy TEST_DATA/fixtures/v0.1.0/name to root/to with mode 0600. */
static int
fixture(const char *name, const char *to, char *ret_path, size_t size)
{
	const char *data = getenv("TEST_DATA");
	char from[PATH_MAX];
	char chunk[4096];
	size_t n;
	FILE *in, *out;

	snprintf(from, sizeof(from), "%s/fixtures/v0.1.0/%s",
		data != NULL ? data : "tests", name);
	path_in(ret_path, size, to);
	in = fopen(from, "rb");
	out = fopen(ret_path, "wb");
	if (in == NULL || out == NULL) {
		diag("cannot copy %s to %s", from, ret_path);
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0) {
		fwrite(chunk, 1, n, out);
	}
	fclose(in);
	fclose(out);
	return chmod(ret_path, 0600);
}

static void
test_v010_token_files(void)
{
	struct token_cached c;
	struct grant_state gs;
	struct account *acc = account_new();
	char path[PATH_MAX], grant[PATH_MAX], state[PATH_MAX];

	ok(fixture("token-cache", "v010.token", path, sizeof(path)) == 0 &&
		fixture("token-cache.grant", "v010.token.grant", grant,
		sizeof(grant)) == 0, "0.1.0 token cache and grant record");
	buf_init_secret(&c.token, TOKEN_CACHE_MAX);
	c.expires_at = 0;
	c.lifetime = 0;
	ok(token_cache_read(path, "0123456789abcdef0123456789abcdef", &c),
		"0.1.0 token cache read");
	is_str(buf_cstr(&c.token), "ya29.a0AfB_fixture-token_0.1.0", "token");
	is_int((long long)c.expires_at, 4102444800LL, "expiry");
	is_int(c.lifetime, 3599, "lifetime");
	ok(!token_cache_read(path, "ffffffffffffffffffffffffffffffff", &c),
		"another grant's key: a miss");
	/* what we write now reads back, and is version 2 with a trailer */
	c.expires_at = 4102444801LL;
	buf_reset(&c.token);
	setup(buf_append_str(&c.token, "ya29.rewritten"));
	is_int(token_cache_write(path, "0123456789abcdef0123456789abcdef", &c,
		&ei), ERR_OK, "token cache rewritten");
	ok(token_cache_read(path, "0123456789abcdef0123456789abcdef", &c) &&
		c.expires_at == 4102444801LL &&
		strcmp(buf_cstr(&c.token), "ya29.rewritten") == 0,
		"and read back");
	buf_release(&c.token);

	/* 0.1.0 kept the grant record beside an oauth2_token_cache PATH */
	path_in(state, sizeof(state), "state");
	setenv("XDG_STATE_HOME", state, 1);
	acc->name = strdup("fixture");
	acc->oauth2_token_cache = strdup(path);
	ok(grant_state_read(acc, &gs), "0.1.0 grant record read");
	is_int((long long)gs.authorized, 1700000200LL, "authorized");
	is_int((long long)gs.refreshed, 1700000300LL, "refreshed");
	is_str(gs.how, "loopback", "how");
	is_int(grant_state_note_refreshed(acc, 1700000400, &ei), ERR_OK,
		"grant record rewritten (%s)", errinfo_msg(&ei));
	ok(access(grant, F_OK) != 0, "the 0.1.0 record is migrated: gone");
	{
		struct buf b;

		buf_init(&b, PATH_MAX);
		ok(grant_state_path(acc, &b, &ei) == ERR_OK &&
			strncmp(buf_cstr(&b), state, strlen(state)) == 0 &&
			access(buf_cstr(&b), F_OK) == 0,
			"to the grant's record in the state directory");
		util_strlcpy(grant, buf_cstr(&b), sizeof(grant));
		buf_release(&b);
	}
	ok(grant_state_read(acc, &gs) && gs.refreshed == 1700000400 &&
		gs.authorized == 1700000200, "and read back");
	chmod(grant, 0644);
	ok(!grant_state_read(acc, &gs), "a grant record others can read is "
		"not used");
	account_free(acc);
}

static void
test_v010_maildrop(void)
{
	char path[PATH_MAX], data[4096];
	struct maildrop_entry e;
	struct buf b;
	FILE *f;
	size_t n;

	if (!ok(fixture("maildrop-entry", "v010.drop", path, sizeof(path)) ==
		0 && (f = fopen(path, "rb")) != NULL, "0.1.0 maildrop entry")) {
		return;
	}
	n = fread(data, 1, sizeof(data), f);
	fclose(f);
	buf_init(&b, sizeof(data));
	ok(buf_append(&b, data, n) == ERR_OK, "read");
	if (is_int(maildrop_parse_header(b.data, b.len, &e, &ei), ERR_OK,
		"0.1.0 maildrop entry read (%s)", errinfo_msg(&ei))) {
		is_int(e.uid, 1000, "uid");
		is_str(e.user, "alice", "user");
		is_int(e.time, 1700000100, "time");
		is_int(e.argc, 7, "sendmail + 6 arguments");
		is_str(e.argv[6], "odd\nline\\ and\ttab \x01",
			"an argument with LF, backslash, TAB, 0x01");
		is_str(b.data + e.body_offset, "Subject: dropped by 0.1.0\n\n"
			"body line\n", "the body starts after the record");
		maildrop_entry_release(&e);
	}
	buf_release(&b);
}

static void
test_v010_queue(void)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct queue *q = NULL;
	struct queue_entry *v = NULL;
	size_t n = 0, bad = 0;
	char body[256];
	ssize_t got;
	int fd = -1;

	path_in(dir, sizeof(dir), "v010-queue");
	mkdir(dir, 0700);
	ok(fixture("queue/6553f100e48abfaa.env", "v010-queue/6553f100e48abfaa"
		".env", path, sizeof(path)) == 0 && fixture(
		"queue/6553f100e48abfaa.msg", "v010-queue/6553f100e48abfaa.msg",
		path, sizeof(path)) == 0, "0.1.0 queue entry");
	is_int(queue_open(dir, 1, &q, &ei), ERR_OK, "queue opened");
	is_int(queue_list(q, 0, &v, &n, &bad, &ei), ERR_OK, "listed");
	is_int((long long)n, 1, "one entry");
	is_int((long long)bad, 0, "nothing malformed");
	if (n == 1) {
		is_str(v[0].id, "6553f100e48abfaa", "id");
		is_str(v[0].account, "fixture", "account");
		is_str(v[0].config, "", "config");
		is_str(v[0].env.from, "a@example.org", "from");
		is_int((long long)v[0].env.n_rcpts, 2, "two recipients");
		is_str(v[0].env.rcpts[1], "c\\d@example.org", "escaped rcpt");
		is_str(v[0].env.dsn_notify, "FAILURE,DELAY", "dsn-notify");
		is_str(v[0].env.dsn_envid, "env\\id+2B", "dsn-envid");
		is_int((long long)v[0].size, 100, "size");
		is_int(v[0].attempts, 2, "attempts");
		is_int(v[0].last_code, 451, "last code");
		is_str(v[0].last_error, "451 4.3.0 try later\n(second line)\t"
			"with a tab\r", "last error with LF, TAB and CR");
		is_int(queue_open_message(q, &v[0], &fd, &ei), ERR_OK,
			"message opened");
		got = fd >= 0 ? read(fd, body, sizeof(body) - 1) : -1;
		is_int(got, 100, "message bytes");
		if (fd >= 0) {
			close(fd);
		}
		/* an update writes the same format, readable by 0.1.0 */
		v[0].attempts = 3;
		is_int(queue_update(q, &v[0], &ei), ERR_OK, "entry updated");
	}
	queue_entries_free(v, n);
	queue_close(q);
}

static void
cleanup(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0) {
		diag("cannot remove %s", root);
	}
}

int
main(void)
{
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_every_byte();
	test_keys_rule();
	test_strict();
	test_torn();
	test_body();
	test_field_helpers();
	test_private_files();
	test_v010_token_files();
	test_v010_maildrop();
	test_v010_queue();
	cleanup();
	return tap_done();
}
