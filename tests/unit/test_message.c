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
#include "msgid_map.h"
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

/* The address message_header_from() finds (NULL: none). */
static const struct from_case {
	const char *what;
	const char *in;
	const char *from;
} from_cases[] = {
	{ "From address", "To: x@y\nFrom: \"Doe, J\" <j@example.com>\n\nb\n",
		"j@example.com" },
	{ "Resent-From for a resent message", "Resent-From: r@example.com\n"
		"Resent-To: n@x\nFrom: o@example.com\n\nb\n", "r@example.com" },
	{ "obsolete From : is parsed", "From : x@y\n\nb\n", "x@y" },
	{ "no From: NULL", "To: x@y\n\nb\n", NULL },
	{ "unparsable From: NULL", "From: \"broken\n\nb\n", NULL },
};

static void
test_header_from(void)
{
	size_t i;

	for (i = 0; i < sizeof(from_cases) / sizeof(from_cases[0]); i++) {
		const struct from_case *c = &from_cases[i];
		struct message *m = load(c->in, 1);
		const char *got = m != NULL ? message_header_from(m) : NULL;

		if (c->from != NULL) {
			is_str(got, c->from, "%s", c->what);
		} else {
			ok(m != NULL && got == NULL, "%s", c->what);
		}
		message_free(m);
	}
}

/* ---- message_prepare: the callers of oasmtp(1), EXAMPLES, and the rules ---- */

/*
 * A message through message_prepare().  The account starts as acc_init()
 * sets it; `acc` changes it with oasmtprc(5) names ("key=value; ..."), and
 * `aliases` is the text of an aliases file.  The command line: -t, -f, -F,
 * the recipient arguments, -N, -R, -V (`no_account`: none at all).
 * Expected: the status and a part of the error message; on success the
 * envelope sender, the recipients joined by spaces, the 8-bit flags
 * ("smtputf8 8bit", "" for none), the DSN parameters and the wire form
 * (`wire`: all of it, where '#' stands for one lowercase hex digit;
 * `wire_has` / `wire_lacks`: a part).  NULL: not checked.  Every wire form
 * is also checked for bare line ends and against its announced size.
 */
static const struct prepare_case {
	const char *what;
	const char *in;
	int without_i;		/* read without -i: a lone dot ends it */
	const char *acc;
	const char *aliases;
	const char *tz;		/* NULL: UTC */
	int t;
	const char *f;
	const char *F;
	const char *rcpt[5];
	const char *N, *R, *V;
	int no_account;
	enum err want;
	const char *msg;
	const char *sender;
	const char *rcpts;
	const char *flags;
	const char *dsn;
	const char *wire;
	const char *wire_has;
	const char *wire_lacks;
} prepare_cases[] = {
#define DATE "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
#define MSGID "Message-ID: <20231114221320.################"
	{ .what = "git send-email",
	  .in = "From: Dev <dev@example.com>\nTo: list@example.org\n"
	      "Cc: cc@example.org\nSubject: [PATCH] x\n"
	      "Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
	      "Message-ID: <1@example.com>\n\ndiff\n",
	  .acc = "set_from_header=auto; set_date_header=auto; "
	      "set_msgid_header=auto",
	  .f = "dev@example.com",
	  .rcpt = { "list@example.org", "cc@example.org", "dev@example.com",
	      "bcc@example.org" },
	  .sender = "dev@example.com",
	  .rcpts = "list@example.org cc@example.org dev@example.com "
	      "bcc@example.org",
	  .flags = "", .dsn = "notify=- return=- envid=-",
	  .wire = "From: Dev <dev@example.com>\r\nTo: list@example.org\r\n"
	      "Cc: cc@example.org\r\nSubject: [PATCH] x\r\n" DATE
	      "Message-ID: <1@example.com>\r\n\r\ndiff\r\n" },

	/* cron: %H, aliases for the envelope only, -F */
#define CRON_ACC "from=cron@%H; set_date_header=auto; set_from_header=auto"
	{ .what = "cron",
	  .in = "From: root (Cron Daemon)\nTo: root\n"
	      "Subject: Cron <root@host> ls\n\nout\n",
	  .acc = CRON_ACC, .aliases = "root: admin@example.com\n",
	  .F = "CronDaemon", .rcpt = { "root" },
	  .sender = "cron@host.example", .rcpts = "admin@example.com",
	  .wire = DATE "From: root (Cron Daemon)\r\nTo: root\r\n"
	      "Subject: Cron <root@host> ls\r\n\r\nout\r\n" },
	{ .what = "cron without aliases", .in = "Subject: x\n\nout\n",
	  .acc = CRON_ACC, .F = "CronDaemon", .rcpt = { "root" },
	  .sender = "cron@host.example", .rcpts = "root",
	  .wire = "From: CronDaemon <cron@host.example>\r\n" DATE
	      "Subject: x\r\n\r\nout\r\n" },
	{ .what = "cron, broken aliases file", .in = "Subject: x\n\nout\n",
	  .acc = CRON_ACC, .aliases = "root admin\n", .F = "CronDaemon",
	  .rcpt = { "root" }, .want = ERR_CONFIG, .msg = "/aliases:1:" },
#undef CRON_ACC

	/* cronie: -t -f with a bare local name, and from_rewrite */
#define CRONIE "From: root (Cron Daemon)\nTo: user\n" \
	"Subject: Cron <user@host> job\nAuto-Submitted: auto-generated\n\nout\n"
#define REWRITE "from_rewrite=on; set_from_header=auto"
	{ .what = "cronie: -f wins with allow_from_override", .in = CRONIE,
	  .t = 1, .f = "user", .sender = "user", .rcpts = "user" },
	{ .what = "cronie: the account's from wins without it", .in = CRONIE,
	  .acc = "allow_from_override=off", .t = 1, .f = "user",
	  .sender = "me@example.com", .rcpts = "user" },
	{ .what = "from_rewrite: a local From replaced (comments are not "
	      "names)", .in = CRONIE,
	  .acc = "allow_from_override=off; " REWRITE, .t = 1, .f = "user",
	  .wire = "From: me@example.com\r\n"
	      "X-Original-From: root (Cron Daemon)\r\nTo: user\r\n"
	      "Subject: Cron <user@host> job\r\n"
	      "Auto-Submitted: auto-generated\r\n\r\nout\r\n" },
	{ .what = "from_rewrite keeps the display name",
	  .in = "From: Cron Daemon <root@host.example>\nTo: u\n\nb\n",
	  .acc = "allow_from_override=off; " REWRITE, .t = 1, .f = "user",
	  .wire = "From: Cron Daemon <me@example.com>\r\n"
	      "X-Original-From: Cron Daemon <root@host.example>\r\nTo: u\r\n"
	      "\r\nb\r\n" },
	{ .what = "from_rewrite_header sender: the original as Sender:",
	  .in = "From: Cron Daemon <root>\nTo: u\n\nb\n",
	  .acc = "allow_from_override=off; from_rewrite_header=sender; "
	      REWRITE, .t = 1, .f = "user",
	  .wire = "From: Cron Daemon <me@example.com>\r\n"
	      "Sender: Cron Daemon <root>\r\nTo: u\r\n\r\nb\r\n" },
	{ .what = "from_rewrite_header off: the original dropped",
	  .in = "From: Cron Daemon <root>\nTo: u\n\nb\n",
	  .acc = "allow_from_override=off; from_rewrite_header=off; "
	      REWRITE, .t = 1, .f = "user",
	  .wire = "From: Cron Daemon <me@example.com>\r\nTo: u\r\n\r\nb\r\n" },
	{ .what = "from_rewrite: a local -f becomes the account's address",
	  .in = CRONIE, .acc = REWRITE, .t = 1, .f = "user",
	  .sender = "me@example.com" },
	{ .what = "from_rewrite leaves a real address alone",
	  .in = "From: Real <real@example.org>\nTo: u\n\nb\n",
	  .acc = "allow_from_override=off; " REWRITE, .t = 1, .f = "user",
	  .wire = "From: Real <real@example.org>\r\nTo: u\r\n\r\nb\r\n" },
#undef CRONIE
#undef REWRITE

	/* mailx: a folded Bcc */
#define MAILX "To: a@x.org\nCc: \"B, b\" <b@x.org>\n" \
	"Bcc: c@x.org,\n d@x.org\nSubject: s\n\nbody\n"
	{ .what = "mailx: Bcc in the envelope, not on the wire", .in = MAILX,
	  .t = 1, .rcpts = "a@x.org b@x.org c@x.org d@x.org",
	  .wire = "To: a@x.org\r\nCc: \"B, b\" <b@x.org>\r\nSubject: s\r\n"
	      "\r\nbody\r\n" },
	{ .what = "remove_bcc_headers off keeps Bcc", .in = MAILX,
	  .acc = "remove_bcc_headers=off", .t = 1,
	  .wire = "To: a@x.org\r\nCc: \"B, b\" <b@x.org>\r\n"
	      "Bcc: c@x.org,\r\n d@x.org\r\nSubject: s\r\n\r\nbody\r\n" },
#undef MAILX

	/* PHP's mail(): CRLF input, Message-ID added first */
	{ .what = "php",
	  .in = "To: user@example.net\r\nSubject: Order\r\n"
	      "From: shop@example.com\r\nMIME-Version: 1.0\r\n\r\n"
	      "Thanks\r\n\r\n-- \r\nShop\r\n",
	  .acc = "set_msgid_header=auto", .t = 1, .rcpts = "user@example.net",
	  .wire = MSGID "@mail.example.com>\r\nTo: user@example.net\r\n"
	      "Subject: Order\r\nFrom: shop@example.com\r\n"
	      "MIME-Version: 1.0\r\n\r\nThanks\r\n\r\n-- \r\nShop\r\n" },

	/* mdadm: no -i, a lone dot ends the message */
	{ .what = "mdadm", .without_i = 1,
	  .in = "From: mdadm monitoring <root>\nTo: root\n"
	      "Subject: Fail event\n\nA Fail event\n.\ntrailing junk\n",
	  .t = 1, .rcpts = "root",
	  .wire = "From: mdadm monitoring <root>\r\nTo: root\r\n"
	      "Subject: Fail event\r\n\r\nA Fail event\r\n" },

	/* recipients: de-duplication and Resent- blocks */
	{ .what = "dedup: domain case ignored, local part case kept, order "
	      "kept", .in = "To: a@x.org, c@z.org\nCc: B@Y.ORG\n\nb\n", .t = 1,
	  .rcpt = { "a@X.org, \"A\" <a@x.ORG>", "B@y.org", "b@y.org" },
	  .rcpts = "a@X.org B@y.org b@y.org c@z.org" },
	{ .what = "resent: the first Resent- block only, Bcc removed",
	  .in = "Resent-From: r@x.org\nResent-To: new1@x.org\n"
	      "Resent-Cc: new2@x.org\nResent-Bcc: hidden@x.org\n"
	      "Resent-Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
	      "Resent-To: older@x.org\nFrom: o@x.org\nTo: orig@x.org\n"
	      "Bcc: origbcc@x.org\n\nb\n", .t = 1,
	  .rcpts = "new1@x.org new2@x.org hidden@x.org older@x.org",
	  .wire_lacks = "Bcc:" },
	{ .what = "resent: a later block is ignored",
	  .in = "Resent-To: new@x.org\nX-Other: 1\nResent-To: old@x.org\n"
	      "To: orig@x.org\n\nb\n", .t = 1, .rcpts = "new@x.org" },

	/* the set_*_header rules, on a message with the fields and one without */
#define WITH "From: old@x.org\nDate: D\nMessage-ID: <m@x>\nTo: t@x.org\n" \
	"Cc: c@x.org\nBcc: h@x.org\n\nb\n"
#define WITH_OUT "From: old@x.org\r\nDate: D\r\nMessage-ID: <m@x>\r\n" \
	"To: t@x.org\r\nCc: c@x.org\r\n\r\nb\r\n"
#define BARE "Subject: s\n\nb\n"
#define RS { "r@x.org", "s@y.org" }
#define ON "set_from_header=on; set_date_header=on"
	{ .what = "off: nothing added, only Bcc removed", .in = WITH,
	  .rcpt = RS, .wire = WITH_OUT },
	{ .what = "off on a bare message: nothing added", .in = BARE,
	  .rcpt = RS, .wire = "Subject: s\r\n\r\nb\r\n" },
	{ .what = "auto: present fields kept", .in = WITH, .rcpt = RS,
	  .acc = "set_from_header=auto; set_date_header=auto",
	  .wire = WITH_OUT },
	{ .what = "auto: missing fields added", .in = BARE, .rcpt = RS,
	  .acc = "set_from_header=auto; set_date_header=auto",
	  .wire = "From: me@example.com\r\n" DATE "Subject: s\r\n\r\nb\r\n" },
	{ .what = "on: From and Date replaced, from_full_name used",
	  .in = WITH, .rcpt = RS, .acc = ON "; from_full_name=Account Name",
	  .wire = "From: Account Name <me@example.com>\r\n" DATE
	      "Message-ID: <m@x>\r\nTo: t@x.org\r\nCc: c@x.org\r\n\r\nb\r\n" },
	{ .what = "-F over from_full_name, quoted", .in = BARE, .rcpt = RS,
	  .acc = ON "; from_full_name=Account Name", .F = "Doe, John \"JD\"",
	  .wire = "From: \"Doe, John \\\"JD\\\"\" <me@example.com>\r\n" DATE
	      "Subject: s\r\n\r\nb\r\n" },
	{ .what = "-F UTF-8 name encoded", .in = BARE, .rcpt = RS,
	  .acc = ON, .F = "J\xc3\xb6rg",
	  .wire = "From: =?UTF-8?B?SsO2cmc=?= <me@example.com>\r\n" DATE
	      "Subject: s\r\n\r\nb\r\n" },
	{ .what = "-F with a newline refused", .in = BARE, .rcpt = RS,
	  .acc = ON, .F = "bad\nname", .want = ERR_USAGE },
	{ .what = "Date west of UTC", .in = BARE, .rcpt = RS, .acc = ON,
	  .tz = "EST5", .wire_has = "Date: Tue, 14 Nov 2023 17:13:20 -0500\r\n" },
	{ .what = "Date east of UTC", .in = BARE, .rcpt = RS, .acc = ON,
	  .tz = "<+0530>-5:30",
	  .wire_has = "Date: Wed, 15 Nov 2023 03:43:20 +0530\r\n" },
	{ .what = "msgid auto: a present one kept", .in = WITH, .rcpt = RS,
	  .acc = "set_msgid_header=auto", .wire = WITH_OUT },
	{ .what = "msgid auto: added, time.16hex@domain", .in = BARE,
	  .rcpt = RS, .acc = "set_msgid_header=auto",
	  .wire = MSGID "@mail.example.com>\r\nSubject: s\r\n\r\nb\r\n" },
	{ .what = "msgid: the sender's domain when the account's is localhost",
	  .in = BARE, .rcpt = RS,
	  .acc = "set_msgid_header=auto; domain=localhost",
	  .wire = MSGID "@example.com>\r\nSubject: s\r\n\r\nb\r\n" },
	{ .what = "msgid on: replaced", .in = WITH, .rcpt = RS,
	  .acc = "set_msgid_header=on", .wire_lacks = "<m@x>",
	  .wire = MSGID "@mail.example.com>\r\nFrom: old@x.org\r\n"
	      "Date: D\r\nTo: t@x.org\r\nCc: c@x.org\r\n\r\nb\r\n" },
	{ .what = "set_to_header undisclosed replaces To/Cc/Bcc", .in = WITH,
	  .rcpt = RS, .acc = "set_to_header=undisclosed_recipients",
	  .wire = "To: undisclosed-recipients:;\r\nFrom: old@x.org\r\n"
	      "Date: D\r\nMessage-ID: <m@x>\r\n\r\nb\r\n" },
	{ .what = "set_to_header on lists the recipients", .in = WITH,
	  .rcpt = RS, .acc = "set_to_header=on",
	  .wire = "To: r@x.org, s@y.org\r\nFrom: old@x.org\r\nDate: D\r\n"
	      "Message-ID: <m@x>\r\n\r\nb\r\n" },
#undef WITH
#undef WITH_OUT
#undef RS
#undef ON

	/* refusals, the 8-bit flags and DSN */
	{ .what = "no recipients", .in = BARE, .want = ERR_USAGE,
	  .msg = "no recipients found" },
	{ .what = "-t with an empty group only",
	  .in = "To: undisclosed-recipients:;\n\nb\n", .t = 1,
	  .want = ERR_USAGE, .msg = "no recipients found" },
	{ .what = "-t with a broken To", .in = "To: \"broken <a@b>\n\nb\n",
	  .t = 1, .want = ERR_DATA,
	  .msg = "header To: unterminated quoted string" },
	{ .what = "bad recipient argument", .in = BARE,
	  .rcpt = { "\"Doe <j@x>" }, .want = ERR_USAGE,
	  .msg = "recipient '\"Doe <j@x>': unterminated" },
	{ .what = "non-ASCII recipient and 8-bit body",
	  .in = "Subject: s\n\n\xe2\x82\xac\n",
	  .rcpt = { "j\xc3\xb6rg@b\xc3\xbc" "cher.de" },
	  .rcpts = "j\xc3\xb6rg@b\xc3\xbc" "cher.de", .flags = "smtputf8 8bit" },
	{ .what = "dsn: -N normalised, return from the account, envid as "
	      "xtext", .in = BARE, .rcpt = { "r@x.org" },
	  .acc = "dsn_return=hdrs", .N = "success,failure", .V = "id+1=2 x",
	  .flags = "",
	  .dsn = "notify=SUCCESS,FAILURE return=HDRS envid=id+2B1+3D2+20x" },
	{ .what = "bad DSN return", .in = BARE, .rcpt = { "r@x.org" },
	  .R = "everything", .want = ERR_USAGE },
	{ .what = "no account", .in = BARE, .rcpt = { "r@x.org" },
	  .no_account = 1, .want = ERR_INTERNAL },
#undef BARE
#undef DATE
#undef MSGID
};

/* One value of a case's `acc`: an enum by name; 0 and a check if unknown. */
static int
acc_enum(const char *key, const char *v, const char *const *names, int *ret)
{
	int i;

	for (i = 0; names[i] != NULL; i++) {
		if (names[i][0] != '\0' && strcmp(v, names[i]) == 0) {
			*ret = i;
			return 1;
		}
	}
	ok(0, "test table: %s=%s is not a known value", key, v);
	return 0;
}

/* Apply "key=value; ..." to a; spec is cut in place and must outlive a. */
static void
acc_apply(struct account *a, char *spec)
{
	/* by enum value: the indexes are HDR_* and FROM_ORIG_* */
	static const char *const hdr[] = { "auto", "on", "off",
	    "undisclosed_recipients", NULL };
	static const char *const orig[] = { "x-original-from", "sender", "off",
	    NULL };
	static const char *const onoff[] = { "off", "on", NULL };
	char *p = spec;

	while (p != NULL && *p != '\0') {
		char *end = strchr(p, ';');
		char *eq = strchr(p, '=');
		int v = 0;

		if (end != NULL) {
			*end = '\0';
		}
		if (eq == NULL) {
			ok(0, "test table: '%s' has no '='", p);
			return;
		}
		*eq++ = '\0';
		if (strcmp(p, "from") == 0) {
			a->from = eq;
		} else if (strcmp(p, "domain") == 0) {
			a->domain = eq;
		} else if (strcmp(p, "from_full_name") == 0) {
			a->from_full_name = eq;
		} else if (strcmp(p, "dsn_return") == 0) {
			a->dsn_return = eq;
		} else if (strcmp(p, "set_from_header") == 0 &&
		    acc_enum(p, eq, hdr, &v)) {
			a->set_from_header = (enum header_policy)v;
		} else if (strcmp(p, "set_date_header") == 0 &&
		    acc_enum(p, eq, hdr, &v)) {
			a->set_date_header = (enum header_policy)v;
		} else if (strcmp(p, "set_msgid_header") == 0 &&
		    acc_enum(p, eq, hdr, &v)) {
			a->set_msgid_header = (enum header_policy)v;
		} else if (strcmp(p, "set_to_header") == 0 &&
		    acc_enum(p, eq, hdr, &v)) {
			a->set_to_header = (enum header_policy)v;
		} else if (strcmp(p, "from_rewrite_header") == 0 &&
		    acc_enum(p, eq, orig, &v)) {
			a->from_rewrite_header = (enum from_original)v;
		} else if (strcmp(p, "allow_from_override") == 0 &&
		    acc_enum(p, eq, onoff, &v)) {
			a->allow_from_override = v;
		} else if (strcmp(p, "remove_bcc_headers") == 0 &&
		    acc_enum(p, eq, onoff, &v)) {
			a->remove_bcc_headers = v;
		} else if (strcmp(p, "from_rewrite") == 0 &&
		    acc_enum(p, eq, onoff, &v)) {
			a->from_rewrite = v;
		} else {
			ok(0, "test table: unknown key '%s'", p);
		}
		p = end != NULL ? end + 1 : NULL;
		while (p != NULL && *p == ' ') {
			p++;
		}
	}
}

/* got equals want, where '#' in want is one lowercase hex digit. */
static int
wire_matches(const struct buf *got, const char *want)
{
	size_t i, n = strlen(want);

	if (got->len != n) {
		return 0;
	}
	for (i = 0; i < n; i++) {
		char g = got->data[i];

		if (want[i] == '#' ? strchr("0123456789abcdef", g) == NULL ||
		    g == '\0' : g != want[i]) {
			return 0;
		}
	}
	return 1;
}

/* Every CR is followed by LF and every LF preceded by CR. */
static int
crlf_only(const struct buf *b)
{
	size_t i;

	for (i = 0; i < b->len; i++) {
		if ((b->data[i] == '\r' && (i + 1 == b->len ||
		    b->data[i + 1] != '\n')) ||
		    (b->data[i] == '\n' && (i == 0 || b->data[i - 1] != '\r'))) {
			return 0;
		}
	}
	return 1;
}

/* What the wire form of a prepared message must be. */
static void
check_prepared_wire(const struct prepare_case *c, struct message *m,
	struct buf *b)
{
	const char *w;

	wire(m, b);
	w = buf_cstr(b);
	is_int((long long)message_wire_size(m), (long long)b->len,
		"%s: wire size equals the bytes produced", c->what);
	ok(crlf_only(b), "%s: no bare CR or LF", c->what);
	if (c->wire != NULL && !ok(wire_matches(b, c->wire), "%s: wire bytes",
	    c->what)) {
		diag("got  '%s'", w);
		diag("want '%s'", c->wire);
	}
	if (c->wire_has != NULL) {
		contains(w, c->wire_has, "%s: on the wire", c->what);
	}
	if (c->wire_lacks != NULL) {
		ok(strstr(w, c->wire_lacks) == NULL, "%s: '%s' not on the wire",
			c->what, c->wire_lacks);
	}
}

/* What the envelope of a prepared message must be. */
static void
check_envelope(const struct prepare_case *c, const struct envelope *env,
	struct buf *b)
{
	if (c->sender != NULL) {
		is_str(env->from, c->sender, "%s: sender", c->what);
	}
	if (c->rcpts != NULL) {
		rcpts_str(env, b);
		is_str(buf_cstr(b), c->rcpts, "%s: recipients", c->what);
	}
	if (c->flags != NULL) {
		buf_reset(b);
		setup(buf_printf(b, "%s%s%s", env->smtputf8 ? "smtputf8" : "",
			env->smtputf8 && env->body_8bit ? " " : "",
			env->body_8bit ? "8bit" : ""));
		is_str(buf_cstr(b), c->flags, "%s: 8-bit flags", c->what);
	}
	if (c->dsn != NULL) {
		buf_reset(b);
		setup(buf_printf(b, "notify=%s return=%s envid=%s",
			env->dsn_notify != NULL ? env->dsn_notify : "-",
			env->dsn_return != NULL ? env->dsn_return : "-",
			env->dsn_envid != NULL ? env->dsn_envid : "-"));
		is_str(buf_cstr(b), c->dsn, "%s: DSN", c->what);
	}
}

static void
run_prepare_case(const struct prepare_case *c, struct buf *b)
{
	struct account a;
	struct message_opts o;
	struct envelope env;
	struct errinfo ei = ERRINFO_INIT;
	struct message *m;
	char spec[256];
	char *aliases = NULL;
	size_t n = 0;
	enum err e;

	acc_init(&a);
	util_strlcpy(spec, c->acc != NULL ? c->acc : "", sizeof(spec));
	acc_apply(&a, spec);
	if (c->aliases != NULL) {
		aliases = write_tmp("aliases", c->aliases);
		a.aliases = aliases;
	}
	opts_init(&o, &a);
	o.acc = c->no_account ? NULL : &a;
	o.read_recipients = c->t;
	o.envelope_from = c->f;
	o.full_name = c->F;
	while (n < sizeof(c->rcpt) / sizeof(c->rcpt[0]) && c->rcpt[n] != NULL) {
		n++;
	}
	o.rcpt_args = (char *const *)c->rcpt;
	o.n_rcpt_args = n;
	o.dsn_notify = c->N;
	o.dsn_return = c->R;
	o.dsn_envid = c->V;
	if (c->tz != NULL) {
		setenv("TZ", c->tz, 1);
		tzset();
	}
	m = load(c->in, !c->without_i);
	e = message_prepare(m, &o, &env, &ei);
	is_int(e, c->want, "%s: prepare", c->what);
	if (c->msg != NULL) {
		contains(errinfo_msg(&ei), c->msg, "%s: message", c->what);
	}
	if (e == ERR_OK) {
		check_envelope(c, &env, b);
		check_prepared_wire(c, m, b);
		envelope_release(&env);
	}
	message_free(m);
	errinfo_release(&ei);
	if (c->tz != NULL) {
		setenv("TZ", "UTC0", 1);
		tzset();
	}
	if (aliases != NULL) {
		unlink(aliases);
		free(aliases);
	}
}

static void
test_prepare_table(void)
{
	struct buf b;
	size_t i;

	buf_init(&b, 1 << 20);
	for (i = 0; i < sizeof(prepare_cases) / sizeof(prepare_cases[0]); i++) {
		run_prepare_case(&prepare_cases[i], &b);
	}
	buf_release(&b);
}

/* What the table does not say: two Message-IDs differ. */
static void
test_msgid_unique(void)
{
	struct account a;
	struct message_opts o;
	struct envelope env;
	struct errinfo ei = ERRINFO_INIT;
	char *args[] = { "r@x.org" };
	struct buf first, second;
	int i;

	buf_init(&first, 1 << 16);
	buf_init(&second, 1 << 16);
	acc_init(&a);
	a.set_msgid_header = HDR_AUTO;
	opts_init(&o, &a);
	o.rcpt_args = args;
	o.n_rcpt_args = 1;
	for (i = 0; i < 2; i++) {
		struct message *m = load("Subject: s\n\nb\n", 1);

		is_int(message_prepare(m, &o, &env, &ei), ERR_OK,
			"msgid %d: prepare", i + 1);
		wire(m, i == 0 ? &first : &second);
		envelope_release(&env);
		message_free(m);
	}
	ok(first.len > 60 && second.len == first.len &&
	    memcmp(first.data, second.data, 60) != 0, "msgid: two ids differ");
	buf_release(&first);
	buf_release(&second);
}

/* Aliases fan-out at every level is bounded, not explored to the end. */
static void
test_alias_fanout(void)
{
	struct errinfo ei = ERRINFO_INIT;
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
	ok(aliases_load(path, &al, &ei) == ERR_OK, "fan-out file loads");
	is_int(aliases_expand(al, "l0", &out, &ei), ERR_CONFIG,
		"8^15 expansion refused");
	contains(errinfo_msg(&ei), "more than 10000 addresses",
		"fan-out message names the bound");
	ok(out.n <= ALIASES_EXPAND_MAX, "bound held (%zu)", out.n);
	addr_list_release(&out);
	aliases_free(al);
	errinfo_release(&ei);
	unlink(path);
	free(path);
	buf_release(&t);
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

/* Threading repair: which messages cite IDs, and what a rewrite changes. */
static void
test_cited_ids(void)
{
	struct errinfo ei = ERRINFO_INIT;
	struct msgid_map map;
	struct message *m;
	struct buf w;
	int changed = 0;

	m = load("Subject: x\n\nbody cites <a@b.example>\n", 1);
	ok(!message_cites_ids(m), "cites: none (the body does not count)");
	message_free(m);
	m = load("References: none\nSubject: x\n\nb\n", 1);
	ok(!message_cites_ids(m), "cites: a References field without an ID");
	message_free(m);
	m = load("Subject: x\nin-reply-to: <z@x.example>\n\nb\n", 1);
	ok(message_cites_ids(m), "cites: In-Reply-To, any case");
	message_free(m);

	m = load("In-Reply-To: <o1@x.example>\nReferences: <o0@x.example>\n"
		" <o1@x.example>\nSubject: y\n\nb <o1@x.example>\n", 1);
	ok(message_cites_ids(m), "cites: References folded over two lines");
	msgid_map_init(&map);
	setup(msgid_map_add(&map, "o1@x.example", "N1@y.example", 1));
	errinfo_init(&ei);
	is_int(message_rewrite_refs(m, msgid_map_lookup, &map, &changed, &ei),
		ERR_OK, "rewrite: done");
	ok(changed, "rewrite: something changed");
	buf_init(&w, 4096);
	wire(m, &w);
	is_str(buf_cstr(&w), "In-Reply-To: <N1@y.example>\r\nReferences: "
		"<o0@x.example>\r\n <N1@y.example>\r\nSubject: y\r\n\r\n"
		"b <o1@x.example>\r\n", "rewrite: the assigned ID cited, "
		"folding, other IDs and the body kept");
	buf_release(&w);
	msgid_map_release(&map);
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
	test_prepare_table();
	test_msgid_unique();
	test_alias_fanout();
	test_sender_rules();
	test_write_wire();
	test_cited_ids();
	test_large_rss();
	test_many_recipients();
	rmdir(tmpl_dir);
	return tap_done();
}
