/*
 * smtp_reply.h - strict parser for SMTP replies (RFC 5321 section 4.2,
 * enhanced status codes RFC 2034/3463).
 *
 * A reply is one or more lines "NNN-text" ended by a line "NNN text" (or a
 * bare "NNN").  Lines are pushed one at a time, without their CRLF, with
 * smtp_reply_feed(); the reply is complete when the last line arrives.
 *
 * Validation is strict: three digits, first 2-5 and second 0-5, then SP,
 * '-' or end of line; every line of a reply carries the same code; no
 * control characters except TAB; at most SMTP_REPLY_LINE_MAX bytes per line
 * and SMTP_REPLY_TEXT_MAX bytes for the whole reply, in any number of lines
 * (a 200-line EHLO reply is fine; the size is what is bounded, and the
 * line offsets grow with the text).  A violation is ERR_PROTO and the
 * message shows the offending line (control bytes escaped as \xNN).
 *
 * The struct is embedded by its owner (the SMTP engine); read its fields,
 * never write them.  smtp_reply_release() frees the memory.
 */
#ifndef OASMTP_SMTP_REPLY_H
#define OASMTP_SMTP_REPLY_H

#include <stddef.h>

#include "buf.h"
#include "err.h"

#define SMTP_REPLY_LINE_MAX BUF_LINE_MAX	/* 64 KiB per line */
#define SMTP_REPLY_TEXT_MAX (256 * 1024)	/* all lines together */

struct smtp_reply {
	int code;		/* 0 until the first line was parsed */
	char enhanced[16];	/* "5.1.1" from the first line, or "" */
	int complete;		/* the last line has been seen */
	size_t n_lines;
	/* the lines as received (code included), separated by '\n' */
	struct buf text;
	size_t *starts;		/* offset of each line (heap, n_cap of them) */
	size_t n_cap;
};

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_release(struct smtp_reply *r);

/* Forget the current reply (keeping memory) to parse the next one. */
void smtp_reply_reset(struct smtp_reply *r);

/*
 * Parse one line (no CRLF) into r, starting a new reply when r is complete.
 * With parse_enhanced set (the server advertised ENHANCEDSTATUSCODES) an
 * enhanced code at the start of the first line's text is recorded; its class
 * must match the reply code's first digit.  *ret_complete is set to 1 when
 * this line ends the reply.  Errors: ERR_PROTO (syntax, code mismatch, a
 * line or the whole reply too long), ERR_NOMEM.  After an error r is reset.
 */
MUST_CHECK enum err smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
	int parse_enhanced, int *ret_complete, struct errinfo *reterr);

/*
 * Line i (0-based) without its "NNN-" / "NNN " prefix, and its length.
 * Borrowed: valid until the next feed or reset.  NULL when i is out of range.
 */
const char *smtp_reply_line(const struct smtp_reply *r, size_t i,
	size_t *ret_len);

/*
 * Append the reply for an error message or a log: the lines as received,
 * joined by " / ", control bytes escaped.
 */
MUST_CHECK enum err smtp_reply_format(const struct smtp_reply *r, struct buf *out);

#endif
