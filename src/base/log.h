/*
 * log.h - diagnostics on stderr, the -v transcript, and the msmtp-style
 * per-mail log line (logfile / syslog).
 *
 * Who may call what: log_init(), log_warn() and log_error() are for the
 * modes in src/cmd/ and the programs in helpers/ only (everything else
 * reports through struct errinfo; src/check_layers.py fails the build
 * otherwise); log_debug() and log_transcript() may be called from anywhere.
 *
 * The only state is the program name and the verbosity set by log_init(),
 * plus one bit of transcript state (see log_transcript()).  Before
 * log_init() the name is "oasmtp" and the verbosity 0.  Not thread-safe.
 *
 * Everything written to stderr is sanitised: control characters other than
 * TAB are shown as \xNN, so a server reply cannot drive the terminal.
 * Every function keeps errno unchanged.
 *
 * Secrets: no function here is ever given a token, password or SASL
 * payload on purpose.  log_transcript() also redacts outgoing AUTH data by
 * itself, as a second line of defence.
 */
#ifndef OASMTP_LOG_H
#define OASMTP_LOG_H

#include <stddef.h>

#include "err.h"

struct buf;

/*
 * Set the name shown before messages ("oasmtp: ...") and the verbosity
 * (the -v count).  progname is borrowed and must outlive all logging; NULL
 * keeps "oasmtp".  Also resets the transcript state.
 */
void log_init(const char *progname, int verbosity);

/* The verbosity given to log_init(), so callers can skip costly work. */
int log_verbosity(void);

/* "progname: message" on stderr when verbosity >= level (level >= 1). */
void log_debug(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "progname: warning: message" on stderr, always. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "progname: message" on stderr, always: an event worth a line in the
 * service's journal (a message picked up), not a problem. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "progname: message" on stderr, always. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * One protocol line on stderr, "--> line" (outgoing, sent by us) or
 * "<-- line" (incoming), when verbosity >= 1.  line need not be
 * NUL-terminated; a trailing CRLF or LF is dropped.
 *
 * Redaction is the caller's job (it passes "AUTH XOAUTH2 <redacted, 1532
 * bytes>"), but this function also refuses to print credentials it can
 * recognise: see log_line_is_secret().  A line it suppresses is shown as
 * "<redacted, N bytes>" (keeping the AUTH verb and mechanism when present).
 */
void log_transcript(int outgoing, const char *line, size_t len);

/*
 * Defensive check used by log_transcript(), public for tests and for other
 * writers of protocol text: returns 1 when an outgoing line would reveal a
 * credential given the transcript seen so far, else 0.  That is:
 *   - "AUTH <mechanism> <anything>" (an initial response), unless the
 *     argument is already a "<redacted" placeholder or "=" (empty);
 *   - any outgoing line sent after a "334" reply (a SASL response), until
 *     a reply other than 334 arrives, unless it is a "<redacted"
 *     placeholder already.
 * Incoming lines are never secret.  Does not change the state itself.
 */
int log_line_is_secret(const char *line, size_t len);

/*
 * The facts of one submission for the per-mail log line, in msmtp's
 * format (msmtp(1) "logfile"):
 *   host=H tls=on|off auth=on|off [user=U] from=F recipients=A,B
 *   [mailsize=N] [smtpstatus=C smtpmsg='...'] [errormsg='...']
 *   exitcode=EX_*
 * user only when auth is on and user is set; mailsize only on success
 * (exit_code 0); smtpstatus/smtpmsg only when smtp_msg is set; errormsg
 * only on failure with a non-empty error_msg.  In smtpmsg and errormsg
 * single quotes become '?' and line breaks a literal "\n"; control
 * characters anywhere become '?'.
 *
 * All pointers are borrowed for the duration of the call.  Never put a
 * secret in a record: the line goes to files and syslog as is.
 */
struct log_mail_record {
	const char *host;		/* NULL logs as "" */
	int tls;
	int auth;
	const char *user;
	const char *from;		/* envelope sender; "" = null sender */
	const char *const *recipients;
	size_t recipient_count;
	long long mailsize;		/* octets sent */
	int smtp_status;		/* 3-digit reply code, or 0 */
	const char *smtp_msg;		/* last server reply text, or NULL */
	const char *error_msg;		/* our error message, or NULL */
	int exit_code;			/* sysexits(3) value, 0 = EX_OK */
};

/*
 * Append the log line (without time prefix or newline) to out.
 * ERR_LIMIT or ERR_NOMEM from the buffer; out may then hold part of it.
 */
MUST_CHECK enum err log_format_mail(const struct log_mail_record *rec, struct buf *out,
	struct errinfo *reterr);

/*
 * Write the per-mail line to logfile and/or syslog; either may be NULL
 * (not configured).
 *   logfile:  "-" means stdout; otherwise appended (created 0600) with one
 *             write(2) under O_APPEND, prefixed by the local time formatted
 *             with time_format (NULL: "%b %d %H:%M:%S"; "none": no time).
 *   syslog_facility: "on" (LOG_MAIL), "off" (no syslog), "LOG_MAIL",
 *             "LOG_USER", "LOG_LOCAL0" .. "LOG_LOCAL7".  Priority LOG_INFO
 *             on success, LOG_ERR on failure; no time prefix.
 * The facility is checked before anything is written.  Both destinations
 * are tried even when the first fails; the first failure is returned:
 *   ERR_CONFIG  unknown syslog facility
 *   ERR_IO      the log file cannot be opened or written (sys_errno set)
 *   ERR_LIMIT, ERR_NOMEM
 */
MUST_CHECK enum err log_mail(const struct log_mail_record *rec, const char *logfile,
	const char *time_format, const char *syslog_facility,
	struct errinfo *reterr);

/*
 * Open the syslog connection for log_mail() now and keep it open (a
 * confined process cannot make a new socket; src/cmd/sandbox.h).  An
 * invalid or "off" setting does nothing.
 */
void log_syslog_open(const char *syslog_facility);

/*
 * Map a syslog setting as log_mail() accepts it to a facility value.
 * *ret_facility is -1 for "off".  ERR_CONFIG for anything else.
 */
MUST_CHECK enum err log_syslog_facility(const char *name, int *ret_facility,
	struct errinfo *reterr);

/* "EX_OK", "EX_TEMPFAIL", ... for a sysexits value; "EX_UNKNOWN" if none. */
const char *log_exit_code_name(int exit_code);

#endif
