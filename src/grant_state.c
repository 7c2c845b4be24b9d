/*
 * grant_state.c - the grant age sidecar (format and contract: grant_state.h).
 */
#include "grant_state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "fileio.h"
#include "provider.h"
#include "record.h"
#include "token_cache.h"
#include "util.h"

#define STATE_MAX 8192	/* two scope lists of GRANT_SCOPE_MAX, escaped */
#define DAY 86400L

enum err
grant_state_path(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr)
{
	return token_grant_file(acc, ret_path, reterr);
}

/* Remove the records 0.1.0 kept under the account's name (best effort). */
static void
drop_legacy(const struct account *acc)
{
	struct buf path;
	int i;

	buf_init(&path, PATH_MAX);
	for (i = 0; i < 2; i++) {
		if (token_legacy_file(acc, i, ".grant", &path)) {
			(void)unlink(path.data);
		}
	}
	buf_release(&path);
}

static const struct record_key grant_keys[] = {
	{ "authorized", RECORD_REQUIRED }, { "refreshed", RECORD_REQUIRED },
	{ "how", RECORD_REQUIRED }, { "scope", 0 }, { "granted", 0 },
	{ NULL, 0 },
};

/* Version 1 (oasmtp 0.1.0) had no trailer. */
static const struct record_spec grant_spec = {
	.name = "oasmtp-grant", .what = "grant record",
	.min_version = 1, .max_version = 2, .trailer_since = 2,
	.keys = grant_keys,
};

/* Fill st from a parsed grant record; 0 when a value does not fit. */
static int
take_state(const struct record *rec, struct grant_state *st)
{
	size_t i;
	long v;

	for (i = 0; i < rec->n; i++) {
		const struct record_field *f = &rec->fields[i];

		if (strcmp(f->key, "how") == 0) {
			util_strlcpy(st->how, f->value, sizeof(st->how));
		} else if (strcmp(f->key, "scope") == 0) {
			util_strlcpy(st->scope, f->value, sizeof(st->scope));
		} else if (strcmp(f->key, "granted") == 0) {
			util_strlcpy(st->granted, f->value, sizeof(st->granted));
		} else if (record_field_long(&grant_spec, f, 0, LONG_MAX, &v,
			NULL) != ERR_OK) {
			return 0;
		} else if (strcmp(f->key, "authorized") == 0) {
			st->authorized = (time_t)v;
		} else {
			st->refreshed = (time_t)v;
		}
	}
	return 1;
}

/* Read the record at path into *ret; 1 when it is well-formed. */
static int
read_at(const char *path, struct grant_state *ret)
{
	const struct fileio_private rules = {
		.what = "grant record", .owner = geteuid(), .forbidden = 077,
		.max = STATE_MAX, .refused = ERR_CONFIG,
	};
	struct buf text;
	struct record rec;
	int ok = 0;

	memset(ret, 0, sizeof(*ret));
	buf_init(&text, STATE_MAX);
	if (fileio_read_private(AT_FDCWD, path, &rules, &text, NULL, NULL) ==
		ERR_OK &&
	    record_parse(&grant_spec, text.data, text.len, &rec, NULL) ==
		ERR_OK) {
		ok = take_state(&rec, ret);
		record_release(&rec);
	}
	buf_release(&text);
	if (!ok) {
		memset(ret, 0, sizeof(*ret));
	}
	return ok && (ret->authorized != 0 || ret->refreshed != 0);
}

int
grant_state_read(const struct account *acc, struct grant_state *ret)
{
	struct buf path;
	int ok, i;

	buf_init(&path, PATH_MAX);
	ok = grant_state_path(acc, &path, NULL) == ERR_OK &&
		read_at(path.data, ret);
	/* a record 0.1.0 wrote under the account's name */
	for (i = 0; !ok && i < 2; i++) {
		ok = token_legacy_file(acc, i, ".grant", &path) &&
			read_at(path.data, ret);
	}
	buf_release(&path);
	if (!ok) {
		memset(ret, 0, sizeof(*ret));
	}
	return ok;
}

static MUST_CHECK enum err
write_state(const struct account *acc, const struct grant_state *st,
	struct errinfo *reterr)
{
	struct buf path, data;
	enum err e;

	buf_init(&path, PATH_MAX);
	buf_init(&data, STATE_MAX);
	e = grant_state_path(acc, &path, reterr);
	if (e == ERR_OK) {
		e = record_begin(&data, grant_spec.name, 2);
		if (e == ERR_OK) {
			e = record_put_long(&data, "authorized",
				(long long)st->authorized);
		}
		if (e == ERR_OK) {
			e = record_put_long(&data, "refreshed",
				(long long)st->refreshed);
		}
		if (e == ERR_OK) {
			e = record_put_str(&data, "how",
				st->how[0] ? st->how : "-");
		}
		if (e == ERR_OK && st->scope[0] != '\0') {
			e = record_put_str(&data, "scope", st->scope);
		}
		if (e == ERR_OK && st->granted[0] != '\0') {
			e = record_put_str(&data, "granted", st->granted);
		}
		if (e == ERR_OK) {
			e = record_finish(&data);
		}
		if (e != ERR_OK) {
			e = errinfo_set(reterr, e, "grant state too long");
		}
	}
	if (e == ERR_OK) {
		e = fileio_write_private(path.data, data.data, data.len, 0,
			reterr);
	}
	if (e == ERR_OK) {
		drop_legacy(acc);
	}
	buf_release(&path);
	buf_release(&data);
	return e;
}

enum err
grant_state_note_authorized(const struct account *acc, const char *how,
	time_t now, struct errinfo *reterr)
{
	struct grant_state st;

	memset(&st, 0, sizeof(st));
	st.authorized = now;
	st.refreshed = now;
	util_strlcpy(st.how, how != NULL ? how : "-", sizeof(st.how));
	return write_state(acc, &st, reterr);
}

/* src into dst (cap bytes), cut after the last whole word that fits. */
static void
copy_words(char *dst, size_t cap, const char *src)
{
	size_t n;

	if (src == NULL) {
		dst[0] = '\0';
		return;
	}
	n = util_strlcpy(dst, src, cap);
	if (n >= cap) {
		char *sp = strrchr(dst, ' ');

		if (sp != NULL) {
			*sp = '\0';
		}
	}
}

enum err
grant_state_note_scopes(const struct account *acc, const char *asked,
	const char *granted, struct errinfo *reterr)
{
	struct grant_state st;

	(void)grant_state_read(acc, &st);
	copy_words(st.scope, sizeof(st.scope), asked);
	copy_words(st.granted, sizeof(st.granted), granted);
	return write_state(acc, &st, reterr);
}

enum err
grant_state_note_refreshed(const struct account *acc, time_t now,
	struct errinfo *reterr)
{
	struct grant_state st;

	(void)grant_state_read(acc, &st);
	st.refreshed = now;
	return write_state(acc, &st, reterr);
}

enum err
grant_state_drop(const struct account *acc, struct errinfo *reterr)
{
	struct buf path;
	enum err e;

	buf_init(&path, PATH_MAX);
	e = grant_state_path(acc, &path, reterr);
	if (e == ERR_OK) {
		e = fileio_remove(path.data, reterr);
	}
	if (e == ERR_OK) {
		drop_legacy(acc);
	}
	buf_release(&path);
	return e;
}

static void
day_string(time_t t, char *out, size_t size)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(out, size, "%Y-%m-%d", &tm) == 0) {
		util_strlcpy(out, "?", size);
	}
}

/* How many days before a limit we start warning. */
static long
lead_days(long limit_days)
{
	return limit_days >= 30 ? 14 : 2;
}

int
grant_state_warning(const struct provider_preset *p,
	const struct grant_state *st, const char *account, time_t now,
	char *out, size_t size)
{
	char day[32];

	out[0] = '\0';
	if (p == NULL) {
		return 0;
	}
	/*
	 * A grant that was refreshed after the fixed limit had passed is not
	 * subject to it (a published Google app): stay quiet then.
	 */
	if (p->grant_limit_days > 0 && st->authorized > 0) {
		time_t end = st->authorized + p->grant_limit_days * DAY;

		if (st->refreshed <= end &&
		    now >= end - lead_days(p->grant_limit_days) * DAY) {
			day_string(end, day, sizeof(day));
			snprintf(out, size, "account %s: if its %s OAuth app is "
				"still in \"Testing\", this grant %s on %s (%d "
				"days after authorization): publish the app, then "
				"run `oasmtp-token authorize %s`", account,
				p->name, now < end ? "ends" : "ended", day,
				p->grant_limit_days, account);
			return 1;
		}
	}
	if (p->idle_limit_days > 0 && st->refreshed > 0) {
		time_t end = st->refreshed + p->idle_limit_days * DAY;

		if (now >= end - lead_days(p->idle_limit_days) * DAY) {
			day_string(end, day, sizeof(day));
			snprintf(out, size, "account %s: %s ends grants after "
				"%d days without a refresh, on %s for this one: "
				"run `oasmtp-token refresh %s` (or enable "
				"oasmtp-token-refresh@%s.timer)", account, p->name,
				p->idle_limit_days, day, account, account);
			return 1;
		}
	}
	return 0;
}

int
grant_state_parse_duration(const char *s, long *ret_seconds)
{
	return util_parse_duration(s, 0, 3650L * DAY, ret_seconds);
}
