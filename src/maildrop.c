/*
 * maildrop.c - the system maildrop entry format; see maildrop.h.
 *
 * Directory (created by the packaging, tmpfiles.d/oasmtp.conf):
 *
 *   SPOOL/maildrop    mode 1770, owner the service user (oasmtp), group
 *                     oasmtp-queue.  Ordinary users have no access at
 *                     all: they can neither list it nor open a file in
 *                     it.  oasmtp-drop (setgid oasmtp-queue) creates
 *                     files; the sticky bit keeps it from removing or
 *                     renaming anything it did not create; the service
 *                     (its owner) reads and removes entries.
 *   ID.tmp            an entry being written (mode 0600 while written)
 *   ID                a complete entry (mode 0640: owner the caller,
 *                     group oasmtp-queue, so the service can read it)
 *
 * ID is MAILDROP_ID_LEN lower-case hex digits: 8 of the drop time, 16
 * random.  An entry is committed by renaming ID.tmp to ID after an fsync
 * of the file; the directory is fsynced before oasmtp-drop exits 0.
 *
 * Entry file: a header record, then the message exactly as the caller
 * wrote it (after the sendmail "." rule unless -i/-oi was given).  The
 * record is text, one "key value" per line, LF line ends:
 *
 *   oasmtp-maildrop 1     format name and version, always first
 *   uid N                 the caller's real uid (from the kernel)
 *   user NAME             its passwd name ("#N" when it has none)
 *   time T                unix time of the drop
 *   arg VALUE             one line per command-line argument, in order
 *                         (argv[0] excluded); zero or more
 *   end                   always last; the message follows it
 *
 * Values are escaped: "\\" for a backslash and "\xHH" for every byte
 * below 0x20 and 0x7f; nothing else is escaped, so a value never holds a
 * line break.  Unknown keys are an error.
 */
#include "maildrop.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "util.h"

#define FORMAT_LINE "oasmtp-maildrop 1"

void
maildrop_entry_release(struct maildrop_entry *e)
{
	int i;

	if (e == NULL) {
		return;
	}
	for (i = 0; e->argv != NULL && i < e->argc; i++) {
		free(e->argv[i]);
	}
	free(e->argv);
	free(e->user);
	memset(e, 0, sizeof(*e));
}

enum err
maildrop_check_opts(const struct cli_opts *o, struct errinfo *reterr)
{
	const char *what = NULL;

	if (o->mode != CLI_MODE_SEND) {
		return errinfo_set(reterr, ERR_USAGE, "the system maildrop "
			"only accepts messages to send (mode '%s' refused)",
			cli_mode_name(o->mode));
	}
	if (o->config_file != NULL) {
		what = "-C (configuration file)";
	} else if (o->account != NULL) {
		what = "-a (account)";
	} else if (o->logfile != NULL) {
		what = "-X (log file)";
	} else if (o->queue_dir_option != NULL) {
		what = "-oQ / -OQueueDirectory (queue directory)";
	} else if (o->pretend) {
		what = "--pretend";
	} else if (o->system) {
		what = "--system";
	}
	if (what != NULL) {
		return errinfo_set(reterr, ERR_USAGE, "%s is refused for mail "
			"to the system queue: the system configuration decides "
			"(write a personal ~/.oasmtprc to choose your own)",
			what);
	}
	return ERR_OK;
}

static MUST_CHECK enum err
put_value(struct buf *out, const char *s)
{
	enum err e = ERR_OK;

	for (; *s != '\0' && e == ERR_OK; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\\') {
			e = buf_append_str(out, "\\\\");
		} else if (c < 0x20 || c == 0x7f) {
			e = buf_printf(out, "\\x%02x", c);
		} else {
			e = buf_putc(out, (char)c);
		}
	}
	return e;
}

enum err
maildrop_format_header(struct buf *out, long uid, const char *user,
	int64_t now, int n, char *const *args, struct errinfo *reterr)
{
	enum err e;
	int i;

	e = buf_printf(out, FORMAT_LINE "\nuid %ld\nuser ", uid);
	if (e == ERR_OK) {
		e = put_value(out, user);
	}
	if (e == ERR_OK) {
		e = buf_printf(out, "\ntime %" PRId64 "\n", now);
	}
	for (i = 0; i < n && e == ERR_OK; i++) {
		e = buf_append_str(out, "arg ");
		if (e == ERR_OK) {
			e = put_value(out, args[i]);
		}
		if (e == ERR_OK) {
			e = buf_putc(out, '\n');
		}
	}
	if (e == ERR_OK) {
		e = buf_append_str(out, "end\n");
	}
	if (e == ERR_OK && out->len > MAILDROP_HEADER_MAX) {
		e = ERR_LIMIT;
	}
	if (e == ERR_LIMIT) {
		return errinfo_set(reterr, ERR_USAGE, "the arguments are too "
			"long for the system queue");
	}
	return e == ERR_OK ? ERR_OK : errinfo_set(reterr, e, "out of memory");
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	return -1;
}

/* Unescape p[0..n) into a new string; NULL (and *ret_bad) on bad input. */
static char *
unescape(const char *p, size_t n, int *ret_bad)
{
	char *s = malloc(n + 1);
	size_t i, o = 0;

	*ret_bad = 0;
	if (s == NULL) {
		return NULL;
	}
	for (i = 0; i < n; i++) {
		char c = p[i];

		if ((unsigned char)c < 0x20 || c == 0x7f) {
			goto bad;
		}
		if (c == '\\') {
			if (i + 1 < n && p[i + 1] == '\\') {
				i++;
			} else if (i + 3 < n && p[i + 1] == 'x' &&
			    hexval(p[i + 2]) >= 0 && hexval(p[i + 3]) >= 0) {
				c = (char)(hexval(p[i + 2]) * 16 +
					hexval(p[i + 3]));
				i += 3;
				if (c == '\0') {
					goto bad;
				}
			} else {
				goto bad;
			}
		}
		s[o++] = c;
	}
	s[o] = '\0';
	return s;
bad:
	free(s);
	*ret_bad = 1;
	return NULL;
}

static int
add_arg(struct maildrop_entry *e, char *v)
{
	char **n = realloc(e->argv, ((size_t)e->argc + 2) * sizeof(char *));

	if (n == NULL) {
		free(v);
		return -1;
	}
	e->argv = n;
	e->argv[e->argc++] = v;
	e->argv[e->argc] = NULL;
	return 0;
}

enum err
maildrop_parse_header(const char *data, size_t len,
	struct maildrop_entry *ret, struct errinfo *reterr)
{
	struct maildrop_entry e;
	const char *p = data, *end = data + len;
	int line = 0, seen_uid = 0, seen_time = 0, nomem = 0;
	char *first;

	memset(&e, 0, sizeof(e));
	first = strdup("sendmail");
	if (first == NULL || add_arg(&e, first) != 0) {
		nomem = 1;
		goto bad;
	}
	for (;;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *sp;
		size_t klen;
		char *v;
		int bad = 0;
		long n;

		if (nl == NULL) {
			goto bad;
		}
		line++;
		if (line == 1) {
			if ((size_t)(nl - p) != strlen(FORMAT_LINE) ||
			    memcmp(p, FORMAT_LINE, strlen(FORMAT_LINE)) != 0) {
				goto bad;
			}
			p = nl + 1;
			continue;
		}
		if (nl - p == 3 && memcmp(p, "end", 3) == 0) {
			p = nl + 1;
			break;
		}
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (sp == NULL) {
			goto bad;
		}
		klen = (size_t)(sp - p);
		v = unescape(sp + 1, (size_t)(nl - sp - 1), &bad);
		if (v == NULL) {
			nomem = !bad;
			goto bad;
		}
		if (klen == 3 && memcmp(p, "arg", 3) == 0) {
			if (add_arg(&e, v) != 0) {
				nomem = 1;
				goto bad;
			}
		} else if (klen == 4 && memcmp(p, "user", 4) == 0 &&
		    e.user == NULL) {
			e.user = v;
		} else if (klen == 3 && memcmp(p, "uid", 3) == 0 &&
		    !seen_uid && util_parse_long(v, 0, LONG_MAX, &n) == 0) {
			e.uid = n;
			seen_uid = 1;
			free(v);
		} else if (klen == 4 && memcmp(p, "time", 4) == 0 &&
		    !seen_time && util_parse_long(v, 0, LONG_MAX, &n) == 0) {
			e.time = n;
			seen_time = 1;
			free(v);
		} else {
			free(v);
			goto bad;
		}
		p = nl + 1;
	}
	if (!seen_uid || !seen_time || e.user == NULL) {
		goto bad;
	}
	e.body_offset = (uint64_t)(p - data);
	*ret = e;
	return ERR_OK;
bad:
	maildrop_entry_release(&e);
	if (nomem) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	return errinfo_set(reterr, ERR_DATA, "malformed maildrop record "
		"(line %d)", line);
}

int
maildrop_name_kind(const char *name)
{
	size_t i;

	for (i = 0; i < MAILDROP_ID_LEN; i++) {
		if (hexval(name[i]) < 0) {
			return 0;
		}
	}
	if (name[MAILDROP_ID_LEN] == '\0') {
		return 2;
	}
	return strcmp(name + MAILDROP_ID_LEN, ".tmp") == 0 ? 1 : 0;
}

void
maildrop_new_id(char out[MAILDROP_ID_LEN + 1], int64_t now)
{
	uint32_t r[2];

	if (getentropy(r, sizeof(r)) != 0) {
		/* the name is also created with O_EXCL: uniqueness is safe */
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		r[0] = (uint32_t)ts.tv_nsec;
		r[1] = (uint32_t)getpid();
	}
	snprintf(out, MAILDROP_ID_LEN + 1, "%08" PRIx32 "%08" PRIx32 "%08"
		PRIx32, (uint32_t)now, r[0], r[1]);
}
