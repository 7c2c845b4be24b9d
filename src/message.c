/*
 * message.c - spooling the message, parsing and rewriting its header block,
 * and deciding the envelope (semantics in message.h).
 *
 * The reader is a byte-level state machine: line endings are recognised
 * (LF, CRLF, lone CR) and each line is handed on.  In the header state a
 * line is collected in a bounded buffer and classified when it ends (field,
 * continuation, empty, other); fields are kept as their raw CRLF bytes so
 * the wire copy keeps the sender's folding.  In the body state bytes are
 * streamed through a fixed buffer into the spool file; only a possible
 * "." line is held back until its end is known.  The body's plain bytes
 * (everything up to the next CR or LF) are copied as whole runs, and only
 * line ends and a leading dot go through the byte-level machine: a
 * message of many megabytes costs little more than copying it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "aliases.h"
#include "message.h"
#include "util.h"

#define IO_CHUNK (64 * 1024)

/* Room for the fields message_prepare adds beyond the input bound. */
#define HEAD_MAX (4 * MESSAGE_HEADER_MAX)

struct field {
	char *raw;		/* "Name: value" and continuations, each + CRLF */
	size_t len;
	char *name;		/* NUL-terminated copy, trailing blanks cut */
	int removed;		/* dropped from the wire by message_prepare */
};

struct message {
	struct field *f;
	size_t n_f;
	size_t cap_f;
	size_t hdr_bytes;
	int body_fd;
	uint64_t body_len;
	int is_8bit;
	char *header_from;
	struct buf head;	/* wire header block + the empty line */
};

enum rd_state {
	RD_HEAD,
	RD_BODY,
	RD_DONE,
};

struct message_reader {
	struct message *m;
	int ignore_dots;
	enum rd_state state;
	struct buf line;	/* header line being collected, no terminator */
	unsigned lineno;
	int pending_cr;		/* a CR was read; LF may follow */
	int first_line;		/* no line has ended yet */
	int skip_line;		/* dropping the rest of this line */
	int bol;		/* body: at the beginning of a line */
	int dot_pending;	/* body: this line is "." so far */
	size_t out_len;
	char out[IO_CHUNK];
};

enum line_kind {
	LINE_EMPTY,
	LINE_FIELD,
	LINE_CONT,
	LINE_OTHER,
};

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* How a header-state line reads; *ret_name_len gets a field's name length. */
static enum line_kind
classify(const char *s, size_t n, int have_fields, size_t *ret_name_len)
{
	size_t i = 0, j;

	if (n == 0) {
		return LINE_EMPTY;
	}
	if (is_wsp(s[0])) {
		return have_fields ? LINE_CONT : LINE_OTHER;
	}
	while (i < n && (unsigned char)s[i] >= 33 &&
	    (unsigned char)s[i] <= 126 && s[i] != ':') {
		i++;
	}
	for (j = i; j < n && is_wsp(s[j]); j++) {
		;
	}
	if (i == 0 || j >= n || s[j] != ':') {
		return LINE_OTHER;
	}
	if (ret_name_len != NULL) {
		*ret_name_len = i;
	}
	return LINE_FIELD;
}

/* ---- spool output ---- */

static MUST_CHECK enum err
flush_out(struct message_reader *r, struct errinfo *reterr)
{
	if (r->out_len == 0) {
		return ERR_OK;
	}
	if (util_write_all(r->m->body_fd, r->out, r->out_len) != 0) {
		int e = errno;

		errinfo_set(reterr, ERR_IO, "writing the spool file: %s",
			strerror(e));
		errinfo_set_errno(reterr, e);
		return ERR_IO;
	}
	r->m->body_len += r->out_len;
	r->out_len = 0;
	return ERR_OK;
}

static MUST_CHECK enum err
out_bytes(struct message_reader *r, const char *p, size_t n,
	struct errinfo *reterr)
{
	while (n > 0) {
		size_t room = sizeof(r->out) - r->out_len;
		size_t k = n < room ? n : room;
		enum err rc;

		memcpy(r->out + r->out_len, p, k);
		r->out_len += k;
		p += k;
		n -= k;
		if (r->out_len == sizeof(r->out)) {
			rc = flush_out(r, reterr);
			if (rc != ERR_OK) {
				return rc;
			}
		}
	}
	return ERR_OK;
}

/* ---- header fields ---- */

static MUST_CHECK enum err
add_field(struct message *m, const char *s, size_t n, size_t name_len,
	struct errinfo *reterr)
{
	struct field fl;

	if (m->hdr_bytes + n + 2 > MESSAGE_HEADER_MAX) {
		return errinfo_set(reterr, ERR_DATA,
			"header block larger than %d bytes",
			MESSAGE_HEADER_MAX);
	}
	if (m->n_f == m->cap_f) {
		size_t ncap = m->cap_f ? m->cap_f * 2 : 16;
		struct field *nv = realloc(m->f, ncap * sizeof(*nv));

		if (nv == NULL) {
			return errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
		m->f = nv;
		m->cap_f = ncap;
	}
	fl.raw = malloc(n + 2);
	fl.name = strndup(s, name_len);
	if (fl.raw == NULL || fl.name == NULL) {
		free(fl.raw);
		free(fl.name);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	memcpy(fl.raw, s, n);
	memcpy(fl.raw + n, "\r\n", 2);
	fl.len = n + 2;
	fl.removed = 0;
	m->f[m->n_f++] = fl;
	m->hdr_bytes += n + 2;
	return ERR_OK;
}

static MUST_CHECK enum err
continue_field(struct message *m, const char *s, size_t n,
	struct errinfo *reterr)
{
	struct field *fl = &m->f[m->n_f - 1];
	char *p;

	if (m->hdr_bytes + n + 2 > MESSAGE_HEADER_MAX) {
		return errinfo_set(reterr, ERR_DATA,
			"header block larger than %d bytes",
			MESSAGE_HEADER_MAX);
	}
	p = realloc(fl->raw, fl->len + n + 2);
	if (p == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	memcpy(p + fl->len, s, n);
	memcpy(p + fl->len + n, "\r\n", 2);
	fl->raw = p;
	fl->len += n + 2;
	m->hdr_bytes += n + 2;
	return ERR_OK;
}

/* ---- the reader state machine ---- */

static void
start_body(struct message_reader *r, int bol)
{
	r->state = RD_BODY;
	r->bol = bol;
	r->dot_pending = 0;
}

static MUST_CHECK enum err
end_line(struct message_reader *r, struct errinfo *reterr)
{
	const char *s = r->line.data;
	size_t n = r->line.len, name_len = 0;
	int first = r->first_line;
	enum line_kind kind;
	enum err rc = ERR_OK;

	r->lineno++;
	r->first_line = 0;
	if (r->state == RD_BODY) {
		if (r->dot_pending) {
			r->state = RD_DONE;
			return ERR_OK;
		}
		r->bol = 1;
		return out_bytes(r, "\r\n", 2, reterr);
	}
	if (r->state != RD_HEAD) {
		return ERR_OK;
	}
	if (r->skip_line) {
		r->skip_line = 0;
		return ERR_OK;
	}
	kind = classify(s, n, r->m->n_f > 0, &name_len);
	if (first && n >= 5 && memcmp(s, "From ", 5) == 0 &&
	    kind != LINE_FIELD) {
		/* mbox separator line */
		buf_reset(&r->line);
		return ERR_OK;
	}
	if (!r->ignore_dots && n == 1 && s[0] == '.') {
		r->state = RD_DONE;
		buf_reset(&r->line);
		return ERR_OK;
	}
	if ((kind == LINE_FIELD || kind == LINE_CONT) &&
	    memchr(s, '\0', n) != NULL) {
		return errinfo_set(reterr, ERR_DATA,
			"NUL byte in header line %u", r->lineno);
	}
	switch (kind) {
	case LINE_EMPTY:
		start_body(r, 1);
		break;
	case LINE_FIELD:
		rc = add_field(r->m, s, n, name_len, reterr);
		break;
	case LINE_CONT:
		rc = continue_field(r->m, s, n, reterr);
		break;
	case LINE_OTHER:
		/* not a header: the header block ended, this starts the body */
		start_body(r, 1);
		rc = out_bytes(r, s, n, reterr);
		if (rc == ERR_OK) {
			rc = out_bytes(r, "\r\n", 2, reterr);
		}
		break;
	}
	buf_reset(&r->line);
	return rc;
}

static MUST_CHECK enum err
body_char(struct message_reader *r, char c, struct errinfo *reterr)
{
	enum err rc;

	if (r->dot_pending) {
		r->dot_pending = 0;
		rc = out_bytes(r, ".", 1, reterr);
		if (rc != ERR_OK) {
			return rc;
		}
	} else if (r->bol && c == '.' && !r->ignore_dots) {
		r->bol = 0;
		r->dot_pending = 1;
		return ERR_OK;
	}
	r->bol = 0;
	if (r->out_len < sizeof(r->out)) {
		r->out[r->out_len++] = c;
		if (r->out_len == sizeof(r->out)) {
			return flush_out(r, reterr);
		}
		return ERR_OK;
	}
	return out_bytes(r, &c, 1, reterr);
}

static MUST_CHECK enum err
head_char(struct message_reader *r, char c, struct errinfo *reterr)
{
	enum line_kind kind;
	enum err rc;

	if (r->skip_line) {
		return ERR_OK;
	}
	if (r->line.len < MESSAGE_LINE_MAX) {
		if (buf_putc(&r->line, c) != ERR_OK) {
			return errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
		return ERR_OK;
	}
	/* the line is too long for a header line: what is it? */
	kind = classify(r->line.data, r->line.len, r->m->n_f > 0, NULL);
	if (r->first_line && memcmp(r->line.data, "From ", 5) == 0 &&
	    kind != LINE_FIELD) {
		r->skip_line = 1;
		buf_reset(&r->line);
		return ERR_OK;
	}
	if (kind == LINE_FIELD || kind == LINE_CONT) {
		return errinfo_set(reterr, ERR_DATA,
			"header line %u longer than %d bytes", r->lineno + 1,
			MESSAGE_LINE_MAX);
	}
	start_body(r, 0);
	rc = out_bytes(r, r->line.data, r->line.len, reterr);
	buf_reset(&r->line);
	if (rc != ERR_OK) {
		return rc;
	}
	return body_char(r, c, reterr);
}

/*
 * What message_reader_push() knows about the rest of its input, so that
 * text with LF line ends or without 8-bit bytes is searched once per
 * call for CR and for 8-bit bytes, not once per line.
 */
struct scan {
	const char *end;	/* end of the input */
	const char *cr;		/* the first CR not yet passed, end, or
				 * NULL before the first search */
	int high;		/* there are bytes >= 0x80 to look for */
};

/* 1 when some byte of s[0..n) is >= 0x80; eight bytes at a time. */
static int
any_8bit(const char *s, size_t n)
{
	uint64_t acc = 0, w;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		acc |= w;
	}
	for (; i < n; i++) {
		acc |= (unsigned char)s[i];
	}
	return (acc & UINT64_C(0x8080808080808080)) != 0;
}

/*
 * Body bytes that need no decision: the state is the body, no CR or "."
 * is held back, and s[0] is not a dot that could start the "." line.
 * Copies the run up to the next CR or LF and, when it is there, the LF or
 * CRLF that ends it (as CRLF).  Returns the input bytes used (0: none; a
 * lone CR, or a CR at the end of s, is left to put_char()).
 */
static size_t
body_run(struct message_reader *r, const char *s, struct scan *sc,
	enum err *ret_rc, struct errinfo *reterr)
{
	size_t n = (size_t)(sc->end - s), k, eol = 0;
	const char *lf;

	*ret_rc = ERR_OK;
	if (r->state != RD_BODY || r->pending_cr || r->dot_pending ||
	    (r->bol && !r->ignore_dots && s[0] == '.')) {
		return 0;
	}
	if (sc->cr == NULL || sc->cr < s) {
		sc->cr = memchr(s, '\r', n);
		if (sc->cr == NULL) {
			sc->cr = sc->end;
		}
	}
	/* the run ends at the first LF or CR */
	lf = memchr(s, '\n', (size_t)(sc->cr - s));
	k = (size_t)((lf != NULL ? lf : sc->cr) - s);
	if (k < n && s[k] == '\n') {
		eol = 1;
	} else if (k + 1 < n && s[k] == '\r' && s[k + 1] == '\n') {
		eol = 2;
	}
	if (k == 0 && eol == 0) {
		return 0;
	}
	if (sc->high && !r->m->is_8bit && any_8bit(s, k)) {
		r->m->is_8bit = 1;
	}
	*ret_rc = out_bytes(r, s, k, reterr);
	if (*ret_rc != ERR_OK) {
		return 0;
	}
	if (eol == 0) {
		r->bol = 0;
		return k;
	}
	/* the line ended, as end_line() would do it in the body */
	r->lineno++;
	r->first_line = 0;
	r->bol = 1;
	*ret_rc = out_bytes(r, "\r\n", 2, reterr);
	return k + eol;
}

static MUST_CHECK enum err
put_char(struct message_reader *r, char c, struct errinfo *reterr)
{
	enum err rc;

	if ((unsigned char)c >= 0x80) {
		r->m->is_8bit = 1;
	}
	if (c == '\n') {
		r->pending_cr = 0;
		return end_line(r, reterr);
	}
	if (r->pending_cr) {
		/* the CR before was not followed by LF: a line end of its own */
		r->pending_cr = 0;
		rc = end_line(r, reterr);
		if (rc != ERR_OK || r->state == RD_DONE) {
			return rc;
		}
	}
	if (c == '\r') {
		r->pending_cr = 1;
		return ERR_OK;
	}
	if (r->state == RD_HEAD) {
		return head_char(r, c, reterr);
	}
	return body_char(r, c, reterr);
}

static MUST_CHECK enum err
spool_open(int *ret_fd, struct errinfo *reterr)
{
	const char *dir = getenv("TMPDIR");
	struct buf path;
	int fd, e;

	if (dir == NULL || dir[0] == '\0') {
		dir = "/tmp";
	}
	buf_init(&path, 4096);
	if (buf_printf(&path, "%s/oasmtp-XXXXXX", dir) != ERR_OK) {
		buf_release(&path);
		return errinfo_set(reterr, ERR_IO, "TMPDIR path too long");
	}
	fd = mkstemp(path.data);
	e = errno;
	if (fd < 0) {
		errinfo_set(reterr, ERR_IO, "cannot create a spool file in "
			"%s: %s", dir, strerror(e));
		buf_release(&path);
		errinfo_set_errno(reterr, e);
		return ERR_IO;
	}
	unlink(path.data);
	buf_release(&path);
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	*ret_fd = fd;
	return ERR_OK;
}

enum err
message_reader_new(int ignore_dots, struct message_reader **ret,
	struct errinfo *reterr)
{
	struct message_reader *r;
	enum err rc;

	*ret = NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL || (r->m = calloc(1, sizeof(*r->m))) == NULL) {
		free(r);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	buf_init(&r->m->head, HEAD_MAX);
	r->m->body_fd = -1;
	rc = spool_open(&r->m->body_fd, reterr);
	if (rc != ERR_OK) {
		message_reader_free(r);
		return rc;
	}
	r->ignore_dots = ignore_dots;
	r->state = RD_HEAD;
	r->first_line = 1;
	buf_init(&r->line, MESSAGE_LINE_MAX);
	*ret = r;
	return ERR_OK;
}

void
message_reader_free(struct message_reader *r)
{
	if (r == NULL) {
		return;
	}
	message_free(r->m);
	buf_release(&r->line);
	free(r);
}

enum err
message_reader_push(struct message_reader *r, const void *p, size_t n,
	int *ret_done, struct errinfo *reterr)
{
	const char *s = p;
	size_t i = 0;
	struct scan sc;
	enum err rc;

	sc.end = s + n;
	sc.cr = NULL;
	sc.high = !r->m->is_8bit && any_8bit(s, n);
	while (i < n && r->state != RD_DONE) {
		size_t k = body_run(r, s + i, &sc, &rc, reterr);

		if (k == 0 && rc == ERR_OK) {
			/* a lone CR, a dot, a header byte: one at a time */
			rc = put_char(r, s[i], reterr);
			k = 1;
		}
		if (rc != ERR_OK) {
			return rc;
		}
		i += k;
	}
	if (ret_done != NULL) {
		*ret_done = r->state == RD_DONE;
	}
	return ERR_OK;
}

/* Index of the first field named name at or after from, or n_f. */
static size_t
find_field(const struct message *m, const char *name, size_t from)
{
	size_t i;

	for (i = from; i < m->n_f; i++) {
		if (util_strcasecmp(m->f[i].name, name) == 0) {
			return i;
		}
	}
	return m->n_f;
}

static int
is_resent(const struct field *fl)
{
	return util_strncasecmp(fl->name, "Resent-", 7) == 0;
}

static size_t
first_resent(const struct message *m)
{
	size_t i;

	for (i = 0; i < m->n_f; i++) {
		if (is_resent(&m->f[i])) {
			return i;
		}
	}
	return m->n_f;
}

/* The first address of field i, heap-owned, or NULL. */
static char *
field_first_addr(const struct message *m, size_t i)
{
	struct buf v;
	struct addr_list l;
	char *ret = NULL;

	buf_init(&v, HEAD_MAX);
	addr_list_init(&l);
	if (message_header_value(m, i, &v, NULL) == ERR_OK &&
	    addr_parse_list(v.data, v.len, &l, NULL) == ERR_OK && l.n > 0) {
		ret = strdup(l.v[0].addr);
	}
	addr_list_release(&l);
	buf_release(&v);
	return ret;
}

static MUST_CHECK enum err
build_head(struct message *m, const struct buf *added, struct errinfo *reterr)
{
	size_t i;
	enum err rc = ERR_OK;

	buf_reset(&m->head);
	if (added != NULL) {
		rc = buf_append(&m->head, added->data, added->len);
	}
	for (i = 0; i < m->n_f && rc == ERR_OK; i++) {
		if (!m->f[i].removed) {
			rc = buf_append(&m->head, m->f[i].raw, m->f[i].len);
		}
	}
	if (rc == ERR_OK) {
		rc = buf_append(&m->head, "\r\n", 2);
	}
	if (rc != ERR_OK) {
		return errinfo_set(reterr, rc, "building the header block: %s",
			rc == ERR_LIMIT ? "too large" : "out of memory");
	}
	return ERR_OK;
}

enum err
message_reader_finish(struct message_reader *r, struct message **ret,
	struct errinfo *reterr)
{
	struct message *m;
	size_t i;
	enum err rc = ERR_OK;

	*ret = NULL;
	if (r->state != RD_DONE) {
		if (r->pending_cr) {
			r->pending_cr = 0;
			rc = end_line(r, reterr);
		} else if (r->state == RD_HEAD &&
		    (r->line.len > 0 || r->skip_line)) {
			rc = end_line(r, reterr);
		} else if (r->state == RD_BODY && !r->bol) {
			rc = end_line(r, reterr);
		}
	}
	if (rc == ERR_OK) {
		rc = flush_out(r, reterr);
	}
	m = r->m;
	if (rc == ERR_OK) {
		rc = build_head(m, NULL, reterr);
	}
	if (rc != ERR_OK) {
		message_reader_free(r);
		return rc;
	}
	/* cache the From address (of the first Resent- block, if any) */
	i = first_resent(m) < m->n_f ? find_field(m, "Resent-From", 0) :
	    m->n_f;
	if (i == m->n_f) {
		i = find_field(m, "From", 0);
	}
	if (i < m->n_f) {
		m->header_from = field_first_addr(m, i);
	}
	r->m = NULL;
	message_reader_free(r);
	*ret = m;
	return ERR_OK;
}

enum err
message_read(int fd, int ignore_dots, struct message **ret,
	struct errinfo *reterr)
{
	struct message_reader *r;
	char *chunk;
	int done = 0;
	enum err rc;

	*ret = NULL;
	chunk = malloc(IO_CHUNK);
	if (chunk == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	rc = message_reader_new(ignore_dots, &r, reterr);
	while (rc == ERR_OK && !done) {
		ssize_t got = read(fd, chunk, IO_CHUNK);

		if (got < 0 && errno == EINTR) {
			continue;
		}
		if (got < 0) {
			int e = errno;

			rc = errinfo_set(reterr, ERR_IO,
				"reading the message: %s", strerror(e));
			errinfo_set_errno(reterr, e);
			break;
		}
		if (got == 0) {
			break;
		}
		rc = message_reader_push(r, chunk, (size_t)got, &done, reterr);
	}
	free(chunk);
	if (rc != ERR_OK) {
		message_reader_free(r);
		return rc;
	}
	return message_reader_finish(r, ret, reterr);
}

void
message_free(struct message *m)
{
	size_t i;

	if (m == NULL) {
		return;
	}
	for (i = 0; i < m->n_f; i++) {
		free(m->f[i].raw);
		free(m->f[i].name);
	}
	free(m->f);
	free(m->header_from);
	buf_release(&m->head);
	if (m->body_fd >= 0) {
		close(m->body_fd);
	}
	free(m);
}

size_t
message_header_count(const struct message *m)
{
	return m->n_f;
}

const char *
message_header_name(const struct message *m, size_t i)
{
	return i < m->n_f ? m->f[i].name : NULL;
}

enum err
message_header_value(const struct message *m, size_t i, struct buf *out,
	struct errinfo *reterr)
{
	const struct field *fl;
	const char *p, *end;
	size_t start = out->len;
	enum err rc = ERR_OK;

	if (i >= m->n_f) {
		return errinfo_set(reterr, ERR_INTERNAL, "no header field %zu",
			i);
	}
	fl = &m->f[i];
	p = memchr(fl->raw, ':', fl->len);
	end = fl->raw + fl->len - 2;	/* the final CRLF */
	for (p++; p < end && rc == ERR_OK; p++) {
		if (*p == '\r' && p + 1 < end && p[1] == '\n') {
			p++;
			continue;
		}
		if (out->len == start && is_wsp(*p)) {
			continue;
		}
		rc = buf_putc(out, *p);
	}
	while (out->len > start && is_wsp(out->data[out->len - 1])) {
		buf_truncate(out, out->len - 1);
	}
	if (rc != ERR_OK) {
		return errinfo_set(reterr, rc, "header %s: value too long",
			fl->name);
	}
	return ERR_OK;
}

const char *
message_header_from(const struct message *m)
{
	return m->header_from;
}

int
message_is_8bit(const struct message *m)
{
	return m->is_8bit;
}

/* ---- message_prepare ---- */

struct prep {
	struct message *m;
	const struct message_opts *o;
	struct aliases *aliases;
	struct addr_list rcpts;		/* final, de-duplicated */
	char *sender;
	char *orig_sender;		/* a local -f that from_rewrite replaced */
	int smtputf8;
	struct errinfo *reterr;
};

static int local_looking(const char *addr, const char *hostname);

/* 0 when addr may go into MAIL FROM / RCPT TO, else the reason. */
static const char *
bad_env_addr(const char *addr, int *utf8)
{
	const unsigned char *p;

	if (addr[0] == '\0') {
		return "empty address";
	}
	for (p = (const unsigned char *)addr; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			return "control character";
		}
		if (*p == '<' || *p == '>') {
			return "'<' or '>' inside the address";
		}
		if (*p >= 0x80) {
			*utf8 = 1;
		}
	}
	return NULL;
}

static MUST_CHECK enum err
add_rcpt(struct prep *pp, const char *addr, enum err badcode,
	const char *what)
{
	const char *why;
	size_t i;

	why = bad_env_addr(addr, &pp->smtputf8);
	if (why != NULL) {
		return errinfo_set(pp->reterr, badcode,
			"%s: invalid recipient '%s': %s", what, addr, why);
	}
	for (i = 0; i < pp->rcpts.n; i++) {
		if (addr_equal(pp->rcpts.v[i].addr, addr)) {
			return ERR_OK;
		}
	}
	return addr_list_add(&pp->rcpts, NULL, addr, pp->reterr);
}

/* Run parsed addresses through the aliases and into the final list. */
static MUST_CHECK enum err
collect(struct prep *pp, const struct addr_list *l, enum err badcode,
	const char *what)
{
	size_t i, k;
	enum err rc = ERR_OK;

	for (i = 0; i < l->n && rc == ERR_OK; i++) {
		struct addr_list exp;

		if (pp->aliases == NULL || !addr_is_local(l->v[i].addr)) {
			rc = add_rcpt(pp, l->v[i].addr, badcode, what);
			continue;
		}
		addr_list_init(&exp);
		rc = aliases_expand(pp->aliases, l->v[i].addr, &exp,
			pp->reterr);
		for (k = 0; k < exp.n && rc == ERR_OK; k++) {
			rc = add_rcpt(pp, exp.v[k].addr, ERR_CONFIG,
				"aliases file");
		}
		addr_list_release(&exp);
	}
	return rc;
}

static MUST_CHECK enum err
recipients_from_args(struct prep *pp)
{
	size_t i;
	enum err rc = ERR_OK;

	for (i = 0; i < pp->o->n_rcpt_args && rc == ERR_OK; i++) {
		const char *arg = pp->o->rcpt_args[i];
		struct addr_list l;

		addr_list_init(&l);
		rc = addr_parse_list(arg, strlen(arg), &l, pp->reterr);
		if (rc == ERR_DATA) {
			errinfo_prefix(pp->reterr, "recipient '%.200s': ", arg);
			rc = errinfo_recode(pp->reterr, ERR_USAGE);
		}
		if (rc == ERR_OK) {
			rc = collect(pp, &l, ERR_USAGE, "command line");
		}
		addr_list_release(&l);
	}
	return rc;
}

static MUST_CHECK enum err
recipients_from_headers(struct prep *pp)
{
	static const char *const plain[] = { "To", "Cc", "Bcc" };
	static const char *const resent[] = {
		"Resent-To", "Resent-Cc", "Resent-Bcc"
	};
	const struct message *m = pp->m;
	const char *const *names = plain;
	size_t from = 0, to = m->n_f, i, k;
	struct buf v;
	enum err rc = ERR_OK;

	if (first_resent(m) < m->n_f) {
		/* only the first (newest) block of Resent- fields counts */
		names = resent;
		from = first_resent(m);
		for (to = from; to < m->n_f && is_resent(&m->f[to]); to++) {
			;
		}
	}
	buf_init(&v, HEAD_MAX);
	for (i = from; i < to && rc == ERR_OK; i++) {
		struct addr_list l;

		for (k = 0; k < 3; k++) {
			if (util_strcasecmp(m->f[i].name, names[k]) == 0) {
				break;
			}
		}
		if (k == 3) {
			continue;
		}
		buf_reset(&v);
		addr_list_init(&l);
		rc = message_header_value(m, i, &v, pp->reterr);
		if (rc == ERR_OK) {
			rc = addr_parse_list(v.data, v.len, &l, pp->reterr);
			if (rc == ERR_DATA) {
				errinfo_prefix(pp->reterr, "header %s: ",
					m->f[i].name);
			}
		}
		if (rc == ERR_OK) {
			rc = collect(pp, &l, ERR_DATA, m->f[i].name);
		}
		addr_list_release(&l);
	}
	buf_release(&v);
	return rc;
}

static int
has_wildcard(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* The first line of /etc/mailname, else the hostname. */
static MUST_CHECK enum err
append_mailname(struct buf *b, const char *hostname)
{
	FILE *f = fopen("/etc/mailname", "r");
	char line[256];

	if (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		size_t n = strcspn(line, "\r\n \t");

		fclose(f);
		if (n > 0) {
			return buf_append(b, line, n);
		}
		return buf_append_str(b, hostname);
	}
	if (f != NULL) {
		fclose(f);
	}
	return buf_append_str(b, hostname);
}

static MUST_CHECK enum err
expand_from(struct prep *pp, const char *tmpl, const char *hostname,
	char **ret)
{
	struct buf b;
	const char *p;
	enum err rc = ERR_OK;

	buf_init(&b, 4096);
	for (p = tmpl; *p != '\0' && rc == ERR_OK; p++) {
		if (*p != '%' || p[1] == '\0') {
			rc = buf_putc(&b, *p);
			continue;
		}
		p++;
		switch (*p) {
		case 'U': {
			const struct passwd *pw = getpwuid(geteuid());
			const char *u = pw != NULL ? pw->pw_name :
			    getenv("LOGNAME");

			rc = buf_append_str(&b, u != NULL ? u : "");
			break;
		}
		case 'H':
		case 'C':
			rc = buf_append_str(&b, hostname);
			break;
		case 'M':
			rc = append_mailname(&b, hostname);
			break;
		case 'F':
			rc = buf_append_str(&b, pp->m->header_from != NULL ?
			    pp->m->header_from : "");
			break;
		case '%':
			rc = buf_putc(&b, '%');
			break;
		default:
			rc = buf_putc(&b, '%');
			if (rc == ERR_OK) {
				rc = buf_putc(&b, *p);
			}
			break;
		}
	}
	if (rc != ERR_OK || (*ret = buf_take(&b)) == NULL) {
		buf_release(&b);
		return errinfo_set(pp->reterr, ERR_CONFIG,
			"account from '%.200s' is too long", tmpl);
	}
	buf_release(&b);
	return ERR_OK;
}

/* -f argument: "", "<>", "<a@b>", "a@b" or "Name <a@b>". */
static MUST_CHECK enum err
parse_sender_arg(struct prep *pp, const char *arg, char **ret)
{
	struct addr_list l;
	size_t n = strlen(arg);
	enum err rc;

	while (n > 0 && is_wsp(*arg)) {
		arg++;
		n--;
	}
	while (n > 0 && is_wsp(arg[n - 1])) {
		n--;
	}
	if (n == 0 || (n == 2 && memcmp(arg, "<>", 2) == 0)) {
		*ret = strdup("");
		return *ret != NULL ? ERR_OK :
		    errinfo_set(pp->reterr, ERR_NOMEM, "out of memory");
	}
	addr_list_init(&l);
	rc = addr_parse_list(arg, n, &l, pp->reterr);
	if (rc == ERR_OK && l.n != 1) {
		rc = errinfo_set(pp->reterr, ERR_USAGE,
			"not exactly one address");
	}
	if (rc == ERR_OK) {
		*ret = strdup(l.v[0].addr);
		if (*ret == NULL) {
			rc = errinfo_set(pp->reterr, ERR_NOMEM,
				"out of memory");
		}
	}
	addr_list_release(&l);
	if (rc == ERR_DATA || rc == ERR_USAGE) {
		errinfo_prefix(pp->reterr, "invalid envelope sender '%.*s': ",
			(int)(n > 200 ? 200 : n), arg);
		rc = errinfo_recode(pp->reterr, ERR_USAGE);
	}
	return rc;
}

static MUST_CHECK enum err
decide_sender(struct prep *pp, const char *hostname)
{
	const struct account *acc = pp->o->acc;
	const char *cand = pp->o->envelope_from;
	int usable = acc->from != NULL && acc->from[0] != '\0' &&
	    !has_wildcard(acc->from);
	enum err rc;
	const char *why;

	if (cand == NULL && pp->o->read_envelope_from) {
		cand = pp->m->header_from;
	}
	if (cand != NULL && (acc->allow_from_override || !usable)) {
		rc = parse_sender_arg(pp, cand, &pp->sender);
		if (rc != ERR_OK) {
			return rc;
		}
		if (pp->sender[0] == '\0') {
			return ERR_OK;
		}
		if (acc->from_rewrite && usable &&
		    local_looking(pp->sender, hostname)) {
			/* root, www-data@host: the account's address instead */
			struct buf q;

			buf_init(&q, HEAD_MAX);
			rc = buf_printf(&q, strchr(pp->sender, '@') != NULL ?
			    "%s" : "%s@%s", pp->sender, hostname);
			free(pp->sender);
			pp->sender = NULL;
			if (rc != ERR_OK) {
				buf_release(&q);
				return errinfo_set(pp->reterr, rc,
					"envelope sender too long");
			}
			pp->orig_sender = buf_take(&q);
			if (pp->orig_sender == NULL) {
				return errinfo_set(pp->reterr, ERR_NOMEM,
					"out of memory");
			}
			goto account_from;
		}
		why = bad_env_addr(pp->sender, &pp->smtputf8);
		if (why != NULL) {
			return errinfo_set(pp->reterr, ERR_USAGE,
				"invalid envelope sender '%s': %s",
				pp->sender, why);
		}
		return ERR_OK;
	}
	if (!usable) {
		return errinfo_set(pp->reterr, ERR_CONFIG,
			"no envelope sender: set 'from' in account %s or pass "
			"-f ADDR", acc->name != NULL ? acc->name : "default");
	}
account_from:
	rc = expand_from(pp, acc->from, hostname, &pp->sender);
	if (rc != ERR_OK) {
		return rc;
	}
	why = bad_env_addr(pp->sender, &pp->smtputf8);
	if (why != NULL) {
		return errinfo_set(pp->reterr, ERR_CONFIG,
			"account %s: invalid from '%s': %s",
			acc->name != NULL ? acc->name : "default", pp->sender,
			why);
	}
	return ERR_OK;
}

static int
needs_quotes(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s != ' ' && !((unsigned char)*s >= 0x80) &&
		    strchr("()<>[]:;@\\,.\"", *s) != NULL) {
			return 1;
		}
	}
	return 0;
}

static int
is_ascii(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s >= 0x80) {
			return 0;
		}
	}
	return 1;
}

/* Append a display name as a phrase: atoms, a quoted string, or RFC 2047
 * encoded words (UTF-8, base64) when it is not ASCII. */
static MUST_CHECK enum err
append_phrase(struct buf *b, const char *name)
{
	size_t len = strlen(name), i = 0;
	enum err rc = ERR_OK;

	if (is_ascii(name)) {
		if (!needs_quotes(name)) {
			return buf_append(b, name, len);
		}
		rc = buf_putc(b, '"');
		for (; name[i] != '\0' && rc == ERR_OK; i++) {
			if (name[i] == '"' || name[i] == '\\') {
				rc = buf_putc(b, '\\');
			}
			if (rc == ERR_OK) {
				rc = buf_putc(b, name[i]);
			}
		}
		return rc == ERR_OK ? buf_putc(b, '"') : rc;
	}
	while (i < len && rc == ERR_OK) {
		/* at most 45 bytes per word (60 base64 chars), whole
		 * UTF-8 sequences only */
		size_t n = len - i > 45 ? 45 : len - i;

		while (i + n < len && n > 1 &&
		    ((unsigned char)name[i + n] & 0xc0) == 0x80) {
			n--;
		}
		if (i > 0) {
			rc = buf_putc(b, ' ');
		}
		if (rc == ERR_OK) {
			rc = buf_append_str(b, "=?UTF-8?B?");
		}
		if (rc == ERR_OK) {
			rc = util_base64_encode(b, name + i, n);
		}
		if (rc == ERR_OK) {
			rc = buf_append_str(b, "?=");
		}
		i += n;
	}
	return rc;
}

static MUST_CHECK enum err
append_mailbox(struct buf *b, const char *name, const char *addr)
{
	enum err rc;

	if (name == NULL || name[0] == '\0') {
		return buf_append_str(b, addr);
	}
	rc = append_phrase(b, name);
	if (rc == ERR_OK) {
		rc = buf_printf(b, " <%s>", addr);
	}
	return rc;
}

static void
remove_fields(struct message *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->n_f; i++) {
		if (util_strcasecmp(m->f[i].name, name) == 0) {
			m->f[i].removed = 1;
		}
	}
}

static int
has_field(const struct message *m, const char *name)
{
	return find_field(m, name, 0) < m->n_f;
}

static int
local_looking(const char *addr, const char *hostname)
{
	const char *d = addr_domain(addr);

	return d == NULL || util_strcasecmp(d, "localhost") == 0 ||
	    util_strcasecmp(d, "localhost.localdomain") == 0 ||
	    util_strcasecmp(d, hostname) == 0;
}

/*
 * from_rewrite_header: keep the sender that a rewrite replaced, as
 * X-Original-From: or Sender: (not when the message has a Sender: of its
 * own: one is the most a message may have).
 */
static MUST_CHECK enum err
add_original(struct prep *pp, struct buf *added, const char *value,
	size_t len)
{
	enum from_original how = pp->o->acc->from_rewrite_header;
	const char *field = how == FROM_ORIG_SENDER ? "Sender" :
	    "X-Original-From";
	enum err rc;

	if (how == FROM_ORIG_OFF || has_field(pp->m, field)) {
		return ERR_OK;
	}
	rc = buf_printf(added, "%s: ", field);
	if (rc == ERR_OK) {
		rc = buf_append(added, value, len);
	}
	return rc == ERR_OK ? buf_append_str(added, "\r\n") : rc;
}

static MUST_CHECK enum err
add_from(struct prep *pp, struct buf *added, const char *hostname)
{
	const struct account *acc = pp->o->acc;
	struct message *m = pp->m;
	const char *name = pp->o->full_name != NULL ? pp->o->full_name :
	    acc->from_full_name;
	struct buf v;
	struct addr_list l;
	size_t i;
	enum err rc;

	if (name != NULL) {
		for (i = 0; name[i] != '\0'; i++) {
			if ((unsigned char)name[i] < 0x20 && name[i] != '\t') {
				return errinfo_set(pp->reterr, ERR_USAGE,
					"full name contains a control "
					"character");
			}
		}
	}
	if (pp->sender[0] == '\0' || acc->set_from_header == HDR_OFF) {
		return ERR_OK;
	}
	if (acc->set_from_header == HDR_ON || !has_field(m, "From")) {
		int had_from = has_field(m, "From");

		remove_fields(m, "From");
		rc = buf_append_str(added, "From: ");
		if (rc == ERR_OK) {
			rc = append_mailbox(added, name, pp->sender);
		}
		if (rc == ERR_OK) {
			rc = buf_append_str(added, "\r\n");
		}
		if (rc == ERR_OK && !had_from && pp->orig_sender != NULL) {
			rc = add_original(pp, added, pp->orig_sender,
				strlen(pp->orig_sender));
		}
		return rc;
	}
	if (!acc->from_rewrite) {
		return ERR_OK;
	}
	/* from_rewrite: a local-looking From: gets the sender's address */
	i = find_field(m, "From", 0);
	buf_init(&v, HEAD_MAX);
	addr_list_init(&l);
	rc = message_header_value(m, i, &v, NULL);
	if (rc == ERR_OK && addr_parse_list(v.data, v.len, &l, NULL) ==
	    ERR_OK && l.n == 1 && local_looking(l.v[0].addr, hostname)) {
		remove_fields(m, "From");
		rc = buf_append_str(added, "From: ");
		if (rc == ERR_OK) {
			rc = append_mailbox(added, l.v[0].name != NULL ?
			    l.v[0].name : name, pp->sender);
		}
		if (rc == ERR_OK) {
			rc = buf_append_str(added, "\r\n");
		}
		if (rc == ERR_OK) {
			rc = add_original(pp, added, v.data, v.len);
		}
	}
	addr_list_release(&l);
	buf_release(&v);
	return rc;
}

static MUST_CHECK enum err
add_to(struct prep *pp, struct buf *added)
{
	enum header_policy pol = pp->o->acc->set_to_header;
	size_t i, linelen;
	enum err rc;

	if (pol != HDR_ON && pol != HDR_UNDISCLOSED) {
		return ERR_OK;
	}
	remove_fields(pp->m, "To");
	remove_fields(pp->m, "Cc");
	remove_fields(pp->m, "Bcc");
	if (pol == HDR_UNDISCLOSED) {
		return buf_append_str(added, "To: undisclosed-recipients:;\r\n");
	}
	rc = buf_append_str(added, "To:");
	linelen = 3;
	for (i = 0; i < pp->rcpts.n && rc == ERR_OK; i++) {
		size_t n = strlen(pp->rcpts.v[i].addr);

		if (i > 0) {
			rc = buf_putc(added, ',');
			linelen++;
		}
		if (rc == ERR_OK && i > 0 && linelen + n > 76) {
			rc = buf_append_str(added, "\r\n");
			linelen = 0;
		}
		if (rc == ERR_OK) {
			rc = buf_printf(added, " %s", pp->rcpts.v[i].addr);
			linelen += n + 1;
		}
	}
	return rc == ERR_OK ? buf_append_str(added, "\r\n") : rc;
}

static MUST_CHECK enum err
add_date(struct prep *pp, struct buf *added)
{
	static const char *const days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	enum header_policy pol = pp->o->acc->set_date_header;
	time_t now = pp->o->now;
	struct tm tm;
	long off;

	if (pol == HDR_OFF || (pol != HDR_ON && has_field(pp->m, "Date"))) {
		return ERR_OK;
	}
	remove_fields(pp->m, "Date");
	if (localtime_r(&now, &tm) == NULL) {
		return errinfo_set(pp->reterr, ERR_INTERNAL,
			"cannot convert the time for the Date header");
	}
	off = tm.tm_gmtoff / 60;
	return buf_printf(added, "Date: %s, %02d %s %04d %02d:%02d:%02d "
		"%c%02ld%02ld\r\n", days[tm.tm_wday % 7], tm.tm_mday,
		months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
		tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+',
		(off < 0 ? -off : off) / 60, (off < 0 ? -off : off) % 60);
}

static MUST_CHECK enum err
add_msgid(struct prep *pp, struct buf *added, const char *hostname)
{
	enum header_policy pol = pp->o->acc->set_msgid_header;
	const char *dom = pp->o->acc->domain;
	static unsigned long counter;
	unsigned char rnd[8];
	unsigned long long r = 0;
	time_t now = pp->o->now;
	struct tm tm;
	size_t i;

	if (pol == HDR_OFF ||
	    (pol != HDR_ON && has_field(pp->m, "Message-ID"))) {
		return ERR_OK;
	}
	remove_fields(pp->m, "Message-ID");
	if (dom == NULL || dom[0] == '\0' ||
	    util_strcasecmp(dom, "localhost") == 0) {
		dom = addr_domain(pp->sender);
	}
	if (dom == NULL || dom[0] == '\0') {
		dom = hostname;
	}
	if (getentropy(rnd, sizeof(rnd)) != 0) {
		/* unique enough without entropy: pid, time, a counter */
		r = ((unsigned long long)getpid() << 32) ^
		    (unsigned long long)now ^ ++counter;
	} else {
		for (i = 0; i < sizeof(rnd); i++) {
			r = (r << 8) | rnd[i];
		}
	}
	if (gmtime_r(&now, &tm) == NULL) {
		memset(&tm, 0, sizeof(tm));
	}
	return buf_printf(added, "Message-ID: <%04d%02d%02d%02d%02d%02d.%016llx"
		"@%s>\r\n", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		tm.tm_hour, tm.tm_min, tm.tm_sec, r, dom);
}

/* DSN values: checked, upper-cased copies (NULL stays NULL). */
static MUST_CHECK enum err
dsn_copy(struct prep *pp, const char *v, int is_notify, char **ret)
{
	size_t i;
	char *c;

	*ret = NULL;
	if (v == NULL) {
		return ERR_OK;
	}
	c = strdup(v);
	if (c == NULL) {
		return errinfo_set(pp->reterr, ERR_NOMEM, "out of memory");
	}
	for (i = 0; c[i] != '\0'; i++) {
		if (c[i] >= 'a' && c[i] <= 'z') {
			c[i] = (char)(c[i] - 'a' + 'A');
		}
		if (!((c[i] >= 'A' && c[i] <= 'Z') || c[i] == ',')) {
			break;
		}
	}
	if (c[i] != '\0' || i == 0 || (!is_notify && strcmp(c, "HDRS") != 0 &&
	    strcmp(c, "FULL") != 0)) {
		free(c);
		return errinfo_set(pp->reterr, ERR_USAGE, "invalid DSN %s "
			"value '%.100s'", is_notify ? "notify" : "return", v);
	}
	*ret = c;
	return ERR_OK;
}

/* ENVID as xtext (RFC 3461): '+', '=' and bytes outside 33..126 as +XX. */
static MUST_CHECK enum err
envid_copy(struct prep *pp, const char *v, char **ret)
{
	struct buf b;
	const unsigned char *p;
	enum err rc = ERR_OK;

	*ret = NULL;
	if (v == NULL) {
		return ERR_OK;
	}
	if (strlen(v) > 100) {
		return errinfo_set(pp->reterr, ERR_USAGE,
			"DSN envelope id longer than 100 characters");
	}
	buf_init(&b, 512);
	for (p = (const unsigned char *)v; *p != '\0' && rc == ERR_OK; p++) {
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=') {
			rc = buf_printf(&b, "+%02X", *p);
		} else {
			rc = buf_putc(&b, (char)*p);
		}
	}
	if (rc != ERR_OK || (*ret = buf_take(&b)) == NULL) {
		buf_release(&b);
		return errinfo_set(pp->reterr, ERR_NOMEM, "out of memory");
	}
	buf_release(&b);
	return ERR_OK;
}

static MUST_CHECK enum err
fill_envelope(struct prep *pp, struct envelope *env)
{
	const struct message_opts *o = pp->o;
	const struct account *acc = o->acc;
	size_t i;
	enum err rc;

	memset(env, 0, sizeof(*env));
	env->rcpts = calloc(pp->rcpts.n, sizeof(char *));
	if (env->rcpts == NULL) {
		return errinfo_set(pp->reterr, ERR_NOMEM, "out of memory");
	}
	/* move the strings over */
	for (i = 0; i < pp->rcpts.n; i++) {
		env->rcpts[i] = pp->rcpts.v[i].addr;
		pp->rcpts.v[i].addr = NULL;
	}
	env->n_rcpts = pp->rcpts.n;
	env->from = pp->sender;
	pp->sender = NULL;
	env->body_8bit = pp->m->is_8bit;
	env->smtputf8 = pp->smtputf8;
	rc = dsn_copy(pp, o->dsn_notify != NULL ? o->dsn_notify :
	    acc->dsn_notify, 1, &env->dsn_notify);
	if (rc == ERR_OK) {
		rc = dsn_copy(pp, o->dsn_return != NULL ? o->dsn_return :
		    acc->dsn_return, 0, &env->dsn_return);
	}
	if (rc == ERR_OK) {
		rc = envid_copy(pp, o->dsn_envid, &env->dsn_envid);
	}
	return rc;
}

static void
prep_release(struct prep *pp)
{
	/* fill_envelope may have moved addresses out, leaving NULLs */
	addr_list_release(&pp->rcpts);
	aliases_free(pp->aliases);
	free(pp->sender);
	free(pp->orig_sender);
}

enum err
message_prepare(struct message *m, const struct message_opts *o,
	struct envelope *ret_env, struct errinfo *reterr)
{
	struct prep pp;
	struct buf added;
	char hostbuf[256];
	const char *hostname = o->hostname;
	enum err rc = ERR_OK;

	memset(ret_env, 0, sizeof(*ret_env));
	if (o->acc == NULL) {
		return errinfo_set(reterr, ERR_INTERNAL,
			"message_prepare without an account");
	}
	if (hostname == NULL) {
		if (gethostname(hostbuf, sizeof(hostbuf)) != 0) {
			util_strlcpy(hostbuf, "localhost", sizeof(hostbuf));
		}
		hostbuf[sizeof(hostbuf) - 1] = '\0';
		hostname = hostbuf;
	}
	memset(&pp, 0, sizeof(pp));
	pp.m = m;
	pp.o = o;
	pp.reterr = reterr;
	addr_list_init(&pp.rcpts);
	buf_init(&added, HEAD_MAX);

	if (o->acc->aliases != NULL && o->acc->aliases[0] != '\0') {
		rc = aliases_load(o->acc->aliases, &pp.aliases, reterr);
	}
	if (rc == ERR_OK) {
		rc = recipients_from_args(&pp);
	}
	if (rc == ERR_OK && o->read_recipients) {
		rc = recipients_from_headers(&pp);
	}
	if (rc == ERR_OK && pp.rcpts.n == 0) {
		rc = errinfo_set(reterr, ERR_USAGE, "no recipients found");
	}
	if (rc == ERR_OK) {
		rc = decide_sender(&pp, hostname);
	}
	/* header edits, in msmtp's order of the added fields */
	if (rc == ERR_OK) {
		rc = add_from(&pp, &added, hostname);
	}
	if (rc == ERR_OK) {
		rc = add_to(&pp, &added);
	}
	if (rc == ERR_OK) {
		rc = add_date(&pp, &added);
	}
	if (rc == ERR_OK) {
		rc = add_msgid(&pp, &added, hostname);
	}
	if (rc == ERR_LIMIT || rc == ERR_NOMEM) {
		/* from the buffer calls, which leave reterr alone */
		rc = errinfo_set(reterr, rc, "preparing the message: %s",
			rc == ERR_LIMIT ? "header block too large" :
			"out of memory");
	}
	if (rc == ERR_OK && o->acc->remove_bcc_headers) {
		remove_fields(m, "Bcc");
		remove_fields(m, "Resent-Bcc");
	}
	if (rc == ERR_OK) {
		rc = build_head(m, &added, reterr);
	}
	if (rc == ERR_OK) {
		rc = fill_envelope(&pp, ret_env);
		if (rc != ERR_OK) {
			envelope_release(ret_env);
		}
	}
	buf_release(&added);
	prep_release(&pp);
	return rc;
}

uint64_t
message_wire_size(const struct message *m)
{
	return (uint64_t)m->head.len + m->body_len;
}

enum err
message_read_wire(struct message *m, uint64_t offset, void *p, size_t cap,
	size_t *ret_n, struct errinfo *reterr)
{
	char *dst = p;
	size_t n = 0;

	*ret_n = 0;
	if (offset < m->head.len) {
		size_t k = m->head.len - (size_t)offset;

		if (k > cap) {
			k = cap;
		}
		memcpy(dst, m->head.data + offset, k);
		n = k;
		offset += k;
	}
	while (n < cap && offset >= m->head.len &&
	    offset - m->head.len < m->body_len) {
		uint64_t boff = offset - m->head.len;
		uint64_t left = m->body_len - boff;
		size_t want = cap - n;
		ssize_t got;

		if ((uint64_t)want > left) {
			want = (size_t)left;
		}
		got = pread(m->body_fd, dst + n, want, (off_t)boff);
		if (got < 0 && errno == EINTR) {
			continue;
		}
		if (got <= 0) {
			int e = got < 0 ? errno : 0;

			errinfo_set(reterr, ERR_IO, "reading the spool file: "
				"%s", got < 0 ? strerror(e) : "truncated");
			errinfo_set_errno(reterr, e);
			return ERR_IO;
		}
		n += (size_t)got;
		offset += (uint64_t)got;
	}
	*ret_n = n;
	return ERR_OK;
}

enum err
message_write_wire(struct message *m, int fd, struct errinfo *reterr)
{
	char *chunk = malloc(IO_CHUNK);
	uint64_t off = 0;
	size_t n;
	enum err rc;

	if (chunk == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	for (;;) {
		rc = message_read_wire(m, off, chunk, IO_CHUNK, &n, reterr);
		if (rc != ERR_OK || n == 0) {
			break;
		}
		if (util_write_all(fd, chunk, n) != 0) {
			int e = errno;

			rc = errinfo_set(reterr, ERR_IO, "writing the message: "
				"%s", strerror(e));
			errinfo_set_errno(reterr, e);
			break;
		}
		off += n;
	}
	free(chunk);
	return rc;
}

void
envelope_release(struct envelope *env)
{
	size_t i;

	if (env == NULL) {
		return;
	}
	free(env->from);
	for (i = 0; i < env->n_rcpts; i++) {
		free(env->rcpts[i]);
	}
	free(env->rcpts);
	free(env->dsn_notify);
	free(env->dsn_return);
	free(env->dsn_envid);
	memset(env, 0, sizeof(*env));
}
