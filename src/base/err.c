/* err.c - error codes, detail records and the exit-code table. */
#include "err.h"

#include <stdio.h>
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
}

static void
mark_truncated(char *buf, size_t size, int n)
{
	if (n >= 0 && (size_t)n >= size && size > 4) {
		memcpy(buf + size - 4, "...", 4);
	}
}

enum err
errinfo_vset(struct errinfo *ei, enum err code, const char *fmt, va_list ap)
{
	int n;

	if (ei == NULL) {
		return code;
	}
	ei->code = code;
	n = vsnprintf(ei->msg, sizeof(ei->msg), fmt, ap);
	if (n < 0) {
		ei->msg[0] = '\0';
	}
	mark_truncated(ei->msg, sizeof(ei->msg), n);
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
	ml = strlen(ei->msg);
	if (hl + ml + 1 > sizeof(ei->msg)) {
		ml = sizeof(ei->msg) - hl - 1;
	}
	memmove(ei->msg + hl, ei->msg, ml);
	memcpy(ei->msg, head, hl);
	ei->msg[hl + ml] = '\0';
	return ei->code;
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
