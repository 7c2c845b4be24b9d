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

/*
 * A result the caller must look at: buffer appends and every function that
 * returns enum err, except those that only hand back the code they record
 * or copy (errinfo_set() and friends for "return errinfo_set(...)",
 * smtp_error(), smtp_txn_result()).  Discarding one is a build error under
 * -Werror (a (void) cast does not silence it): handle it, or name why it
 * may be dropped (buf_cut_ok() for text that is only shown).
 */
#define MUST_CHECK __attribute__((warn_unused_result))

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
	ERR_NOHOST = 19,	/* the host name does not exist (NXDOMAIN) -> 68 */
	ERR_MAX
};

/*
 * The message: one line saying what failed and where, cut to
 * ERRINFO_MSG_MAX with "..." at the end.  A longer message (in practice one
 * quoting a server reply: Microsoft 365 sends replies over 1 KiB) is also
 * kept whole on the heap, up to ERRINFO_TEXT_MAX, so that it can be shown
 * in full; errinfo_msg() returns whichever is whole.
 */
#define ERRINFO_MSG_MAX 1024
#define ERRINFO_TEXT_MAX (72 * 1024)

/*
 * reterr may be NULL: every function that returns enum err takes a caller
 * that does not want the detail, unless its header says otherwise
 * (submit_batch(), which hands the detail on to a callback).  So no code
 * tests or dereferences a reterr it was given: it writes it with the
 * errinfo_* setters and reads it with errinfo_code(), errinfo_smtp_code()
 * and errinfo_msg(), which all accept NULL.  A caller that wants to read
 * what a callee recorded declares its own errinfo and passes that.
 *
 * Caller-owned: declare it on the stack, errinfo_init() it (or use
 * ERRINFO_INIT), pass it as reterr, and errinfo_release() it when done.
 * Copy it with errinfo_copy(), never with "=" (full is owned).
 */
struct errinfo {
	enum err code;
	int smtp_code;		/* last SMTP reply code, 0 if none */
	char enhanced[16];	/* last enhanced status code ("5.7.8"), or "" */
	int sys_errno;		/* errno for ERR_IO/ERR_NET, 0 if none */
	char msg[ERRINFO_MSG_MAX];
	char *full;		/* owned: the whole message when msg is cut */
};

#define ERRINFO_INIT { .code = ERR_OK }

/* Initialise fresh storage: ERR_OK, empty message, nothing owned. */
void errinfo_init(struct errinfo *ei);

/* Free what ei owns and reset it to ERR_OK (ei stays usable). */
void errinfo_release(struct errinfo *ei);

/*
 * Record a failure and return code, so callers can write
 *   return errinfo_set(reterr, ERR_CONFIG, "%s:%u: unknown key '%s'", ...);
 * smtp_code, enhanced and sys_errno are left as they were (see
 * errinfo_set_status() and errinfo_set_errno()).  A message longer than
 * ERRINFO_TEXT_MAX is cut and ends in "...".
 *
 * Every errinfo_* function accepts ei == NULL and then only returns the
 * code (see "reterr may be NULL" below).
 */
enum err errinfo_set(struct errinfo *ei, enum err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
enum err errinfo_vset(struct errinfo *ei, enum err code, const char *fmt,
	va_list ap) __attribute__((format(printf, 3, 0)));

/*
 * Put context in front of the existing message ("sending to 'x': " + msg)
 * and return ei->code.
 */
enum err errinfo_prefix(struct errinfo *ei, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Keep the message and codes but classify the failure as code instead (a
 * caller knows better than the callee what it means): returns code.
 */
enum err errinfo_recode(struct errinfo *ei, enum err code);

/* Record the SMTP reply code and enhanced status ("" for none). */
void errinfo_set_status(struct errinfo *ei, int smtp_code,
	const char *enhanced);

/* Record errno for ERR_IO / ERR_NET. */
void errinfo_set_errno(struct errinfo *ei, int sys_errno);

/* Make dst a deep copy of src (dst initialised); returns src->code. */
enum err errinfo_copy(struct errinfo *dst, const struct errinfo *src);

/* The whole message (borrowed: valid until ei changes); "" for NULL. */
const char *errinfo_msg(const struct errinfo *ei);

/* The recorded code; ERR_OK for NULL. */
enum err errinfo_code(const struct errinfo *ei);

/* The recorded SMTP reply code; 0 for NULL or none. */
int errinfo_smtp_code(const struct errinfo *ei);

/*
 * Keep the first failure of a series of steps (appends that build one
 * text), so that the series is checked once at its end:
 *   err_first(&e, buf_append_str(&b, "a")); err_first(&e, buf_putc(&b, 'b'));
 *   if (e != ERR_OK) ...
 */
static inline void
err_first(enum err *first, enum err e)
{
	if (*first == ERR_OK) {
		*first = e;
	}
}

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

/*
 * True for codes of a configuration problem met while sending (ERR_CONFIG,
 * ERR_NOHOST): waiting does not help, a fix does.  With the queue on, the
 * message is kept all the same (nothing is lost) and waits for the fix.
 */
int err_is_config(enum err code);

#endif
