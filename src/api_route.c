/* api_route.c - the remembered choice of transport auto (api_route.h). */
#include "api_route.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fileio.h"
#include "paths.h"
#include "record.h"
#include "sysmode.h"
#include "util.h"

/* a route file: which API and why, one short record */
#define ROUTE_RECORD_MAX 8192

static const struct record_key route_keys[] = {
	{ "api", RECORD_REQUIRED },
	{ "since", RECORD_REQUIRED },
	{ "until", RECORD_REQUIRED },
	{ "reason", 0 },
	{ NULL, 0 },
};

static const struct record_spec route_spec = {
	.name = "oasmtp-route",
	.what = "transport auto record",
	.min_version = 1,
	.max_version = 1,
	.trailer_since = 1,
	.body_follows = 0,
	.keys = route_keys,
};

/* The file of acc into path (reset); with create its directory is made. */
static enum err
route_path(const struct account *acc, int create, struct buf *path,
	struct errinfo *reterr)
{
	enum err e;

	buf_reset(path);
	if (acc->system) {
		e = buf_append_str(path, sysmode_state_dir());
	} else {
		e = paths_state_dir(path);
		if (e == ERR_OK) {
			e = buf_append_str(path, "/oasmtp");
		}
	}
	if (e == ERR_OK && create) {
		e = fileio_secret_dir(path->data, geteuid(), 1, reterr);
		if (e == ERR_OK) {
			e = fileio_mkdir_private(path->data, reterr);
		}
		if (e != ERR_OK) {
			return e;
		}
	}
	if (e == ERR_OK) {
		e = buf_append_str(path, "/route-");
	}
	if (e == ERR_OK) {
		e = util_append_file_name(path, acc->name != NULL ? acc->name :
			"");
	}
	return e == ERR_OK ? ERR_OK : errinfo_set(reterr, e, "no directory "
		"for the transport auto record");
}

int
api_route_recall(const struct account *acc, time_t now,
	enum api_kind *ret_kind, time_t *ret_since, struct buf *ret_reason)
{
	const struct fileio_private fp = {
		.what = "transport auto record", .owner = geteuid(),
		.forbidden = 077, .follow = 0, .max = 8192,
		.refused = ERR_DATA,
	};
	struct buf path, data;
	struct record r;
	long since = 0, until = 0;
	const char *api, *reason;
	int exists = 0, found = 0;

	buf_init(&path, PATH_MAX);
	buf_init(&data, ROUTE_RECORD_MAX);
	if (acc->transport != VIA_AUTO ||
	    route_path(acc, 0, &path, NULL) != ERR_OK ||
	    fileio_read_private(AT_FDCWD, path.data, &fp, &data, &exists,
	    NULL) != ERR_OK || !exists ||
	    record_parse(&route_spec, data.data, data.len, &r, NULL) !=
	    ERR_OK) {
		goto out;
	}
	api = record_get(&r, "api");
	reason = record_get(&r, "reason");
	(void)util_parse_long(record_get(&r, "since"), 0, LONG_MAX, &since);
	(void)util_parse_long(record_get(&r, "until"), 0, LONG_MAX, &until);
	/* the API the account would fall back to now, or none */
	if (api != NULL && strcmp(api, api_kind_name(api_kind_of(acc))) == 0
	    && now >= since && now < until && until - since <=
	    API_ROUTE_SECONDS) {
		found = 1;
		*ret_kind = api_kind_of(acc);
		if (ret_since != NULL) {
			*ret_since = (time_t)since;
		}
		if (ret_reason != NULL && reason != NULL &&
		    buf_append_str(ret_reason, reason) != ERR_OK) {
			buf_reset(ret_reason);	/* the reason is only for -v */
		}
	}
	record_release(&r);
out:
	buf_release(&path);
	buf_release(&data);
	return found;
}

enum err
api_route_remember(const struct account *acc, enum api_kind kind,
	const char *reason, time_t now, struct errinfo *reterr)
{
	struct buf path, rec;
	enum err e;

	buf_init(&path, PATH_MAX);
	buf_init(&rec, ROUTE_RECORD_MAX);
	e = route_path(acc, 1, &path, reterr);
	if (e == ERR_OK && (record_begin(&rec, route_spec.name, 1) != ERR_OK ||
	    record_put_str(&rec, "api", api_kind_name(kind)) != ERR_OK ||
	    record_put_long(&rec, "since", (long long)now) != ERR_OK ||
	    record_put_long(&rec, "until", (long long)now +
	    API_ROUTE_SECONDS) != ERR_OK ||
	    record_put(&rec, "reason", reason, strlen(reason) > 1000 ? 1000 :
	    strlen(reason)) != ERR_OK || record_finish(&rec) != ERR_OK)) {
		e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	if (e == ERR_OK) {
		e = fileio_write_private(path.data, rec.data, rec.len, 0,
			reterr);
	}
	buf_release(&path);
	buf_release(&rec);
	return e;
}

void
api_route_forget(const struct account *acc)
{
	struct buf path;

	buf_init(&path, PATH_MAX);
	if (route_path(acc, 0, &path, NULL) == ERR_OK) {
		(void)unlink(path.data);
	}
	buf_release(&path);
}
