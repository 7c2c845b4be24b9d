/*
 * test_message.c - reading, header parsing, envelope and header rewriting,
 * wire output, and flat memory use for a large message.
 */
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "addr.h"
#include "aliases.h"
#include "buf.h"
#include "envelope.h"
#include "message.h"
#include "tap.h"
#include "util.h"

#define NOW ((time_t)1700000000)	/* Tue, 14 Nov 2023 22:13:20 UTC */

static char tmpl_dir[] = "/tmp/test_message_XXXXXX";

/* ---- helpers ---- */

/* Read text through message_read() on a file, or push it in chunks of
 * chunk bytes when chunk > 0. */
static struct message *
load_ex(const char *text, size_t len, int ignore_dots, size_t chunk,
	enum err *ret_rc, struct errinfo *ei)
{
	struct message *m = NULL;

	errinfo_init(ei);
	if (chunk == 0) {
		char path[256];
		int fd;

		snprintf(path, sizeof(path), "%s/in", tmpl_dir);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, text, len) != (ssize_t)len ||
		    lseek(fd, 0, SEEK_SET) != 0) {
			diag("cannot write the input file");
		}
		*ret_rc = message_read(fd, ignore_dots, &m, ei);
		close(fd);
		unlink(path);
	} else {
		struct message_reader *r;
		size_t off;

		*ret_rc = message_reader_new(ignore_dots, &r, ei);
		for (off = 0; *ret_rc == ERR_OK && off < len; off += chunk) {
			size_t n = len - off < chunk ? len - off : chunk;

			*ret_rc = message_reader_push(r, text + off, n, NULL, ei);
		}
		if (*ret_rc == ERR_OK) {
			*ret_rc = message_reader_finish(r, &m, ei);
		} else {
			message_reader_free(r);
		}
	}
	if (*ret_rc != ERR_OK) {
		diag("load: %s", errinfo_msg(ei));
	}
	return m;
}

static struct message *
load(const char *text, int ignore_dots)
{
	struct errinfo ei = ERRINFO_INIT;
	struct message *m;
	enum err rc;
	char name[24];
	size_t i;

	/* the first bytes of the input, printable, to name the check */
	for (i = 0; i + 1 < sizeof(name) && text[i] != '\0'; i++) {
		name[i] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '.';
	}
	name[i] = '\0';
	m = load_ex(text, strlen(text), ignore_dots, 0, &rc, &ei);
	is_int(rc, ERR_OK, "read '%s': status", name);
	return m;
}

/* The wire bytes, read back in small pieces to cross the header/body seam. */
static void
wire(struct message *m, struct buf *out)
{
	char piece[7];
	uint64_t off = 0;
	size_t n;
	struct errinfo ei = ERRINFO_INIT;

	buf_reset(out);
	for (;;) {
		if (message_read_wire(m, off, piece, sizeof(piece), &n, &ei) !=
		    ERR_OK || n == 0) {
			break;
		}
		setup(buf_append(out, piece, n));
		off += n;
	}
}

/* Compare the wire form with want and the announced size with both. */
static void
check_wire(struct message *m, const char *want, const char *what)
{
	struct buf b;

	buf_init(&b, 1 << 24);
	if (m == NULL) {
		ok(0, "%s: no message", what);
		return;
	}
	wire(m, &b);
	is_mem(b.data, b.len, want, strlen(want), "%s: wire bytes", what);
	is_int((long long)message_wire_size(m), (long long)b.len,
		"%s: wire size equals the bytes produced", what);
	buf_release(&b);
}

static void
acc_init(struct account *a)
{
	memset(a, 0, sizeof(*a));
	a->name = (char *)"test";
	a->from = (char *)"me@example.com";
	a->allow_from_override = 1;
	a->domain = (char *)"mail.example.com";
	a->set_from_header = HDR_OFF;
	a->set_date_header = HDR_OFF;
	a->set_msgid_header = HDR_OFF;
	a->set_to_header = HDR_OFF;
	a->remove_bcc_headers = 1;
}

static void
opts_init(struct message_opts *o, const struct account *a)
{
	memset(o, 0, sizeof(*o));
	o->acc = a;
	o->now = NOW;
	o->hostname = "host.example";
}

static char *
write_tmp(const char *name, const char *text)
{
	char *path = malloc(512);
	FILE *f;

	snprintf(path, 512, "%s/%s", tmpl_dir, name);
	f = fopen(path, "w");
	if (f == NULL) {
		diag("cannot write %s", path);
		return path;
	}
	fputs(text, f);
	fclose(f);
	return path;
}

/* Recipients joined with spaces. */
static void
rcpts_str(const struct envelope *env, struct buf *b)
{
	size_t i;

	buf_reset(b);
	for (i = 0; i < env->n_rcpts; i++) {
		setup(buf_printf(b, "%s%s", i > 0 ? " " : "", env->rcpts[i]));
	}
}

/* ---- reading ---- */

/*
 * Input read through message_read() (with -i or not): the wire form, the
 * number of header fields (-1: not checked) and the 8-bit flag (-1: not
 * checked).
 */
static const struct read_case {
	const char *what;
	const char *in;
	int ignore_dots;
	const char *wire;
	int n_fields;
	int is_8bit;
} read_cases[] = {
#define WANT "Subject: hi\r\nTo: a@b\r\n\r\nline 1\r\nline 2\r\n"
	{ "LF input", "Subject: hi\nTo: a@b\n\nline 1\nline 2\n", 1, WANT,
		2, 0 },
	{ "CRLF input", "Subject: hi\r\nTo: a@b\r\n\r\nline 1\r\n"
		"line 2\r\n", 1, WANT, 2, 0 },
	{ "mixed input", "Subject: hi\r\nTo: a@b\n\r\nline 1\nline 2\r\n",
		1, WANT, 2, 0 },
	{ "no final newline", "Subject: hi\nTo: a@b\n\nline 1\nline 2", 1,
		WANT, 2, 0 },
	{ "mbox From line stripped", "From someone@example.com Tue Nov 14 "
		"22:13:20 2023\nSubject: hi\nTo: a@b\n\nline 1\nline 2\n",
		1, WANT, 2, 0 },
#undef WANT
	{ "From in the body kept", "Subject: hi\nTo: a@b\n\nFrom here\n"
		"line 2\n", 1, "Subject: hi\r\nTo: a@b\r\n\r\nFrom here\r\n"
		"line 2\r\n", 2, 0 },
	{ "obsolete 'From :' field is a field, not mbox", "From : x@y\n\nb\n",
		1, "From : x@y\r\n\r\nb\r\n", 1, 0 },
	{ "folding kept on the wire", "Subject: a\n  folded\n\tagain\n"
		"To: x@y\n\nb\n", 1, "Subject: a\r\n  folded\r\n\tagain\r\n"
		"To: x@y\r\n\r\nb\r\n", 2, 0 },
	{ "empty input", "", 1, "\r\n", 0, 0 },
	{ "no headers: all body", "hello world\nsecond\n", 1,
		"\r\nhello world\r\nsecond\r\n", 0, 0 },
	{ "a non-header line starts the body", "Subject: x\nnot a header "
		"line\nTo: y\n", 1, "Subject: x\r\n\r\nnot a header line\r\n"
		"To: y\r\n", 1, 0 },
	{ "headers only, no newline", "Subject: x", 1, "Subject: x\r\n\r\n",
		1, 0 },
	{ "lone CR becomes CRLF", "Subject: x\n\na\rb\r\rc\r", 1,
		"Subject: x\r\n\r\na\r\nb\r\n\r\nc\r\n", 1, 0 },
	{ "8-bit header detected", "Subject: \xc3\xa9\n\nb\n", 1,
		"Subject: \xc3\xa9\r\n\r\nb\r\n", 1, 1 },
	{ "8-bit body detected", "Subject: x\n\n\xff\n", 1,
		"Subject: x\r\n\r\n\xff\r\n", 1, 1 },
	/* without -i a lone dot ends the input */
	{ "lone dot ends input", "Subject: x\n\na\n.\nb\n", 0,
		"Subject: x\r\n\r\na\r\n", 1, 0 },
	{ "with -i a lone dot is content", "Subject: x\n\na\n.\nb\n", 1,
		"Subject: x\r\n\r\na\r\n.\r\nb\r\n", 1, 0 },
	{ "lone dot with CRLF", "Subject: x\n\na\r\n.\r\nb\r\n", 0,
		"Subject: x\r\n\r\na\r\n", 1, 0 },
	{ "other dot lines are content, not unstuffed", "Subject: x\n\n..\n"
		".a\n a\n", 0, "Subject: x\r\n\r\n..\r\n.a\r\n a\r\n", 1,
		0 },
	{ "lone dot in the header block", "Subject: x\n.\nTo: y\n", 0,
		"Subject: x\r\n\r\n", 1, 0 },
	{ "lone dot at EOF", "Subject: x\n\na\n.", 0,
		"Subject: x\r\n\r\na\r\n", 1, 0 },
	{ "lone dot first", ".\n", 0, "\r\n", 0, 0 },
};

static void
test_read_table(void)
{
	size_t i;

	for (i = 0; i < sizeof(read_cases) / sizeof(read_cases[0]); i++) {
		const struct read_case *c = &read_cases[i];
		struct message *m = load(c->in, c->ignore_dots);

		check_wire(m, c->wire, c->what);
		if (m == NULL) {
			continue;
		}
		if (c->n_fields >= 0) {
			is_int((long long)message_header_count(m), c->n_fields,
				"%s: header fields", c->what);
		}
		if (c->is_8bit >= 0) {
			is_int(message_is_8bit(m), c->is_8bit, "%s: 8-bit",
				c->what);
		}
		message_free(m);
	}
}

/* What the table does not say: field names, values, unfolding. */
static void
test_read_fields(void)
{
	struct message *m;
	struct buf v;

	buf_init(&v, 1 << 20);
	m = load("Subject: hi\nTo: a@b\n\nline 1\nline 2\n", 1);
	is_str(message_header_name(m, 0), "Subject", "first field name");
	is_int(message_header_value(m, 1, &v, NULL), ERR_OK, "value read");
	is_str(v.data, "a@b", "second field value");
	message_free(m);

	m = load("From : x@y\n\nb\n", 1);
	is_str(message_header_from(m), "x@y", "obsolete From : is parsed");
	message_free(m);

	m = load("Subject: a\n  folded\n\tagain\nTo: x@y\n\nb\n", 1);
	buf_reset(&v);
	is_int(message_header_value(m, 0, &v, NULL), ERR_OK, "value read");
	is_str(v.data, "a  folded\tagain", "unfolded value");
	message_free(m);
	buf_release(&v);
}

static void
test_read_chunks(void)
{
	static const char in[] = "From x\r\nSubject: a\r\n b\r\n\r\nl1\r\r\n"
	    ".x\r\n..\r\nz\r";
	static const char want[] = "Subject: a\r\n b\r\n\r\nl1\r\n\r\n.x\r\n"
	    "..\r\nz\r\n";
	static const size_t sizes[] = { 1, 2, 3, 5, 64 };
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct errinfo ei = ERRINFO_INIT;
		enum err rc;
		struct message *m;
		char what[64];

		m = load_ex(in, sizeof(in) - 1, 0, sizes[i], &rc, &ei);
		snprintf(what, sizeof(what), "pushed in %zu-byte pieces",
			sizes[i]);
		check_wire(m, want, what);
		message_free(m);
	}
}

/* A fixed pseudo-random sequence (64-bit LCG), so failures repeat. */
static uint64_t model_state = 20240101;

static unsigned
model_rand(unsigned n)
{
	model_state = model_state * UINT64_C(6364136223846793005) +
	    UINT64_C(1442695040888963407);
	return (unsigned)(model_state >> 33) % n;
}

/*
 * The wire form of "S: x\n\n" + body by the rules of message.h, written
 * as plainly as possible: lines end at LF, CRLF or a lone CR and all get
 * CRLF; without ignore_dots a "." line ends the input.  Returns the 8-bit
 * flag for the bytes read.
 */
static int
model_wire(const char *s, size_t n, int ignore_dots, struct buf *out)
{
	size_t pos = 0, e, i;
	int high = 0;

	buf_reset(out);
	setup(buf_append(out, "S: x\r\n\r\n", 8));
	while (pos < n) {
		for (e = pos; e < n && s[e] != '\r' && s[e] != '\n'; e++) {
			;
		}
		if (!ignore_dots && e - pos == 1 && s[pos] == '.') {
			break;
		}
		for (i = pos; i < e; i++) {
			high |= (unsigned char)s[i] >= 0x80;
		}
		setup(buf_append(out, s + pos, e - pos));
		setup(buf_append(out, "\r\n", 2));
		pos = e == n ? n : e + (s[e] == '\r' && e + 1 < n &&
		    s[e + 1] == '\n' ? 2 : 1);
	}
	return high;
}

/*
 * The reader against the model on random bodies (every kind of line end,
 * dots, 8-bit and NUL bytes, a run longer than the spool buffer), pushed
 * in pieces of several sizes and read from a file: the whole-run copying
 * must agree with the byte-at-a-time rules wherever the pieces split.
 */
static void
test_read_model(void)
{
	static const char alphabet[] = "abcdefghij....\n\n\n\r\r \xc3\xff";
	static const size_t pieces[] = { 0, 1, 2, 3, 7, 61, 4096 };
	const size_t cases = 300;
	char *text = malloc(80000);
	struct buf want, got;
	size_t p, c;

	buf_init(&want, 1 << 20);
	buf_init(&got, 1 << 20);
	for (p = 0; text != NULL && p < sizeof(pieces) / sizeof(pieces[0]);
	    p++) {
		size_t fails = 0;

		model_state = 20240101;
		for (c = 0; c < cases; c++) {
			int dots = (int)(c % 2);
			size_t n = 6, i, len = model_rand(300);
			struct message *m;
			struct errinfo ei = ERRINFO_INIT;
			enum err rc;
			int high;

			memcpy(text, "S: x\n\n", 6);
			if (c == 7) {
				len = 70000;	/* one run past IO_CHUNK */
			}
			for (i = 0; i < len; i++) {
				text[n++] = c == 7 && i < len - 1 ? 'q' :
				    model_rand(40) == 0 ? '\0' :
				    alphabet[model_rand(sizeof(alphabet) - 1)];
			}
			high = model_wire(text + 6, n - 6, dots, &want);
			m = load_ex(text, n, dots, pieces[p], &rc, &ei);
			if (m != NULL) {
				wire(m, &got);
			}
			if (m == NULL || got.len != want.len ||
			    memcmp(got.data, want.data, want.len) != 0 ||
			    message_is_8bit(m) != high) {
				if (fails++ == 0) {
					diag("case %zu (%zu bytes, -i %d) "
					    "differs", c, n, dots);
				}
			}
			message_free(m);
		}
		if (pieces[p] == 0) {
			ok(fails == 0, "model: %zu random bodies read from a "
			    "file agree", cases);
		} else {
			ok(fails == 0, "model: %zu random bodies pushed in "
			    "%zu-byte pieces agree", cases, pieces[p]);
		}
	}
	free(text);
	buf_release(&want);
	buf_release(&got);
}

static void
test_read_dots(void)
{
	struct message *m;
	struct message_reader *r;
	struct errinfo ei = ERRINFO_INIT;
	int done = 0;

	/* the reader reports the end and ignores what follows */
	is_int(message_reader_new(0, &r, &ei), ERR_OK, "reader: new");
	is_int(message_reader_push(r, "a: b\n\nx\n.\n", 10, &done, &ei),
		ERR_OK, "reader: push up to the dot");
	ok(done, "reader reports done after the dot line");
	is_int(message_reader_push(r, "more\n", 5, &done, &ei), ERR_OK,
		"reader: bytes after the dot accepted");
	is_int(message_reader_finish(r, &m, &ei), ERR_OK, "reader: finish");
	check_wire(m, "a: b\r\n\r\nx\r\n", "bytes after the dot ignored");
	message_free(m);
}

static void
test_read_limits(void)
{
	struct buf in;
	struct errinfo ei = ERRINFO_INIT;
	enum err rc;
	struct message *m;
	size_t i;

	buf_init(&in, 8 << 20);

	/* one header line of 64 KiB + 1 */
	setup(buf_append_str(&in, "Subject: "));
	for (i = in.len; i < MESSAGE_LINE_MAX + 1; i++) {
		setup(buf_putc(&in, 'x'));
	}
	setup(buf_append_str(&in, "\n\nbody\n"));
	m = load_ex(in.data, in.len, 1, 0, &rc, &ei);
	is_int(rc, ERR_DATA, "header line over 64 KiB: ERR_DATA");
	contains(errinfo_msg(&ei), "longer than 65536", "line limit message");
	ok(m == NULL, "no message on error");

	/* exactly 64 KiB is fine */
	buf_truncate(&in, MESSAGE_LINE_MAX);
	setup(buf_append_str(&in, "\n\nbody\n"));
	m = load_ex(in.data, in.len, 1, 0, &rc, &ei);
	is_int(rc, ERR_OK, "header line of exactly 64 KiB is accepted");
	message_free(m);

	/* a folded field: long continuation lines are limited too */
	buf_reset(&in);
	setup(buf_append_str(&in, "Subject: a\n "));
	for (i = 0; i < MESSAGE_LINE_MAX + 10; i++) {
		setup(buf_putc(&in, 'y'));
	}
	m = load_ex(in.data, in.len, 1, 0, &rc, &ei);
	is_int(rc, ERR_DATA, "continuation line over 64 KiB: ERR_DATA");

	/* a header block over 1 MiB made of acceptable lines */
	buf_reset(&in);
	for (i = 0; in.len <= MESSAGE_HEADER_MAX; i++) {
		setup(buf_printf(&in, "X-Filler-%zu: %01000d\n", i, 0));
	}
	setup(buf_append_str(&in, "\nbody\n"));
	m = load_ex(in.data, in.len, 1, 0, &rc, &ei);
	is_int(rc, ERR_DATA, "header block over 1 MiB: ERR_DATA");
	contains(errinfo_msg(&ei), "header block larger than 1048576", "block message");

	/* a body line longer than 64 KiB is fine, even with no headers */
	buf_reset(&in);
	for (i = 0; i < 3 * MESSAGE_LINE_MAX; i++) {
		setup(buf_putc(&in, 'z'));
	}
	m = load_ex(in.data, in.len, 0, 0, &rc, &ei);
	is_int(rc, ERR_OK, "long line without headers is body");
	if (m != NULL) {
		is_int((long long)message_wire_size(m),
			(long long)(2 + 3 * MESSAGE_LINE_MAX + 2),
			"long body line size");
	}
	message_free(m);

	/* a long mbox From line is dropped whole */
	buf_reset(&in);
	setup(buf_append_str(&in, "From "));
	for (i = 0; i < 2 * MESSAGE_LINE_MAX; i++) {
		setup(buf_putc(&in, 'f'));
	}
	setup(buf_append_str(&in, "\nSubject: s\n\nb\n"));
	m = load_ex(in.data, in.len, 0, 0, &rc, &ei);
	check_wire(m, "Subject: s\r\n\r\nb\r\n", "long mbox From line dropped");
	message_free(m);

	m = load_ex("Subject: a\0b\n\nc\n", 15, 1, 0, &rc, &ei);
	is_int(rc, ERR_DATA, "NUL in a header: ERR_DATA");
	contains(errinfo_msg(&ei), "NUL", "NUL message");
	buf_release(&in);
}

static void
test_header_from(void)
{
	struct message *m;

	m = load("To: x@y\nFrom: \"Doe, J\" <j@example.com>\n\nb\n", 1);
	is_str(message_header_from(m), "j@example.com", "From address");
	message_free(m);

	m = load("Resent-From: r@example.com\nResent-To: n@x\n"
	    "From: o@example.com\n\nb\n", 1);
	is_str(message_header_from(m), "r@example.com",
		"Resent-From for a resent message");
	message_free(m);

	m = load("To: x@y\n\nb\n", 1);
	ok(message_header_from(m) == NULL, "no From: NULL");
	message_free(m);

	m = load("From: \"broken\n\nb\n", 1);
	ok(message_header_from(m) == NULL, "unparsable From: NULL");
	message_free(m);
}

/* ---- message_prepare: the callers of oasmtp(1), EXAMPLES ---- */

static void
test_git_send_email(void)
{
	struct account a;
	struct message_opts o;
	struct envelope env;
	struct errinfo ei = ERRINFO_INIT;
	struct message *m;
	struct buf b;
	char *args[] = { "list@example.org", "cc@example.org",
	    "dev@example.com", "bcc@example.org" };
	static const char in[] = "From: Dev <dev@example.com>\n"
	    "To: list@example.org\nCc: cc@example.org\nSubject: [PATCH] x\n"
	    "Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
	    "Message-ID: <1@example.com>\n\ndiff\n";

	buf_init(&b, 1 << 20);
	acc_init(&a);
	a.set_from_header = HDR_AUTO;
	a.set_date_header = HDR_AUTO;
	a.set_msgid_header = HDR_AUTO;
	opts_init(&o, &a);
	o.envelope_from = "dev@example.com";
	o.rcpt_args = args;
	o.n_rcpt_args = 4;
	m = load(in, 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK, "git: prepare");
	is_str(env.from, "dev@example.com", "git: -f is the sender");
	rcpts_str(&env, &b);
	is_str(b.data, "list@example.org cc@example.org dev@example.com "
	    "bcc@example.org", "git: recipients in order");
	check_wire(m, "From: Dev <dev@example.com>\r\n"
	    "To: list@example.org\r\nCc: cc@example.org\r\n"
	    "Subject: [PATCH] x\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	    "Message-ID: <1@example.com>\r\n\r\ndiff\r\n",
	    "git: headers untouched when present");
	ok(!env.body_8bit && !env.smtputf8, "git: 7-bit");
	ok(env.dsn_notify == NULL && env.dsn_return == NULL &&
	    env.dsn_envid == NULL, "git: no DSN");
	envelope_release(&env);
	message_free(m);
	buf_release(&b);
}

static void
test_cron(void)
{
	struct account a;
	struct message_opts o;
	struct envelope env;
	struct errinfo ei = ERRINFO_INIT;
	struct message *m;
	struct buf b;
	char *args[] = { "root" };
	char *aliases = write_tmp("aliases", "root: admin@example.com\n");

	buf_init(&b, 1 << 20);
	acc_init(&a);
	a.from = (char *)"cron@%H";
	a.aliases = aliases;
	a.set_date_header = HDR_AUTO;
	a.set_from_header = HDR_AUTO;
	opts_init(&o, &a);
	o.full_name = "CronDaemon";
	o.rcpt_args = args;
	o.n_rcpt_args = 1;
	m = load("From: root (Cron Daemon)\nTo: root\n"
	    "Subject: Cron <root@host> ls\n\nout\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK, "cron: prepare");
	is_str(env.from, "cron@host.example", "cron: %%H expanded");
	rcpts_str(&env, &b);
	is_str(b.data, "admin@example.com", "cron: root via aliases");
	check_wire(m, "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	    "From: root (Cron Daemon)\r\nTo: root\r\n"
	    "Subject: Cron <root@host> ls\r\n\r\nout\r\n",
	    "cron: Date added, From kept, headers not aliased");
	envelope_release(&env);
	message_free(m);

	/* without aliases the local name goes out as it is */
	a.aliases = NULL;
	m = load("Subject: x\n\nout\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK,
		"cron without aliases: prepare");
	rcpts_str(&env, &b);
	is_str(b.data, "root", "cron without aliases: root kept");
	check_wire(m, "From: CronDaemon <cron@host.example>\r\n"
	    "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nSubject: x\r\n\r\n"
	    "out\r\n", "cron: From added with -F name");
	envelope_release(&env);
	message_free(m);

	/* fan-out at every level is bounded, not explored to the end */
	{
		struct buf t;
		struct aliases *al = NULL;
		struct addr_list out;
		char *path;
		int lv;

		buf_init(&t, 1 << 16);
		for (lv = 0; lv < 15; lv++) {
			setup(buf_printf(&t, "l%d: l%d, l%d, l%d, l%d, l%d, l%d, l%d, "
				"l%d\n", lv, lv + 1, lv + 1, lv + 1, lv + 1,
				lv + 1, lv + 1, lv + 1, lv + 1));
		}
		setup(buf_append_str(&t, "l15: x@example.com\n"));
		path = write_tmp("fanout", buf_cstr(&t));
		addr_list_init(&out);
		errinfo_init(&ei);
		ok(aliases_load(path, &al, &ei) == ERR_OK, "fan-out file loads");
		is_int(aliases_expand(al, "l0", &out, &ei), ERR_CONFIG,
			"8^15 expansion refused");
		contains(errinfo_msg(&ei), "more than 10000 addresses",
			"fan-out message names the bound");
		ok(out.n <= ALIASES_EXPAND_MAX, "bound held (%zu)", out.n);
		addr_list_release(&out);
		aliases_free(al);
		unlink(path);
		free(path);
		buf_release(&t);
	}

	/* a broken aliases file is a config error */
	a.aliases = write_tmp("badaliases", "root admin\n");
	m = load("Subject: x\n\nout\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_CONFIG,
		"bad aliases file: ERR_CONFIG");
	contains(errinfo_msg(&ei), "badaliases:1:", "bad aliases file: file:line");
	message_free(m);
	unlink(a.aliases);
	unlink(aliases);
	free(a.aliases);
	free(aliases);
	buf_release(&b);
}

static void
test_cronie(void)
{
	struct account a;
	struct message_opts o;
	struct envelope env;
	struct errinfo ei = ERRINFO_INIT;
	struct message *m;
	struct buf b;
	static const char in[] = "From: root (Cron Daemon)\nTo: user\n"
	    "Subject: Cron <user@host> job\nAuto-Submitted: auto-generated\n"
	    "\nout\n";

	buf_init(&b, 1 << 20);
	acc_init(&a);
	opts_init(&o, &a);
	o.read_recipients = 1;
	o.envelope_from = "user";

	/* allow_from_override on: -f wins, even a bare local name */
	m = load(in, 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK, "cronie: prepare");
	is_str(env.from, "user", "cronie: -f used when overriding is on");
	rcpts_str(&env, &b);
	is_str(b.data, "user", "cronie: -t recipient");
	envelope_release(&env);
	message_free(m);

	/* allow_from_override off: the account's from wins */
	a.allow_from_override = 0;
	m = load(in, 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK,
		"cronie, no override: prepare");
	is_str(env.from, "me@example.com", "cronie: account from wins");
	envelope_release(&env);
	message_free(m);

	/* from_rewrite: the local-looking From: gets the account address */
	a.from_rewrite = 1;
	a.set_from_header = HDR_AUTO;
	m = load(in, 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK,
		"from_rewrite: prepare");
	check_wire(m, "From: me@example.com\r\n"
	    "X-Original-From: root (Cron Daemon)\r\nTo: user\r\n"
	    "Subject: Cron <user@host> job\r\n"
	    "Auto-Submitted: auto-generated\r\n\r\nout\r\n",
	    "from_rewrite: local From replaced (comments are not names)");
	envelope_release(&env);
	message_free(m);
	m = load("From: Cron Daemon <root@host.example>\nTo: u\n\nb\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK,
		"from_rewrite @hostname: prepare");
	check_wire(m, "From: Cron Daemon <me@example.com>\r\n"
	    "X-Original-From: Cron Daemon <root@host.example>\r\nTo: u\r\n"
	    "\r\nb\r\n", "from_rewrite keeps the display name");
	envelope_release(&env);
	message_free(m);

	/* from_rewrite_header sender / off */
	a.from_rewrite_header = FROM_ORIG_SENDER;
	m = load("From: Cron Daemon <root>\nTo: u\n\nb\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK,
		"from_rewrite_header sender: prepare");
	check_wire(m, "From: Cron Daemon <me@example.com>\r\n"
	    "Sender: Cron Daemon <root>\r\nTo: u\r\n\r\nb\r\n",
	    "from_rewrite_header sender: original as Sender:");
	envelope_release(&env);
	message_free(m);
	a.from_rewrite_header = FROM_ORIG_OFF;
	m = load("From: Cron Daemon <root>\nTo: u\n\nb\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK,
		"from_rewrite_header off: prepare");
	check_wire(m, "From: Cron Daemon <me@example.com>\r\nTo: u\r\n"
	    "\r\nb\r\n", "from_rewrite_header off: original dropped");
	envelope_release(&env);
	message_free(m);
	a.from_rewrite_header = FROM_ORIG_X_ORIGINAL_FROM;

	/* from_rewrite also replaces a local -f, even with overriding on */
	a.allow_from_override = 1;
	m = load(in, 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK,
		"from_rewrite local -f: prepare");
	is_str(env.from, "me@example.com",
		"from_rewrite: a local -f becomes the account's address");
	envelope_release(&env);
	message_free(m);
	a.allow_from_override = 0;
	m = load("From: Real <real@example.org>\nTo: u\n\nb\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK,
		"from_rewrite real address: prepare");
	check_wire(m, "From: Real <real@example.org>\r\nTo: u\r\n"
	    "\r\nb\r\n", "from_rewrite leaves a real address alone");
	envelope_release(&env);
	message_free(m);
	buf_release(&b);
}

static void
test_mailx_bcc(void)
{
	struct account a;
	struct message_opts o;
	struct envelope env;
	struct errinfo ei = ERRINFO_INIT;
	struct message *m;
	struct buf b;
	static const char in[] = "To: a@x.org\nCc: \"B, b\" <b@x.org>\n"
	    "Bcc: c@x.org,\n d@x.org\nSubject: s\n\nbody\n";

	buf_init(&b, 1 << 20);
	acc_init(&a);
	opts_init(&o, &a);
	o.read_recipients = 1;
	m = load(in, 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK, "mailx: prepare");
	rcpts_str(&env, &b);
	is_str(b.data, "a@x.org b@x.org c@x.org d@x.org",
		"mailx: Bcc recipients in the envelope");
	check_wire(m, "To: a@x.org\r\nCc: \"B, b\" <b@x.org>\r\nSubject: s\r\n"
	    "\r\nbody\r\n", "mailx: folded Bcc gone from the wire");
	envelope_release(&env);
	message_free(m);

	a.remove_bcc_headers = 0;
	m = load(in, 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK,
		"keep Bcc: prepare");
	check_wire(m, "To: a@x.org\r\nCc: \"B, b\" <b@x.org>\r\n"
	    "Bcc: c@x.org,\r\n d@x.org\r\nSubject: s\r\n\r\nbody\r\n",
	    "remove_bcc_headers off keeps Bcc");
	envelope_release(&env);
	message_free(m);
	buf_release(&b);
}

static void
test_php_crlf(void)
{
	struct account a;
	struct message_opts o;
	struct envelope env;
	struct errinfo ei = ERRINFO_INIT;
	struct message *m;
	struct buf b;

	buf_init(&b, 1 << 20);
	acc_init(&a);
	a.set_msgid_header = HDR_AUTO;
	opts_init(&o, &a);
	o.read_recipients = 1;
	m = load("To: user@example.net\r\nSubject: Order\r\n"
	    "From: shop@example.com\r\nMIME-Version: 1.0\r\n\r\n"
	    "Thanks\r\n\r\n-- \r\nShop\r\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK, "php: prepare");
	rcpts_str(&env, &b);
	is_str(b.data, "user@example.net", "php: recipient");
	wire(m, &b);
	ok(strncmp(b.data, "Message-ID: <20231114221320.", 28) == 0,
		"php: Message-ID added first");
	contains(b.data, "@mail.example.com>\r\nTo: user@example.net\r\n"
	    "Subject: Order\r\nFrom: shop@example.com\r\n"
	    "MIME-Version: 1.0\r\n\r\nThanks\r\n\r\n-- \r\nShop\r\n",
	    "php: rest unchanged, domain from the account");
	ok(strstr(b.data, "\n\n") == NULL && strstr(b.data, "\r\r") == NULL,
		"php: no bare line ends");
	is_int((long long)message_wire_size(m), (long long)b.len,
		"php: size");
	envelope_release(&env);
	message_free(m);
	buf_release(&b);
}

static void
test_mdadm_no_dash_i(void)
{
	struct account a;
	struct message_opts o;
	struct envelope env;
	struct errinfo ei = ERRINFO_INIT;
	struct message *m;

	acc_init(&a);
	opts_init(&o, &a);
	o.read_recipients = 1;
	m = load("From: mdadm monitoring <root>\nTo: root\n"
	    "Subject: Fail event\n\nA Fail event\n.\ntrailing junk\n", 0);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK, "mdadm: prepare");
	check_wire(m, "From: mdadm monitoring <root>\r\nTo: root\r\n"
	    "Subject: Fail event\r\n\r\nA Fail event\r\n",
	    "mdadm: dot ends the message");
	envelope_release(&env);
	message_free(m);
}

/* ---- message_prepare: rules ---- */

static void
test_dedup_and_resent(void)
{
	struct account a;
	struct message_opts o;
	struct envelope env;
	struct errinfo ei = ERRINFO_INIT;
	struct message *m;
	struct buf b;
	char *args[] = { "a@X.org, \"A\" <a@x.ORG>", "B@y.org", "b@y.org" };

	buf_init(&b, 1 << 20);
	acc_init(&a);
	opts_init(&o, &a);
	o.read_recipients = 1;
	o.rcpt_args = args;
	o.n_rcpt_args = 3;
	m = load("To: a@x.org, c@z.org\nCc: B@Y.ORG\n\nb\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK, "dedup: prepare");
	rcpts_str(&env, &b);
	is_str(b.data, "a@X.org B@y.org b@y.org c@z.org",
		"dedup: domain case ignored, local part case kept, order kept");
	envelope_release(&env);
	message_free(m);

	o.rcpt_args = NULL;
	o.n_rcpt_args = 0;
	m = load("Resent-From: r@x.org\nResent-To: new1@x.org\n"
	    "Resent-Cc: new2@x.org\nResent-Bcc: hidden@x.org\n"
	    "Resent-Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
	    "Resent-To: older@x.org\nFrom: o@x.org\nTo: orig@x.org\n"
	    "Bcc: origbcc@x.org\n\nb\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK, "resent: prepare");
	rcpts_str(&env, &b);
	is_str(b.data, "new1@x.org new2@x.org hidden@x.org older@x.org",
		"resent: the first Resent- block only");
	wire(m, &b);
	ok(strstr(b.data, "Resent-Bcc") == NULL, "resent: Resent-Bcc removed");
	ok(strstr(b.data, "\r\nBcc") == NULL, "resent: Bcc removed");
	envelope_release(&env);
	message_free(m);

	m = load("Resent-To: new@x.org\nX-Other: 1\nResent-To: old@x.org\n"
	    "To: orig@x.org\n\nb\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK,
		"resent blocks: prepare");
	rcpts_str(&env, &b);
	is_str(b.data, "new@x.org", "resent: a later block is ignored");
	envelope_release(&env);
	message_free(m);
	buf_release(&b);
}

static const char *
prepare_wire(struct account *a, struct message_opts *o, const char *in,
	struct buf *b, enum err *ret_rc, struct errinfo *ei)
{
	struct envelope env;
	struct message *m = load(in, 1);

	buf_reset(b);
	errinfo_init(ei);
	*ret_rc = message_prepare(m, o, &env, ei);
	if (*ret_rc == ERR_OK) {
		wire(m, b);
		envelope_release(&env);
	}
	message_free(m);
	return b->data;
}

static void
test_header_rules(void)
{
	struct account a;
	struct message_opts o;
	struct errinfo ei = ERRINFO_INIT;
	struct buf b;
	enum err rc;
	char *args[] = { "r@x.org", "s@y.org" };
	static const char with[] = "From: old@x.org\nDate: D\n"
	    "Message-ID: <m@x>\nTo: t@x.org\nCc: c@x.org\nBcc: h@x.org\n\nb\n";
	static const char bare[] = "Subject: s\n\nb\n";

	buf_init(&b, 1 << 20);
	acc_init(&a);
	opts_init(&o, &a);
	o.rcpt_args = args;
	o.n_rcpt_args = 2;

	/* everything off */
	is_str(prepare_wire(&a, &o, with, &b, &rc, &ei),
		"From: old@x.org\r\nDate: D\r\nMessage-ID: <m@x>\r\n"
		"To: t@x.org\r\nCc: c@x.org\r\n\r\nb\r\n",
		"off: nothing added, only Bcc removed");
	is_str(prepare_wire(&a, &o, bare, &b, &rc, &ei), "Subject: s\r\n\r\nb\r\n",
		"off on a bare message: nothing added");

	/* auto */
	a.set_from_header = HDR_AUTO;
	a.set_date_header = HDR_AUTO;
	is_str(prepare_wire(&a, &o, with, &b, &rc, &ei),
		"From: old@x.org\r\nDate: D\r\nMessage-ID: <m@x>\r\n"
		"To: t@x.org\r\nCc: c@x.org\r\n\r\nb\r\n",
		"auto: present fields kept");
	is_str(prepare_wire(&a, &o, bare, &b, &rc, &ei),
		"From: me@example.com\r\n"
		"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
		"Subject: s\r\n\r\nb\r\n", "auto: missing fields added");

	/* on */
	a.set_from_header = HDR_ON;
	a.set_date_header = HDR_ON;
	a.from_full_name = (char *)"Account Name";
	is_str(prepare_wire(&a, &o, with, &b, &rc, &ei),
		"From: Account Name <me@example.com>\r\n"
		"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
		"Message-ID: <m@x>\r\nTo: t@x.org\r\nCc: c@x.org\r\n\r\nb\r\n",
		"on: From and Date replaced, from_full_name used");

	/* -F overrides from_full_name; names needing quotes or encoding */
	o.full_name = "Doe, John \"JD\"";
	is_str(prepare_wire(&a, &o, bare, &b, &rc, &ei),
		"From: \"Doe, John \\\"JD\\\"\" <me@example.com>\r\n"
		"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
		"Subject: s\r\n\r\nb\r\n", "-F name quoted");
	o.full_name = "J\xc3\xb6rg";
	is_str(prepare_wire(&a, &o, bare, &b, &rc, &ei),
		"From: =?UTF-8?B?SsO2cmc=?= <me@example.com>\r\n"
		"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
		"Subject: s\r\n\r\nb\r\n", "-F UTF-8 name encoded");
	o.full_name = "bad\nname";
	prepare_wire(&a, &o, bare, &b, &rc, &ei);
	is_int(rc, ERR_USAGE, "-F with a newline is refused");
	o.full_name = NULL;
	a.from_full_name = NULL;

	/* Date in another zone */
	setenv("TZ", "EST5", 1);
	tzset();
	contains(prepare_wire(&a, &o, bare, &b, &rc, &ei),
		"Date: Tue, 14 Nov 2023 17:13:20 -0500\r\n", "Date west of UTC");
	setenv("TZ", "<+0530>-5:30", 1);
	tzset();
	contains(prepare_wire(&a, &o, bare, &b, &rc, &ei),
		"Date: Wed, 15 Nov 2023 03:43:20 +0530\r\n", "Date east of UTC");
	setenv("TZ", "UTC0", 1);
	tzset();

	/* Message-ID */
	a.set_from_header = HDR_OFF;
	a.set_date_header = HDR_OFF;
	a.set_msgid_header = HDR_AUTO;
	is_str(prepare_wire(&a, &o, with, &b, &rc, &ei),
		"From: old@x.org\r\nDate: D\r\nMessage-ID: <m@x>\r\n"
		"To: t@x.org\r\nCc: c@x.org\r\n\r\nb\r\n",
		"msgid auto: present one kept");
	prepare_wire(&a, &o, bare, &b, &rc, &ei);
	ok(strncmp(b.data, "Message-ID: <20231114221320.", 28) == 0 &&
	    strstr(b.data, "@mail.example.com>\r\nSubject: s\r\n") != NULL &&
	    strlen(b.data) == strlen("Message-ID: <20231114221320."
	    "0123456789abcdef@mail.example.com>\r\nSubject: s\r\n\r\nb\r\n"),
	    "msgid auto: added, time.16hex@domain");
	{
		char first[128];

		util_strlcpy(first, b.data, sizeof(first));
		prepare_wire(&a, &o, bare, &b, &rc, &ei);
		ok(strncmp(first, b.data, 60) != 0,
			"msgid: two ids differ");
	}
	a.domain = (char *)"localhost";
	contains(prepare_wire(&a, &o, bare, &b, &rc, &ei),
		"@example.com>\r\n", "msgid: domain from the sender when "
		"the account domain is localhost");
	a.domain = (char *)"mail.example.com";
	a.set_msgid_header = HDR_ON;
	prepare_wire(&a, &o, with, &b, &rc, &ei);
	ok(strstr(b.data, "<m@x>") == NULL &&
	    strstr(b.data, "Message-ID: <20231114") != NULL,
	    "msgid on: replaced");
	a.set_msgid_header = HDR_OFF;

	/* To */
	a.set_to_header = HDR_UNDISCLOSED;
	is_str(prepare_wire(&a, &o, with, &b, &rc, &ei),
		"To: undisclosed-recipients:;\r\nFrom: old@x.org\r\nDate: D\r\n"
		"Message-ID: <m@x>\r\n\r\nb\r\n",
		"set_to_header undisclosed replaces To/Cc/Bcc");
	a.set_to_header = HDR_ON;
	is_str(prepare_wire(&a, &o, with, &b, &rc, &ei),
		"To: r@x.org, s@y.org\r\nFrom: old@x.org\r\nDate: D\r\n"
		"Message-ID: <m@x>\r\n\r\nb\r\n",
		"set_to_header on lists the recipients");
	a.set_to_header = HDR_OFF;
	buf_release(&b);
}

/*
 * The envelope sender: the account's from (USE_DEFAULT: me@example.com,
 * NULL: none), -f, --read-envelope-from and the input, against the error,
 * the sender ("%U": the user name, then "@host.example") and what the
 * error message contains.  The first case also checks that a null sender adds no From.
 */
#define USE_DEFAULT "me@example.com"
static const struct sender_case {
	const char *what;
	const char *acc_from;
	int allow_override;
	const char *envelope_from;
	int read_envelope_from;
	const char *in;
	enum err want;
	const char *from;
	const char *msg;
} sender_cases[] = {
	{ "null sender", USE_DEFAULT, 1, "<>", 0, "Subject: s\n\nb\n",
		ERR_OK, "", NULL },
	{ "-f name-addr reduced", USE_DEFAULT, 1,
		"Some One <one@example.org>", 0, "Subject: s\n\nb\n", ERR_OK,
		"one@example.org", NULL },
	{ "-f <addr> reduced", USE_DEFAULT, 1, "<one@example.org>", 0,
		"Subject: s\n\nb\n", ERR_OK, "one@example.org", NULL },
	{ "-f with two addresses", USE_DEFAULT, 1, "a@b, c@d", 0,
		"Subject: s\n\nb\n", ERR_USAGE, NULL,
		"invalid envelope sender" },
	{ "sender from the From header", USE_DEFAULT, 1, NULL, 1,
		"From: Me <hdr@example.net>\n\nb\n", ERR_OK, "hdr@example.net",
		NULL },
	{ "%U and %H expanded", "%U@%H", 1, NULL, 0, "Subject: s\n\nb\n",
		ERR_OK, "%U", NULL },
	{ "no sender", NULL, 1, NULL, 0, "Subject: s\n\nb\n", ERR_CONFIG,
		NULL, "no envelope sender: set 'from' in account test or "
		"pass -f ADDR" },
	{ "wildcard from is not a sender", "*@example.com", 1, NULL, 0,
		"Subject: s\n\nb\n", ERR_CONFIG, NULL, NULL },
	/* a wildcard account is fine with -f even without override */
	{ "wildcard from with -f", "*@example.com", 0, "x@example.com", 0,
		"Subject: s\n\nb\n", ERR_OK, "x@example.com", NULL },
	{ "from with angle brackets refused", "bad<x>@example.com", 0, NULL,
		0, "Subject: s\n\nb\n", ERR_CONFIG, NULL, NULL },
};

static void
test_sender_rules(void)
{
	const struct passwd *pw = getpwuid(geteuid());
	char *args[] = { "r@x.org" };
	struct buf user_at_host;
	size_t i;

	buf_init(&user_at_host, 1 << 10);
	if (buf_printf(&user_at_host, "%s@host.example",
	    pw != NULL ? pw->pw_name : "") != ERR_OK) {
		ok(0, "user name");
	}
	for (i = 0; i < sizeof(sender_cases) / sizeof(sender_cases[0]); i++) {
		const struct sender_case *c = &sender_cases[i];
		struct message_opts o;
		struct envelope env;
		struct errinfo ei = ERRINFO_INIT;
		struct account a;
		struct message *m;
		enum err e;

		acc_init(&a);
		a.set_from_header = HDR_AUTO;
		a.from = (char *)c->acc_from;
		a.allow_from_override = c->allow_override;
		opts_init(&o, &a);
		o.rcpt_args = args;
		o.n_rcpt_args = 1;
		o.envelope_from = c->envelope_from;
		o.read_envelope_from = c->read_envelope_from;
		m = load(c->in, 1);
		errinfo_init(&ei);
		e = message_prepare(m, &o, &env, &ei);
		is_int(e, c->want, "%s: prepare", c->what);
		if (e == ERR_OK && c->from != NULL) {
			is_str(env.from, strcmp(c->from, "%U") == 0 ?
				buf_cstr(&user_at_host) : c->from,
				"%s: sender", c->what);
		}
		if (c->msg != NULL) {
			contains(errinfo_msg(&ei), c->msg, "%s: message", c->what);
		}
		if (i == 0) {
			check_wire(m, "Subject: s\r\n\r\nb\r\n",
				"null sender: no From added");
		}
		if (e == ERR_OK) {
			envelope_release(&env);
		}
		message_free(m);
	}
	buf_release(&user_at_host);
}

static void
test_errors_and_flags(void)
{
	struct account a;
	struct message_opts o;
	struct envelope env;
	struct errinfo ei = ERRINFO_INIT;
	struct message *m;
	char *bad_arg[] = { "\"Doe <j@x>" };
	char *utf8_arg[] = { "j\xc3\xb6rg@b\xc3\xbc" "cher.de" };
	char *one[] = { "r@x.org" };

	acc_init(&a);
	opts_init(&o, &a);

	m = load("Subject: s\n\nb\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_USAGE,
		"no recipients: ERR_USAGE");
	is_str(errinfo_msg(&ei), "no recipients found", "no recipients message");
	message_free(m);

	o.read_recipients = 1;
	m = load("To: undisclosed-recipients:;\n\nb\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_USAGE,
		"-t with an empty group only: ERR_USAGE");
	message_free(m);

	m = load("To: \"broken <a@b>\n\nb\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_DATA,
		"-t with a broken To: ERR_DATA");
	contains(errinfo_msg(&ei), "header To: unterminated quoted string",
		"broken To message");
	message_free(m);
	o.read_recipients = 0;

	o.rcpt_args = bad_arg;
	o.n_rcpt_args = 1;
	m = load("Subject: s\n\nb\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_USAGE,
		"bad recipient argument: ERR_USAGE");
	contains(errinfo_msg(&ei), "recipient '\"Doe <j@x>': unterminated",
		"bad recipient message");
	message_free(m);

	o.rcpt_args = utf8_arg;
	m = load("Subject: s\n\n\xe2\x82\xac\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK, "utf8: prepare");
	ok(env.smtputf8, "non-ASCII recipient sets smtputf8");
	ok(env.body_8bit, "8-bit body sets body_8bit");
	envelope_release(&env);
	message_free(m);

	o.rcpt_args = one;
	o.dsn_notify = "success,failure";
	o.dsn_envid = "id+1=2 x";
	a.dsn_return = (char *)"hdrs";
	m = load("Subject: s\n\nb\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK, "dsn: prepare");
	is_str(env.dsn_notify, "SUCCESS,FAILURE", "dsn notify normalised");
	is_str(env.dsn_return, "HDRS", "dsn return from the account");
	is_str(env.dsn_envid, "id+2B1+3D2+20x", "envid as xtext");
	ok(!env.smtputf8 && !env.body_8bit, "ASCII: no 8-bit flags");
	envelope_release(&env);
	message_free(m);

	o.dsn_return = "everything";
	m = load("Subject: s\n\nb\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_USAGE,
		"bad DSN return: ERR_USAGE");
	message_free(m);
	o.dsn_return = NULL;
	o.dsn_notify = NULL;
	o.dsn_envid = NULL;

	o.acc = NULL;
	m = load("Subject: s\n\nb\n", 1);
	is_int(message_prepare(m, &o, &env, &ei), ERR_INTERNAL,
		"no account: ERR_INTERNAL");
	message_free(m);
}

static void
test_write_wire(void)
{
	struct message *m;
	struct errinfo ei = ERRINFO_INIT;
	char path[256];
	char got[256];
	int fd;
	ssize_t n;

	m = load("Subject: w\n\nline\n", 1);
	snprintf(path, sizeof(path), "%s/out", tmpl_dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	is_int(message_write_wire(m, fd, &ei), ERR_OK, "write_wire");
	lseek(fd, 0, SEEK_SET);
	n = read(fd, got, sizeof(got));
	is_mem(got, n > 0 ? (size_t)n : 0, "Subject: w\r\n\r\nline\r\n", 20,
		"write_wire bytes");
	close(fd);
	unlink(path);
	{
		size_t k;
		char buf[8];

		is_int(message_read_wire(m, 1000, buf, sizeof(buf), &k, &ei),
			ERR_OK, "read past the end");
		is_int((long long)k, 0, "read past the end gives 0 bytes");
	}
	message_free(m);
}

/* 50 MiB through message_read: peak RSS must not follow the size. */
static void
test_large_rss(void)
{
	static const size_t total = 50u * 1024 * 1024;
	char path[256];
	char *chunk;
	struct rusage before, after;
	struct message *m = NULL;
	struct errinfo ei = ERRINFO_INIT;
	size_t written = 0, lines = 0, i;
	int fd;
	enum err rc;

	chunk = malloc(65536);
	for (i = 0; i < 65536; i++) {
		chunk[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
	}
	snprintf(path, sizeof(path), "%s/big", tmpl_dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (write(fd, "Subject: big\n\n", 14) != 14) {
		diag("write failed");
	}
	while (written < total) {
		if (write(fd, chunk, 65536) != 65536) {
			diag("write failed");
			break;
		}
		written += 65536;
		lines += 65536 / 64;
	}
	free(chunk);
	lseek(fd, 0, SEEK_SET);
	getrusage(RUSAGE_SELF, &before);
	rc = message_read(fd, 0, &m, &ei);
	getrusage(RUSAGE_SELF, &after);
	close(fd);
	unlink(path);
	is_int(rc, ERR_OK, "50 MiB message read");
	if (m != NULL) {
		is_int((long long)message_wire_size(m),
			(long long)(16 + written + lines),
			"50 MiB: wire size counts the added CRs");
	}
	diag("ru_maxrss before %ld KiB, after %ld KiB", before.ru_maxrss,
		after.ru_maxrss);
	ok(after.ru_maxrss - before.ru_maxrss < 8 * 1024,
		"50 MiB: peak RSS grew by less than 8 MiB");
	message_free(m);
}

/*
 * issue 14 (5): 60 000 recipients, each given twice (the second time with
 * the domain in capitals), are de-duplicated in linear time: the old
 * pairwise comparison took minutes for 150 000.  And the cap.
 */
static void
test_many_recipients(void)
{
	enum { N = 60000 };
	struct account a;
	struct message_opts o;
	struct envelope env;
	struct errinfo ei = ERRINFO_INIT;
	struct message *m;
	char **args = calloc(2 * N, sizeof(*args));
	clock_t start;
	double cpu;
	size_t i;

	for (i = 0; i < N; i++) {
		char one[64];

		snprintf(one, sizeof(one), "u%zu@example.org", i);
		args[i] = strdup(one);
		snprintf(one, sizeof(one), "u%zu@EXAMPLE.org", i);
		args[N + i] = strdup(one);
	}
	acc_init(&a);
	opts_init(&o, &a);
	o.envelope_from = "dev@example.com";
	o.rcpt_args = args;
	o.n_rcpt_args = 2 * N;
	m = load("Subject: many\n\nx\n", 1);
	start = clock();
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK, "many: prepare");
	cpu = (double)(clock() - start) / CLOCKS_PER_SEC;
	is_int((long long)env.n_rcpts, N, "many: each recipient once");
	ok(env.n_rcpts == N && strcmp(env.rcpts[N - 1], "u59999@example.org")
	    == 0, "many: order kept, first spelling kept");
	diag("%d recipients (twice each) took %.2f s of CPU", N, cpu);
	ok(cpu < 5.0, "many: de-duplication is not quadratic");
	envelope_release(&env);
	message_free(m);
	/* the system queue's cap */
	m = load("Subject: many\n\nx\n", 1);
	o.max_rcpts = 1000;
	is_int(message_prepare(m, &o, &env, &ei), ERR_LIMIT, "cap: refused");
	is_str(errinfo_msg(&ei), "too many recipients (more than 1000)", "cap: says so");
	message_free(m);
	m = load("Subject: many\n\nx\n", 1);
	o.n_rcpt_args = 1000;
	is_int(message_prepare(m, &o, &env, &ei), ERR_OK, "cap: 1000 pass");
	envelope_release(&env);
	message_free(m);
	for (i = 0; i < 2 * N; i++) {
		free(args[i]);
	}
	free(args);
}

int
main(void)
{
	if (mkdtemp(tmpl_dir) == NULL) {
		ok(0, "mkdtemp");
		return tap_done();
	}
	setenv("TMPDIR", tmpl_dir, 1);
	setenv("TZ", "UTC0", 1);
	tzset();
	test_read_table();
	test_read_fields();
	test_read_chunks();
	test_read_model();
	test_read_dots();
	test_read_limits();
	test_header_from();
	test_git_send_email();
	test_cron();
	test_cronie();
	test_mailx_bcc();
	test_php_crlf();
	test_mdadm_no_dash_i();
	test_dedup_and_resent();
	test_header_rules();
	test_sender_rules();
	test_errors_and_flags();
	test_write_wire();
	test_large_rss();
	test_many_recipients();
	rmdir(tmpl_dir);
	return tap_done();
}
