/*
 * log.c - stderr diagnostics, the redacting transcript writer and the
 * per-mail log line.  See log.h.
 *
 * The per-mail line keeps msmtp's field names and order so that existing
 * log parsers (and people's grep habits) keep working after a switch.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"

/* Large enough for a full 64 KiB server reply plus our own words. */
#define LOG_LINE_MAX (ERRINFO_TEXT_MAX + 64 * 1024)
/* one log line with control characters escaped (4 bytes each) and a prefix */
#define LOG_ESCAPED_MAX (4 * LOG_LINE_MAX + 256)
#define DEFAULT_TIME_FORMAT "%b %d %H:%M:%S"

static const char *log_progname = "oasmtp";
/* log_syslog_open() was called: keep the syslog socket open */
static int syslog_kept;
static int log_level;
/* Set by an incoming 334 reply: our next lines are SASL responses. */
static int sasl_continuation;

void
log_init(const char *progname, int verbosity)
{
	log_progname = progname != NULL ? progname : "oasmtp";
	log_level = verbosity;
	sasl_continuation = 0;
}

int
log_verbosity(void)
{
	return log_level;
}

static void
write_stderr(const struct buf *b)
{
	fwrite(b->data, 1, b->len, stderr);
	fflush(stderr);
}

/* "progname: [tag]message\n" on stderr, sanitised. */
static void
vemit(const char *tag, const char *fmt, va_list ap)
{
	struct buf msg, line;
	int saved = errno;

	buf_init(&msg, LOG_LINE_MAX);
	buf_init(&line, LOG_ESCAPED_MAX);
	if (buf_vprintf(&msg, fmt, ap) != ERR_OK) {
		buf_reset(&msg);
		buf_cut_ok(buf_append_str(&msg, "(message too long to show)"));
	}
	if (buf_printf(&line, "%s: %s", log_progname, tag) != ERR_OK ||
	    util_escape_ctl(&line, msg.data, msg.len) != ERR_OK ||
	    buf_putc(&line, '\n') != ERR_OK) {
		fprintf(stderr, "%s: (out of memory while logging)\n",
			log_progname);
	} else {
		write_stderr(&line);
	}
	buf_release(&line);
	buf_release(&msg);
	errno = saved;
}

void
log_debug(int level, const char *fmt, ...)
{
	va_list ap;

	if (log_level < level) {
		return;
	}
	va_start(ap, fmt);
	vemit("", fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vemit("warning: ", fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vemit("", fmt, ap);
	va_end(ap);
}

void
log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vemit("", fmt, ap);
	va_end(ap);
}

static size_t
strip_eol(const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\n') {
		len--;
	}
	if (len > 0 && line[len - 1] == '\r') {
		len--;
	}
	return len;
}

/*
 * For "AUTH <mech> <arg>" set *ret_arg to the offset of <arg> and return 1;
 * 0 when the line is not an AUTH command with an argument.
 */
static int
auth_argument(const char *line, size_t len, size_t *ret_arg)
{
	size_t i;

	if (len < 5 || util_strncasecmp(line, "AUTH ", 5) != 0) {
		return 0;
	}
	i = 5;
	while (i < len && line[i] == ' ') {
		i++;
	}
	while (i < len && line[i] != ' ') {
		i++;
	}
	while (i < len && line[i] == ' ') {
		i++;
	}
	if (i >= len) {
		return 0;
	}
	*ret_arg = i;
	return 1;
}

int
log_line_is_secret(const char *line, size_t len)
{
	size_t arg;
	static const char placeholder[] = "<redacted";

	len = strip_eol(line, len);
	if (sasl_continuation) {
		/* the engine's own placeholder keeps its true byte count */
		return len < sizeof(placeholder) - 1 ||
		    memcmp(line, placeholder, sizeof(placeholder) - 1) != 0;
	}
	if (!auth_argument(line, len, &arg)) {
		return 0;
	}
	if (len - arg == 1 && line[arg] == '=') {
		return 0;
	}
	if (len - arg >= sizeof(placeholder) - 1 &&
	    memcmp(line + arg, placeholder, sizeof(placeholder) - 1) == 0) {
		return 0;
	}
	return 1;
}

/* Track 334 continuations from incoming reply lines ("334 ..."). */
static void
note_incoming(const char *line, size_t len)
{
	if (len < 3 || line[0] < '2' || line[0] > '5' ||
	    line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9') {
		return;
	}
	sasl_continuation = memcmp(line, "334", 3) == 0;
}

void
log_transcript(int outgoing, const char *line, size_t len)
{
	struct buf out;
	size_t arg;
	int saved = errno;
	enum err e;

	len = strip_eol(line, len);
	if (!outgoing) {
		note_incoming(line, len);
	}
	if (log_level < 1) {
		errno = saved;
		return;
	}
	buf_init(&out, LOG_ESCAPED_MAX);
	e = buf_append_str(&out, outgoing ? "--> " : "<-- ");
	if (e == ERR_OK && outgoing && log_line_is_secret(line, len)) {
		if (!sasl_continuation && auth_argument(line, len, &arg)) {
			e = util_escape_ctl(&out, line, arg);
		} else {
			arg = 0;
		}
		if (e == ERR_OK) {
			e = buf_printf(&out, "<redacted, %zu bytes>", len - arg);
		}
	} else if (e == ERR_OK) {
		e = util_escape_ctl(&out, line, len);
	}
	if (e == ERR_OK) {
		e = buf_putc(&out, '\n');
	}
	if (e == ERR_OK) {
		write_stderr(&out);
	} else {
		fprintf(stderr, "%s (line of %zu bytes not shown)\n",
			outgoing ? "-->" : "<--", len);
	}
	buf_release(&out);
	errno = saved;
}

static const struct {
	int code;
	const char *name;
} exit_names[] = {
	{ 0, "EX_OK" },
	{ 64, "EX_USAGE" },
	{ 65, "EX_DATAERR" },
	{ 66, "EX_NOINPUT" },
	{ 67, "EX_NOUSER" },
	{ 68, "EX_NOHOST" },
	{ 69, "EX_UNAVAILABLE" },
	{ 70, "EX_SOFTWARE" },
	{ 71, "EX_OSERR" },
	{ 72, "EX_OSFILE" },
	{ 73, "EX_CANTCREAT" },
	{ 74, "EX_IOERR" },
	{ 75, "EX_TEMPFAIL" },
	{ 76, "EX_PROTOCOL" },
	{ 77, "EX_NOPERM" },
	{ 78, "EX_CONFIG" },
};

const char *
log_exit_code_name(int exit_code)
{
	size_t i;

	for (i = 0; i < sizeof(exit_names) / sizeof(exit_names[0]); i++) {
		if (exit_names[i].code == exit_code) {
			return exit_names[i].name;
		}
	}
	return "EX_UNKNOWN";
}

/* A plain field: control characters become '?'. */
static MUST_CHECK enum err
append_field(struct buf *out, const char *s)
{
	enum err e = ERR_OK;

	if (s == NULL) {
		return ERR_OK;
	}
	for (; *s != '\0' && e == ERR_OK; s++) {
		unsigned char c = (unsigned char)*s;

		e = buf_putc(out, (c < 0x20 || c == 0x7f) ? '?' : (char)c);
	}
	return e;
}

/*
 * A quoted field: quotes become '?' so the value cannot end early, line
 * breaks (CRLF or LF) a literal "\n", trailing ones dropped.
 */
static MUST_CHECK enum err
append_quoted(struct buf *out, const char *s)
{
	size_t i, n = strip_eol(s, strlen(s));
	enum err e;

	e = buf_putc(out, '\'');
	for (i = 0; i < n && e == ERR_OK; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' && i + 1 < n && s[i + 1] == '\n') {
			continue;
		}
		if (c == '\n') {
			e = buf_append_str(out, "\\n");
		} else if (c == '\'' || c < 0x20 || c == 0x7f) {
			e = buf_putc(out, '?');
		} else {
			e = buf_putc(out, (char)c);
		}
	}
	if (e == ERR_OK) {
		e = buf_putc(out, '\'');
	}
	return e;
}

enum err
log_format_mail(const struct log_mail_record *rec, struct buf *out,
	struct errinfo *reterr)
{
	enum err e;
	size_t i;

	e = buf_append_str(out, "host=");
	if (e == ERR_OK) {
		e = append_field(out, rec->host);
	}
	if (e == ERR_OK) {
		e = buf_printf(out, " tls=%s auth=%s",
			rec->tls ? "on" : "off", rec->auth ? "on" : "off");
	}
	if (e == ERR_OK && rec->auth && rec->user != NULL) {
		e = buf_append_str(out, " user=");
		if (e == ERR_OK) {
			e = append_field(out, rec->user);
		}
	}
	if (e == ERR_OK) {
		e = buf_append_str(out, " from=");
	}
	if (e == ERR_OK) {
		e = append_field(out, rec->from);
	}
	if (e == ERR_OK) {
		e = buf_append_str(out, " recipients=");
	}
	for (i = 0; i < rec->recipient_count && e == ERR_OK; i++) {
		if (i > 0) {
			e = buf_putc(out, ',');
		}
		if (e == ERR_OK) {
			e = append_field(out, rec->recipients[i]);
		}
	}
	if (e == ERR_OK && rec->exit_code == 0) {
		e = buf_printf(out, " mailsize=%lld", rec->mailsize);
	}
	if (e == ERR_OK && rec->smtp_msg != NULL) {
		e = buf_printf(out, " smtpstatus=%d smtpmsg=", rec->smtp_status);
		if (e == ERR_OK) {
			e = append_quoted(out, rec->smtp_msg);
		}
	} else if (e == ERR_OK && rec->smtp_status != 0) {
		/* a refusal: its text is part of errormsg */
		e = buf_printf(out, " smtpstatus=%d", rec->smtp_status);
	}
	if (e == ERR_OK && rec->exit_code != 0 && rec->error_msg != NULL &&
	    rec->error_msg[0] != '\0') {
		e = buf_append_str(out, " errormsg=");
		if (e == ERR_OK) {
			e = append_quoted(out, rec->error_msg);
		}
	}
	if (e == ERR_OK) {
		e = buf_printf(out, " exitcode=%s",
			log_exit_code_name(rec->exit_code));
	}
	if (e != ERR_OK) {
		return errinfo_set(reterr, e, "cannot format the mail log line");
	}
	return ERR_OK;
}

enum err
log_syslog_facility(const char *name, int *ret_facility,
	struct errinfo *reterr)
{
	static const struct {
		const char *name;
		int facility;
	} names[] = {
		{ "off", -1 },
		{ "on", LOG_MAIL },
		{ "LOG_MAIL", LOG_MAIL },
		{ "LOG_USER", LOG_USER },
		{ "LOG_LOCAL0", LOG_LOCAL0 },
		{ "LOG_LOCAL1", LOG_LOCAL1 },
		{ "LOG_LOCAL2", LOG_LOCAL2 },
		{ "LOG_LOCAL3", LOG_LOCAL3 },
		{ "LOG_LOCAL4", LOG_LOCAL4 },
		{ "LOG_LOCAL5", LOG_LOCAL5 },
		{ "LOG_LOCAL6", LOG_LOCAL6 },
		{ "LOG_LOCAL7", LOG_LOCAL7 },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(name, names[i].name) == 0) {
			*ret_facility = names[i].facility;
			return ERR_OK;
		}
	}
	return errinfo_set(reterr, ERR_CONFIG, "invalid syslog setting '%s': "
		"use on, off, LOG_MAIL, LOG_USER or LOG_LOCAL0..LOG_LOCAL7",
		name);
}

/* Time prefix with its trailing space, or "" (format "none" or empty). */
static void
time_prefix(const char *time_format, char *out, size_t size)
{
	struct tm tm;
	time_t now;
	size_t n;

	out[0] = '\0';
	if (time_format == NULL) {
		time_format = DEFAULT_TIME_FORMAT;
	}
	if (strcmp(time_format, "none") == 0) {
		return;
	}
	now = time(NULL);
	if (localtime_r(&now, &tm) == NULL) {
		return;
	}
	n = strftime(out, size - 1, time_format, &tm);
	if (n == 0) {
		out[0] = '\0';
		return;
	}
	out[n] = ' ';
	out[n + 1] = '\0';
}

static MUST_CHECK enum err
write_logfile(const char *logfile, const char *time_format,
	const struct buf *line, struct errinfo *reterr)
{
	char prefix[256];
	struct buf all;
	enum err e;
	int fd, saved;

	time_prefix(time_format, prefix, sizeof(prefix));
	buf_init(&all, line->len + sizeof(prefix) + 1);
	e = buf_append_str(&all, prefix);
	if (e == ERR_OK) {
		e = buf_append(&all, line->data, line->len);
	}
	if (e == ERR_OK) {
		e = buf_putc(&all, '\n');
	}
	if (e != ERR_OK) {
		buf_release(&all);
		return errinfo_set(reterr, e, "cannot format the mail log line");
	}
	if (strcmp(logfile, "-") == 0) {
		if (fwrite(all.data, 1, all.len, stdout) != all.len ||
		    fflush(stdout) != 0) {
			saved = errno;
			buf_release(&all);
			e = errinfo_set(reterr, ERR_IO,
				"cannot write the mail log to stdout: %s",
				strerror(saved));
			errinfo_set_errno(reterr, saved);
			return e;
		}
		buf_release(&all);
		return ERR_OK;
	}
	fd = open(logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || util_write_all(fd, all.data, all.len) != 0) {
		saved = errno;
		if (fd >= 0) {
			close(fd);
		}
		buf_release(&all);
		goto fail;
	}
	buf_release(&all);
	if (close(fd) != 0) {
		saved = errno;
		goto fail;
	}
	return ERR_OK;
fail:
	e = errinfo_set(reterr, ERR_IO, "cannot write log file '%s': %s",
		logfile, strerror(saved));
	errinfo_set_errno(reterr, saved);
	return e;
}

void
log_syslog_open(const char *syslog_facility)
{
	int facility = -1;

	if (syslog_facility != NULL && log_syslog_facility(syslog_facility,
	    &facility, NULL) == ERR_OK && facility >= 0) {
		openlog(log_progname, LOG_PID | LOG_NDELAY, facility);
		syslog_kept = 1;
	}
}

enum err
log_mail(const struct log_mail_record *rec, const char *logfile,
	const char *time_format, const char *syslog_facility,
	struct errinfo *reterr)
{
	struct buf line;
	int facility = -1;
	enum err e, first = ERR_OK;

	if (syslog_facility != NULL) {
		e = log_syslog_facility(syslog_facility, &facility, reterr);
		if (e != ERR_OK) {
			return e;
		}
	}
	if (logfile == NULL && facility < 0) {
		return ERR_OK;
	}
	buf_init(&line, LOG_LINE_MAX);
	e = log_format_mail(rec, &line, reterr);
	if (e != ERR_OK) {
		buf_release(&line);
		return e;
	}
	if (logfile != NULL) {
		first = write_logfile(logfile, time_format, &line, reterr);
	}
	if (facility >= 0) {
		openlog(log_progname, LOG_PID, facility);
		syslog(rec->exit_code == 0 ? LOG_INFO : LOG_ERR, "%s",
			line.data);
		if (!syslog_kept) {
			closelog();
		}
	}
	buf_release(&line);
	return first;
}
