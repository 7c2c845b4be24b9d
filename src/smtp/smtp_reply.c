/*
 * smtp_reply.c - strict SMTP reply parser; see smtp_reply.h.
 *
 * Wire format (RFC 5321 section 4.2):
 *   Reply-line = *( Reply-code "-" [ textstring ] CRLF )
 *                   Reply-code [ SP textstring ] CRLF
 * Enhanced status code (RFC 3463): class "." subject "." detail, class one
 * of 2/4/5, subject and detail 1-3 digits, followed by SP or end of text.
 */
#include "smtp_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* How much of an offending line an error message shows. */
#define SHOW_MAX (64 * 1024)

void
smtp_reply_init(struct smtp_reply *r)
{
	r->code = 0;
	r->enhanced[0] = '\0';
	r->complete = 0;
	r->n_lines = 0;
	r->starts = NULL;
	r->n_cap = 0;
	buf_init(&r->text, SMTP_REPLY_TEXT_MAX);
}

void
smtp_reply_release(struct smtp_reply *r)
{
	if (r == NULL) {
		return;
	}
	buf_release(&r->text);
	free(r->starts);
	r->starts = NULL;
	r->n_cap = 0;
	r->code = 0;
	r->enhanced[0] = '\0';
	r->complete = 0;
	r->n_lines = 0;
}

void
smtp_reply_reset(struct smtp_reply *r)
{
	buf_reset(&r->text);
	r->code = 0;
	r->enhanced[0] = '\0';
	r->complete = 0;
	r->n_lines = 0;
}

/* The whole reply is over SMTP_REPLY_TEXT_MAX: the server is broken. */
static MUST_CHECK enum err
too_long(struct smtp_reply *r, struct errinfo *reterr)
{
	size_t lines = r->n_lines;
	int code = r->code;

	smtp_reply_reset(r);
	return errinfo_set(reterr, ERR_PROTO, "invalid reply from server: "
		"%d reply longer than %d bytes in total (%zu lines read)",
		code, SMTP_REPLY_TEXT_MAX, lines);
}

static MUST_CHECK enum err
bad_line(struct smtp_reply *r, const char *why, const char *line, size_t len,
	struct errinfo *reterr)
{
	struct buf show;
	enum err e;

	buf_init(&show, SHOW_MAX * 4 + 16);
	if (util_escape_ctl(&show, line, len < SHOW_MAX ? len : SHOW_MAX) !=
	    ERR_OK) {
		buf_reset(&show);	/* no memory: the message without it */
	}
	e = errinfo_set(reterr, ERR_PROTO, "invalid reply from server (%s): "
		"'%s%s'", why, buf_cstr(&show), len > SHOW_MAX ? "..." : "");
	buf_release(&show);
	smtp_reply_reset(r);
	return e;
}

/* Length of an enhanced status code at the start of s, 0 when none. */
static size_t
enhanced_len(const char *s, size_t n, char klass)
{
	size_t i = 0;
	int part;

	if (n < 5 || s[0] != klass || s[1] != '.') {
		return 0;
	}
	i = 2;
	for (part = 0; part < 2; part++) {
		size_t digits = 0;

		while (i < n && s[i] >= '0' && s[i] <= '9' && digits < 4) {
			i++;
			digits++;
		}
		if (digits == 0 || digits > 3) {
			return 0;
		}
		if (part == 0) {
			if (i >= n || s[i] != '.') {
				return 0;
			}
			i++;
		}
	}
	if (i < n && s[i] != ' ') {
		return 0;
	}
	return i;
}

enum err
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
	int parse_enhanced, int *ret_complete, struct errinfo *reterr)
{
	int code;
	int last;
	size_t i;
	enum err e;

	if (r->complete) {
		smtp_reply_reset(r);
	}
	if (len > SMTP_REPLY_LINE_MAX) {
		return bad_line(r, "line longer than 65536 bytes", line, len,
			reterr);
	}
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '5' || line[2] < '0' || line[2] > '9') {
		return bad_line(r, "no reply code", line, len, reterr);
	}
	if (len > 3 && line[3] != ' ' && line[3] != '-') {
		return bad_line(r, "bad separator after the code", line, len,
			reterr);
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			return bad_line(r, "control character", line, len,
				reterr);
		}
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->n_lines > 0 && code != r->code) {
		return bad_line(r, "code differs from the previous line", line,
			len, reterr);
	}
	if (r->n_lines >= r->n_cap) {
		/* every line takes 4 bytes of text at least: bounded by it */
		size_t cap = r->n_cap == 0 ? 16 : r->n_cap * 2;
		size_t *p;

		if (cap > SMTP_REPLY_TEXT_MAX / 4 + 1) {
			cap = SMTP_REPLY_TEXT_MAX / 4 + 1;
		}
		if (r->n_lines >= cap) {
			return too_long(r, reterr);
		}
		p = realloc(r->starts, cap * sizeof(*p));
		if (p == NULL) {
			smtp_reply_reset(r);
			return errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
		r->starts = p;
		r->n_cap = cap;
	}
	last = len == 3 || line[3] == ' ';

	e = ERR_OK;
	if (r->n_lines > 0) {
		e = buf_putc(&r->text, '\n');
	}
	if (e == ERR_OK) {
		r->starts[r->n_lines] = r->text.len;
		e = buf_append(&r->text, line, len);
	}
	if (e != ERR_OK) {
		if (e == ERR_LIMIT) {
			return too_long(r, reterr);
		}
		smtp_reply_reset(r);
		return errinfo_set(reterr, e, "out of memory");
	}
	if (r->n_lines == 0) {
		r->code = code;
		if (parse_enhanced && len > 4) {
			size_t el = enhanced_len(line + 4, len - 4, line[0]);

			if (el > 0 && el < sizeof(r->enhanced)) {
				memcpy(r->enhanced, line + 4, el);
				r->enhanced[el] = '\0';
			}
		}
	}
	r->n_lines++;
	r->complete = last;
	if (ret_complete != NULL) {
		*ret_complete = last;
	}
	return ERR_OK;
}

const char *
smtp_reply_line(const struct smtp_reply *r, size_t i, size_t *ret_len)
{
	size_t start, end;

	if (i >= r->n_lines) {
		return NULL;
	}
	start = r->starts[i];
	end = i + 1 < r->n_lines ? r->starts[i + 1] - 1 : r->text.len;
	if (end - start <= 4) {
		*ret_len = 0;
		return r->text.data + end;
	}
	*ret_len = end - start - 4;
	return r->text.data + start + 4;
}

enum err
smtp_reply_format(const struct smtp_reply *r, struct buf *out)
{
	size_t i;
	enum err e = ERR_OK;

	for (i = 0; i < r->n_lines && e == ERR_OK; i++) {
		size_t start = r->starts[i];
		size_t end = i + 1 < r->n_lines ? r->starts[i + 1] - 1 :
			r->text.len;

		if (i > 0) {
			e = buf_append_str(out, " / ");
		}
		if (e == ERR_OK) {
			e = util_escape_ctl(out, r->text.data + start,
				end - start);
		}
	}
	return e;
}
