/* err.c - error codes, detail records and the exit-code table. */
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

static const struct {
	const char *name;
	int exit_code;
} table[ERR_MAX] = {
	[ERR_OK] = { "ERR_OK", EX_OK },
	[ERR_NOMEM] = { "ERR_NOMEM", EX_SOFTWARE },
	[ERR_INTERNAL] = { "ERR_INTERNAL", EX_SOFTWARE },
	[ERR_USAGE] = { "ERR_USAGE", EX_USAGE },
	[ERR_DATA] = { "ERR_DATA", EX_DATAERR },
	[ERR_CONFIG] = { "ERR_CONFIG", EX_CONFIG },
	[ERR_IO] = { "ERR_IO", EX_IOERR },
	[ERR_LIMIT] = { "ERR_LIMIT", EX_DATAERR },
	[ERR_NET] = { "ERR_NET", EX_TEMPFAIL },
	[ERR_TIMEOUT] = { "ERR_TIMEOUT", EX_TEMPFAIL },
	[ERR_TLS] = { "ERR_TLS", EX_TEMPFAIL },
	[ERR_PROTO] = { "ERR_PROTO", EX_PROTOCOL },
	[ERR_SMTP_TEMP] = { "ERR_SMTP_TEMP", EX_TEMPFAIL },
	[ERR_SMTP_PERM] = { "ERR_SMTP_PERM", EX_UNAVAILABLE },
	[ERR_RCPT_UNKNOWN] = { "ERR_RCPT_UNKNOWN", EX_NOUSER },
	[ERR_AUTH] = { "ERR_AUTH", EX_NOPERM },
	[ERR_TOKEN_TEMP] = { "ERR_TOKEN_TEMP", EX_TEMPFAIL },
	[ERR_REAUTH] = { "ERR_REAUTH", EX_NOPERM },
	[ERR_NOTSUPP] = { "ERR_NOTSUPP", EX_UNAVAILABLE },
	[ERR_NOHOST] = { "ERR_NOHOST", EX_NOHOST },
};

void
errinfo_init(struct errinfo *ei)
{
	if (ei == NULL) {
		return;
	}
	ei->code = ERR_OK;
	ei->smtp_code = 0;
	ei->enhanced[0] = '\0';
	ei->sys_errno = 0;
	ei->msg[0] = '\0';
	ei->full = NULL;
}

void
errinfo_release(struct errinfo *ei)
{
	if (ei == NULL) {
		return;
	}
	free(ei->full);
	errinfo_init(ei);
}

/* End a cut string of size bytes (n wanted) with "...". */
static void
mark_truncated(char *buf, size_t size, size_t n)
{
	if (n >= size && size > 4) {
		memcpy(buf + size - 4, "...", 4);
	}
}

/*
 * Make text (n bytes, NUL-terminated) the message: msg gets it cut to
 * ERRINFO_MSG_MAX, full a whole copy when it does not fit (cut to
 * ERRINFO_TEXT_MAX).  Without memory only the cut msg is kept.
 */
static void
set_text(struct errinfo *ei, const char *text, size_t n)
{
	size_t keep = n < sizeof(ei->msg) ? n : sizeof(ei->msg) - 1;

	free(ei->full);
	ei->full = NULL;
	memcpy(ei->msg, text, keep);
	ei->msg[keep] = '\0';
	mark_truncated(ei->msg, sizeof(ei->msg), n);
	if (n < sizeof(ei->msg)) {
		return;
	}
	keep = n < ERRINFO_TEXT_MAX ? n : ERRINFO_TEXT_MAX - 1;
	ei->full = malloc(keep + 1);
	if (ei->full == NULL) {
		return;
	}
	memcpy(ei->full, text, keep);
	ei->full[keep] = '\0';
	mark_truncated(ei->full, ERRINFO_TEXT_MAX, n);
}

/* Format into a heap string of at most ERRINFO_TEXT_MAX bytes. */
static char *
format_text(size_t *ret_n, const char *fmt, va_list ap)
{
	char *text = malloc(ERRINFO_TEXT_MAX);
	int n;

	if (text == NULL) {
		return NULL;
	}
	n = vsnprintf(text, ERRINFO_TEXT_MAX, fmt, ap);
	if (n < 0) {
		n = 0;
		text[0] = '\0';
	}
	*ret_n = (size_t)n;
	return text;
}

enum err
errinfo_vset(struct errinfo *ei, enum err code, const char *fmt, va_list ap)
{
	char small[ERRINFO_MSG_MAX];
	char *text;
	size_t n = 0;
	va_list again;
	int len;

	if (ei == NULL) {
		return code;
	}
	ei->code = code;
	va_copy(again, ap);
	len = vsnprintf(small, sizeof(small), fmt, ap);
	if (len < 0) {
		len = 0;
		small[0] = '\0';
	}
	if ((size_t)len < sizeof(small)) {
		set_text(ei, small, (size_t)len);
	} else if ((text = format_text(&n, fmt, again)) != NULL) {
		set_text(ei, text, n);
		free(text);
	} else {
		set_text(ei, small, (size_t)len);
	}
	va_end(again);
	return code;
}

enum err
errinfo_set(struct errinfo *ei, enum err code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errinfo_vset(ei, code, fmt, ap);
	va_end(ap);
	return code;
}

enum err
errinfo_prefix(struct errinfo *ei, const char *fmt, ...)
{
	char head[1024];
	const char *old;
	char *text;
	size_t hl, ml;
	va_list ap;
	int n;

	if (ei == NULL) {
		return ERR_INTERNAL;
	}
	va_start(ap, fmt);
	n = vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	if (n < 0) {
		return ei->code;
	}
	hl = strlen(head);
	old = errinfo_msg(ei);
	ml = strlen(old);
	if (hl + ml >= ERRINFO_TEXT_MAX) {
		ml = ERRINFO_TEXT_MAX - 1 - hl;
	}
	text = malloc(hl + ml + 1);
	if (text == NULL) {
		/* keep what fits in msg */
		ml = strlen(ei->msg);
		if (hl + ml + 1 > sizeof(ei->msg)) {
			ml = sizeof(ei->msg) - hl - 1;
		}
		free(ei->full);
		ei->full = NULL;
		memmove(ei->msg + hl, ei->msg, ml);
		memcpy(ei->msg, head, hl);
		ei->msg[hl + ml] = '\0';
		return ei->code;
	}
	memcpy(text, head, hl);
	memcpy(text + hl, old, ml);
	text[hl + ml] = '\0';
	set_text(ei, text, hl + ml);
	free(text);
	return ei->code;
}

enum err
errinfo_recode(struct errinfo *ei, enum err code)
{
	if (ei != NULL) {
		ei->code = code;
	}
	return code;
}

void
errinfo_set_status(struct errinfo *ei, int smtp_code, const char *enhanced)
{
	size_t n;

	if (ei == NULL) {
		return;
	}
	ei->smtp_code = smtp_code;
	n = strlen(enhanced);
	if (n >= sizeof(ei->enhanced)) {
		n = sizeof(ei->enhanced) - 1;
	}
	memcpy(ei->enhanced, enhanced, n);
	ei->enhanced[n] = '\0';
}

void
errinfo_set_errno(struct errinfo *ei, int sys_errno)
{
	if (ei != NULL) {
		ei->sys_errno = sys_errno;
	}
}

enum err
errinfo_copy(struct errinfo *dst, const struct errinfo *src)
{
	const char *text;

	if (dst == NULL || dst == src) {
		return src->code;
	}
	text = errinfo_msg(src);
	set_text(dst, text, strlen(text));
	dst->code = src->code;
	dst->smtp_code = src->smtp_code;
	memcpy(dst->enhanced, src->enhanced, sizeof(dst->enhanced));
	dst->sys_errno = src->sys_errno;
	return src->code;
}

const char *
errinfo_msg(const struct errinfo *ei)
{
	if (ei == NULL) {
		return "";
	}
	return ei->full != NULL ? ei->full : ei->msg;
}

enum err
errinfo_code(const struct errinfo *ei)
{
	return ei != NULL ? ei->code : ERR_OK;
}

int
errinfo_smtp_code(const struct errinfo *ei)
{
	return ei != NULL ? ei->smtp_code : 0;
}

int
err_exit_code(enum err code)
{
	if ((int)code < 0 || code >= ERR_MAX) {
		return EX_SOFTWARE;
	}
	return table[code].exit_code;
}

const char *
err_name(enum err code)
{
	if ((int)code < 0 || code >= ERR_MAX) {
		return "ERR_UNKNOWN";
	}
	return table[code].name;
}

int
err_is_temporary(enum err code)
{
	return err_exit_code(code) == EX_TEMPFAIL;
}

int
err_is_queueable(enum err code)
{
	return err_is_temporary(code) || code == ERR_REAUTH;
}

int
err_is_config(enum err code)
{
	return code == ERR_CONFIG || code == ERR_NOHOST;
}
