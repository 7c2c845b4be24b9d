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
#include "token_cache.h"
#include "util.h"

#define STATE_MAX 4096
#define DAY 86400L

enum err
grant_state_path(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr)
{
	enum err e = token_lock_file(acc, ret_path, reterr);

	if (e != ERR_OK) {
		return e;
	}
	/* token_lock_file() always ends in ".lock" */
	buf_truncate(ret_path, ret_path->len - strlen(".lock"));
	e = buf_append_str(ret_path, ".grant");
	return e == ERR_OK ? ERR_OK :
		errinfo_set(reterr, e, "grant state path too long");
}

static void
parse(char *text, struct grant_state *st)
{
	char *line, *nl;
	long v;

	for (line = text; line != NULL && *line != '\0'; line = nl) {
		nl = strchr(line, '\n');
		if (nl != NULL) {
			*nl++ = '\0';
		}
		if (strncmp(line, "authorized ", 11) == 0 &&
		    util_parse_long(line + 11, 0, LONG_MAX, &v) == 0) {
			st->authorized = (time_t)v;
		} else if (strncmp(line, "refreshed ", 10) == 0 &&
		    util_parse_long(line + 10, 0, LONG_MAX, &v) == 0) {
			st->refreshed = (time_t)v;
		} else if (strncmp(line, "how ", 4) == 0) {
			util_strlcpy(st->how, line + 4, sizeof(st->how));
		}
	}
}

int
grant_state_read(const struct account *acc, struct grant_state *ret)
{
	struct buf path;
	char text[STATE_MAX];
	struct stat st;
	ssize_t n = -1;
	int fd;

	memset(ret, 0, sizeof(*ret));
	buf_init(&path, PATH_MAX);
	if (grant_state_path(acc, &path, NULL) != ERR_OK) {
		buf_release(&path);
		return 0;
	}
	fd = open(path.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	buf_release(&path);
	if (fd < 0) {
		return 0;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_uid == geteuid()) {
		do {
			n = read(fd, text, sizeof(text) - 1);
		} while (n < 0 && errno == EINTR);
	}
	close(fd);
	if (n <= 0) {
		return 0;
	}
	text[n] = '\0';
	if (strncmp(text, "oasmtp-grant 1\n", 15) != 0) {
		return 0;
	}
	parse(text + 15, ret);
	return ret->authorized != 0 || ret->refreshed != 0;
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
		e = buf_printf(&data, "oasmtp-grant 1\nauthorized %lld\n"
			"refreshed %lld\nhow %s\n", (long long)st->authorized,
			(long long)st->refreshed, st->how[0] ? st->how : "-");
		if (e != ERR_OK) {
			e = errinfo_set(reterr, e, "grant state too long");
		}
	}
	if (e == ERR_OK) {
		e = fileio_write_atomic(path.data, data.data, data.len, 0,
			reterr);
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
	if (e == ERR_OK && unlink(path.data) != 0 && errno != ENOENT) {
		e = errinfo_set(reterr, ERR_IO, "cannot remove '%s': %s",
			path.data, strerror(errno));
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
