/*
 * message.c - reading the message: spooling, parsing its header block, and
 * the wire form (semantics in message.h; message_prepare.c rewrites the
 * header block and decides the envelope).
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
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "aliases.h"
#include "message.h"
#include "message_int.h"
#include "util.h"

#define IO_CHUNK (64 * 1024)

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

int
msg_is_wsp(char c)
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
	if (msg_is_wsp(s[0])) {
		return have_fields ? LINE_CONT : LINE_OTHER;
	}
	while (i < n && (unsigned char)s[i] >= 33 &&
	    (unsigned char)s[i] <= 126 && s[i] != ':') {
		i++;
	}
	for (j = i; j < n && msg_is_wsp(s[j]); j++) {
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
	buf_init(&path, PATH_MAX);
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
size_t
msg_find_field(const struct message *m, const char *name, size_t from)
{
	size_t i;

	for (i = from; i < m->n_f; i++) {
		if (util_strcasecmp(m->f[i].name, name) == 0) {
			return i;
		}
	}
	return m->n_f;
}

int
msg_is_resent(const struct field *fl)
{
	return util_strncasecmp(fl->name, "Resent-", 7) == 0;
}

size_t
msg_first_resent(const struct message *m)
{
	size_t i;

	for (i = 0; i < m->n_f; i++) {
		if (msg_is_resent(&m->f[i])) {
			return i;
		}
	}
	return m->n_f;
}

/* The first address of field i, heap-owned, or NULL. */
char *
msg_field_first_addr(const struct message *m, size_t i)
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

enum err
msg_build_head(struct message *m, const struct buf *added, struct errinfo *reterr)
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
		rc = msg_build_head(m, NULL, reterr);
	}
	if (rc != ERR_OK) {
		message_reader_free(r);
		return rc;
	}
	/* cache the From address (of the first Resent- block, if any) */
	i = msg_first_resent(m) < m->n_f ? msg_find_field(m, "Resent-From", 0) :
	    m->n_f;
	if (i == m->n_f) {
		i = msg_find_field(m, "From", 0);
	}
	if (i < m->n_f) {
		m->header_from = msg_field_first_addr(m, i);
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
		if (out->len == start && msg_is_wsp(*p)) {
			continue;
		}
		rc = buf_putc(out, *p);
	}
	while (out->len > start && msg_is_wsp(out->data[out->len - 1])) {
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
