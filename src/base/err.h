/*
 * err.h - the one project-wide error code and the caller-owned error detail.
 *
 * Every fallible function returns enum err (ERR_OK on success) and, when it
 * fails, fills the struct errinfo passed as its last argument ("reterr") with
 * a one-line message.  Codes are grouped by how the caller must react, not by
 * module; main.c maps them to sysexits(3) values with err_exit_code().
 *
 * Never renumber: codes may be recorded in queue files and logs.
 */
#ifndef OASMTP_ERR_H
#define OASMTP_ERR_H

#include <stdarg.h>
#include <stddef.h>

enum err {
	ERR_OK = 0,
	ERR_NOMEM = 1,		/* allocation failed                       -> 70 */
	ERR_INTERNAL = 2,	/* bug or library failure                  -> 70 */
	ERR_USAGE = 3,		/* bad command line                        -> 64 */
	ERR_DATA = 4,		/* bad message data (too big, bad header)  -> 65 */
	ERR_CONFIG = 5,		/* configuration error                     -> 78 */
	ERR_IO = 6,		/* local I/O failure                       -> 74 */
	ERR_LIMIT = 7,		/* a bounded buffer would overflow         -> 65 */
	ERR_NET = 8,		/* connect/read/write failure, DNS         -> 75 */
	ERR_TIMEOUT = 9,	/* a deadline passed                       -> 75 */
	ERR_TLS = 10,		/* any TLS failure, incl. verification     -> 75 */
	ERR_PROTO = 11,		/* the server violated the protocol        -> 76 */
	ERR_SMTP_TEMP = 12,	/* 4xx reply                               -> 75 */
	ERR_SMTP_PERM = 13,	/* 5xx reply (other than below)            -> 69 */
	ERR_RCPT_UNKNOWN = 14,	/* 5.1.x recipient/address refusal         -> 67 */
	ERR_AUTH = 15,		/* authentication refused                  -> 77 */
	ERR_TOKEN_TEMP = 16,	/* token endpoint/store temporarily down   -> 75 */
	ERR_REAUTH = 17,	/* grant revoked: re-authorization needed  -> 77 */
	ERR_NOTSUPP = 18,	/* server lacks a required extension       -> 69 */
	ERR_MAX
};

/* Sizes of the detail buffers.  The message holds a full 64 KiB server reply. */
#define ERRINFO_MSG_MAX (72 * 1024)

struct errinfo {
	enum err code;
	int smtp_code;		/* last SMTP reply code, 0 if none */
	char enhanced[16];	/* last enhanced status code ("5.7.8"), or "" */
	int sys_errno;		/* errno for ERR_IO/ERR_NET, 0 if none */
	char msg[ERRINFO_MSG_MAX];
};

/* Reset to ERR_OK with an empty message.  ei may be NULL. */
void errinfo_init(struct errinfo *ei);

/*
 * Record a failure and return code, so callers can write
 *   return errinfo_set(reterr, ERR_CONFIG, "%s:%u: unknown key '%s'", ...);
 * ei may be NULL (the code is still returned).  A message longer than the
 * buffer is truncated and ends in "...".
 */
enum err errinfo_set(struct errinfo *ei, enum err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
enum err errinfo_vset(struct errinfo *ei, enum err code, const char *fmt,
	va_list ap) __attribute__((format(printf, 3, 0)));

/*
 * Put context in front of an existing message ("sending to 'x': " + msg) and
 * return ei->code.  Does nothing but return the code when ei is NULL.
 */
enum err errinfo_prefix(struct errinfo *ei, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The sysexits(3) value for a code (doc/design.md, Errors and exit codes). */
int err_exit_code(enum err code);

/* A short stable name ("ERR_SMTP_TEMP"), for logs and tests. */
const char *err_name(enum err code);

/* True for codes that mean "try again later" (exit 75). */
int err_is_temporary(enum err code);

/*
 * True for codes after which the queue keeps a message: the temporary ones
 * and ERR_REAUTH (the mail waits for `oasmtp-token authorize`).
 */
int err_is_queueable(enum err code);

#endif
