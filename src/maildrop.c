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
 * record has the format of record.h (which gives the escape rule):
 *
 *   oasmtp-maildrop 2     format name and version, always first
 *   uid N                 the caller's real uid (from the kernel)
 *   user NAME             its passwd name ("#N" when it has none)
 *   time T                unix time of the drop
 *   arg VALUE             one line per command-line argument, in order
 *                         (argv[0] excluded); zero or more
 *   end                   always last; the message follows it
 *
 * Unknown keys are an error.  Version 1 (oasmtp 0.1.0) differs only in
 * escaping every control byte as "\xHH"; it is still read.
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
#include "record.h"

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

static const struct record_key maildrop_keys[] = {
	{ "uid", RECORD_REQUIRED }, { "user", RECORD_REQUIRED },
	{ "time", RECORD_REQUIRED }, { "arg", RECORD_REPEAT }, { NULL, 0 },
};

/* Version 1 (0.1.0) escaped with "\\" and "\xHH" only: a subset. */
static const struct record_spec maildrop_spec = {
	.name = "oasmtp-maildrop", .what = "maildrop record",
	.min_version = 1, .max_version = 2, .trailer_since = 1,
	.body_follows = 1, .keys = maildrop_keys,
};

enum err
maildrop_format_header(struct buf *out, long uid, const char *user,
	int64_t now, int n, char *const *args, struct errinfo *reterr)
{
	enum err e;
	int i;

	e = record_begin(out, maildrop_spec.name, 2);
	if (e == ERR_OK) {
		e = record_put_long(out, "uid", uid);
	}
	if (e == ERR_OK) {
		e = record_put_str(out, "user", user);
	}
	if (e == ERR_OK) {
		e = record_put_long(out, "time", now);
	}
	for (i = 0; i < n && e == ERR_OK; i++) {
		e = record_put_str(out, "arg", args[i]);
	}
	if (e == ERR_OK) {
		e = record_finish(out);
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
add_arg(struct maildrop_entry *e, char *v)
{
	char **n = realloc(e->argv, ((size_t)e->argc + 2) * sizeof(char *));

	if (n == NULL) {
		return -1;
	}
	e->argv = n;
	e->argv[e->argc++] = v;
	e->argv[e->argc] = NULL;
	return 0;
}

/* Move the value of f into e (the record gives it up). */
static MUST_CHECK enum err
take_field(struct maildrop_entry *e, struct record_field *f,
	struct errinfo *reterr)
{
	const char *v;
	long n;
	enum err r;

	if (strcmp(f->key, "uid") == 0 || strcmp(f->key, "time") == 0) {
		r = record_field_long(&maildrop_spec, f, 0, LONG_MAX, &n,
			reterr);
		if (r == ERR_OK && f->key[0] == 'u') {
			e->uid = n;
		} else if (r == ERR_OK) {
			e->time = n;
		}
		return r;
	}
	r = record_field_str(&maildrop_spec, f, &v, reterr);
	if (r != ERR_OK) {
		return r;
	}
	if (strcmp(f->key, "user") == 0) {
		e->user = f->value;
	} else if (add_arg(e, f->value) != 0) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	f->value = NULL;
	f->len = 0;
	return ERR_OK;
}

enum err
maildrop_parse_header(const char *data, size_t len,
	struct maildrop_entry *ret, struct errinfo *reterr)
{
	struct maildrop_entry e;
	struct record rec;
	char *first;
	enum err r;
	size_t i;

	r = record_parse(&maildrop_spec, data, len, &rec, reterr);
	if (r != ERR_OK) {
		return r;
	}
	memset(&e, 0, sizeof(e));
	first = strdup("sendmail");
	if (first == NULL || add_arg(&e, first) != 0) {
		free(first);
		r = errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	for (i = 0; i < rec.n && r == ERR_OK; i++) {
		r = take_field(&e, &rec.fields[i], reterr);
	}
	e.body_offset = rec.length;
	record_release(&rec);
	if (r != ERR_OK) {
		maildrop_entry_release(&e);
		return r;
	}
	*ret = e;
	return ERR_OK;
}

size_t
maildrop_header_end(const char *data, size_t len)
{
	return record_trailer_end(data, len);
}

int
maildrop_name_kind(const char *name)
{
	if (strspn(name, "0123456789abcdef") < MAILDROP_ID_LEN) {
		return 0;
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
