/* msgid_map.c - threading repair state; see msgid_map.h. */
#include "msgid_map.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "account.h"
#include "fileio.h"
#include "paths.h"
#include "record.h"
#include "sha256.h"
#include "util.h"


void
msgid_map_init(struct msgid_map *map)
{
	buf_init(&map->path, MSGID_MAP_PATH_MAX);
	buf_init(&map->data, MSGID_MAP_FILE_MAX);
}

void
msgid_map_release(struct msgid_map *map)
{
	buf_release(&map->path);
	buf_release(&map->data);
}

/*
 * The maps have a directory of their own below the state directory: the
 * confined sender may write there (it records what the server assigned)
 * and nowhere else in it (the token caches and grants beside it stay out
 * of its reach, src/cmd/sandbox.c).
 */
#define MAPS_DIR "/oasmtp/message-ids/"

static enum err
map_path(const struct account *acc, struct buf *path, struct errinfo *reterr)
{
	unsigned char md[SHA256_LEN];
	char name[2 * SHA256_NAME_BYTES + 1];
	struct buf who;
	enum err e;

	buf_reset(path);
	e = paths_state_dir(path);
	if (e == ERR_OK) {
		e = buf_append_str(path, MAPS_DIR);
	}
	if (e != ERR_OK) {
		return errinfo_set(reterr, ERR_CONFIG, "no state directory "
			"for message IDs (HOME is not set)");
	}
	buf_init(&who, MSGID_MAP_WHO_MAX);
	e = buf_printf(&who, "%s\n%s\n%d\n%s\n", acc->name != NULL ? acc->name :
		"", acc->host != NULL ? acc->host : "", acc->port,
		acc->user != NULL ? acc->user : "");
	if (e != ERR_OK) {
		buf_release(&who);
		return errinfo_set(reterr, e, "account name, host and user "
			"too long to name a Message-ID map");
	}
	sha256(who.data, who.len, md);
	buf_release(&who);
	util_hex(name, md, SHA256_NAME_BYTES);
	e = buf_append_str(path, name);
	if (e != ERR_OK) {
		return errinfo_set(reterr, e, "out of memory");
	}
	return fileio_secret_dir(buf_cstr(path), geteuid(), 1, reterr);
}

enum err
msgid_map_dir(struct buf *ret)
{
	enum err e = paths_state_dir(ret);

	if (e == ERR_OK) {
		e = buf_append_str(ret, MAPS_DIR "x");
	}
	if (e == ERR_OK) {
		e = fileio_secret_dir(buf_cstr(ret), geteuid(), 1, NULL);
	}
	if (e == ERR_OK) {
		buf_truncate(ret, ret->len - 2);
	}
	return e;
}

/*
 * The state file is a record (record.h) with one field a pair:
 *
 *   oasmtp-message-ids 1
 *   pair TIME ORIGINAL ASSIGNED
 *   end
 *
 * TIME is when the server assigned the ID (seconds since the epoch); an
 * ID holds no space or control byte.  In memory a pair is a line
 * "TIME\tORIGINAL\tASSIGNED\n" (msgid_map.h).
 */
static const struct record_key map_keys[] = {
	{ "pair", RECORD_REPEAT },
	{ NULL, 0 },
};

static const struct record_spec map_spec = {
	"oasmtp-message-ids", "Message-ID map", 1, 1, 1, 0, map_keys,
};

/* Whether s (n bytes) can be an ID in the file. */
static int
id_ok(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f) {
			return 0;
		}
	}
	return n > 0;
}

/* One pair's value "TIME ORIGINAL ASSIGNED": kept when since cutoff. */
static enum err
take_pair(const char *path, const struct record_field *f, time_t cutoff,
	struct buf *out, struct errinfo *reterr)
{
	const char *v = f->value, *end = f->value + f->len;
	const char *s1 = memchr(v, ' ', f->len);
	const char *s2 = s1 != NULL ? memchr(s1 + 1, ' ',
		(size_t)(end - s1 - 1)) : NULL;
	char num[32];
	long t;

	if (s2 == NULL || (size_t)(s1 - v) >= sizeof(num) ||
	    !id_ok(s1 + 1, (size_t)(s2 - s1 - 1)) ||
	    !id_ok(s2 + 1, (size_t)(end - s2 - 1))) {
		return errinfo_set(reterr, ERR_DATA, "%s, line %u: not a "
			"'pair TIME ORIGINAL ASSIGNED' line (remove the file: "
			"replies to messages sent before lose their thread)",
			path, f->line);
	}
	memcpy(num, v, (size_t)(s1 - v));
	num[s1 - v] = '\0';
	if (util_parse_long(num, 0, LONG_MAX, &t) != 0) {
		return errinfo_set(reterr, ERR_DATA, "%s, line %u: '%s' is not "
			"a time", path, f->line, num);
	}
	if ((time_t)t < cutoff) {
		return ERR_OK;	/* older than MSGID_MAP_KEEP: dropped */
	}
	if (buf_printf(out, "%ld\t%.*s\t%.*s\n", t, (int)(s2 - s1 - 1),
	    s1 + 1, (int)(end - s2 - 1), s2 + 1) != ERR_OK) {
		return errinfo_set(reterr, ERR_LIMIT, "%s: too many message "
			"IDs", path);
	}
	return ERR_OK;
}

/* The pairs of the file at path recorded since cutoff, into out. */
static enum err
read_pairs(const char *path, time_t cutoff, struct buf *out,
	struct errinfo *reterr)
{
	const struct fileio_private priv = {
		"Message-ID map", geteuid(), 077, 0, MSGID_MAP_FILE_MAX,
		ERR_DATA,
	};
	struct record rec;
	struct buf raw;
	size_t i;
	int exists = 0;
	enum err e;

	buf_reset(out);
	buf_init(&raw, MSGID_MAP_FILE_MAX);
	e = fileio_read_private(AT_FDCWD, path, &priv, &raw, &exists, reterr);
	if (e != ERR_OK || !exists) {
		buf_release(&raw);
		return e;
	}
	e = record_parse(&map_spec, raw.data, raw.len, &rec, reterr);
	buf_release(&raw);
	if (e != ERR_OK) {
		errinfo_prefix(reterr, "%s: ", path);
		return e;
	}
	for (i = 0; e == ERR_OK && i < rec.n; i++) {
		e = take_pair(path, &rec.fields[i], cutoff, out, reterr);
	}
	record_release(&rec);
	return e;
}

/* The record of the pairs in data (lines as in memory) into out. */
static enum err
write_pairs(const struct buf *data, struct buf *out)
{
	const char *p = data->data, *end = data->data + data->len;
	enum err e = record_begin(out, map_spec.name, 1);
	char pair[2 * MSGID_MAP_ID_MAX + 32];

	while (e == ERR_OK && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)(nl - p), i;

		if (n >= sizeof(pair)) {
			return ERR_LIMIT;
		}
		for (i = 0; i < n; i++) {
			pair[i] = p[i] == '\t' ? ' ' : p[i];
		}
		e = record_put(out, "pair", pair, n);
		p = nl + 1;
	}
	if (e == ERR_OK) {
		e = record_finish(out);
	}
	return e;
}

enum err
msgid_map_load(struct msgid_map *map, const struct account *acc, time_t now,
	struct errinfo *reterr)
{
	enum err e = map_path(acc, &map->path, reterr);

	if (e != ERR_OK) {
		return e;
	}
	return read_pairs(buf_cstr(&map->path), now - MSGID_MAP_KEEP,
		&map->data, reterr);
}

enum err
msgid_map_add(struct msgid_map *map, const char *original,
	const char *assigned, time_t now)
{
	size_t olen = strlen(original), alen = strlen(assigned);

	if (!id_ok(original, olen) || !id_ok(assigned, alen) ||
	    olen >= MSGID_MAP_ID_MAX || alen >= MSGID_MAP_ID_MAX) {
		return ERR_OK;	/* nothing a header could cite */
	}
	return buf_printf(&map->data, "%lld\t%s\t%s\n", (long long)now,
		original, assigned);
}

int
msgid_map_next(const struct msgid_map *map, size_t *pos,
	const char **ret_original, size_t *ret_olen,
	const char **ret_assigned, size_t *ret_alen)
{
	const char *p = map->data.data + *pos;
	const char *end = map->data.data + map->data.len;
	const char *nl, *t1, *t2;

	if (*pos >= map->data.len) {
		return 0;
	}
	nl = memchr(p, '\n', (size_t)(end - p));
	t1 = memchr(p, '\t', (size_t)(nl - p));
	t2 = memchr(t1 + 1, '\t', (size_t)(nl - t1 - 1));
	*ret_original = t1 + 1;
	*ret_olen = (size_t)(t2 - t1 - 1);
	*ret_assigned = t2 + 1;
	*ret_alen = (size_t)(nl - t2 - 1);
	*pos = (size_t)(nl + 1 - map->data.data);
	return 1;
}

int
msgid_map_lookup(void *ctx, const char *id, size_t len, struct buf *ret)
{
	const struct msgid_map *map = ctx;
	const char *p = map->data.data, *end = map->data.data + map->data.len;
	int found = 0;

	/* the newest pair for an ID wins: scan them all */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *t1 = memchr(p, '\t', (size_t)(nl - p));
		const char *t2 = memchr(t1 + 1, '\t', (size_t)(nl - t1 - 1));

		if ((size_t)(t2 - t1 - 1) == len &&
		    memcmp(t1 + 1, id, len) == 0) {
			buf_reset(ret);
			found = buf_append(ret, t2 + 1, (size_t)(nl - t2 - 1)) ==
				ERR_OK;
		}
		p = nl + 1;
	}
	return found;
}

int
msgid_map_assigned(const char *final_reply, const char *own, struct buf *ret)
{
	const char *p = final_reply;

	while ((p = strchr(p, '<')) != NULL) {
		const char *gt = strchr(p, '>');
		size_t n;

		if (gt == NULL) {
			return 0;
		}
		n = (size_t)(gt - p - 1);
		if (n > 0 && n < 1000 && memchr(p + 1, '@', n) != NULL &&
		    strcspn(p + 1, " \t<\r\n") >= n) {
			if (strlen(own) == n && memcmp(own, p + 1, n) == 0) {
				return 0;
			}
			return buf_append(ret, p + 1, n) == ERR_OK;
		}
		p = gt;
	}
	return 0;
}

enum err
msgid_map_record(const struct account *acc, const char *original,
	const char *assigned, time_t now, struct errinfo *reterr)
{
	struct buf path, lock, data, out;
	int lfd;
	enum err e;

	if (!id_ok(original, strlen(original)) ||
	    !id_ok(assigned, strlen(assigned)) ||
	    strlen(original) >= MSGID_MAP_ID_MAX ||
	    strlen(assigned) >= MSGID_MAP_ID_MAX) {
		return ERR_OK;	/* nothing a header could cite */
	}
	buf_init(&path, MSGID_MAP_PATH_MAX);
	buf_init(&lock, MSGID_MAP_PATH_MAX);
	buf_init(&data, MSGID_MAP_FILE_MAX);
	buf_init(&out, MSGID_MAP_FILE_MAX);
	e = map_path(acc, &path, reterr);
	if (e == ERR_OK && buf_printf(&lock, "%s.lock", buf_cstr(&path)) !=
	    ERR_OK) {
		e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	lfd = e == ERR_OK ? open(buf_cstr(&lock), O_RDWR | O_CREAT | O_CLOEXEC
		| O_NOFOLLOW, 0600) : -1;
	if (e == ERR_OK && (lfd < 0 || flock(lfd, LOCK_EX) != 0)) {
		e = errinfo_set(reterr, ERR_IO, "%s: %s", buf_cstr(&lock),
			strerror(errno));
	}
	if (e == ERR_OK) {
		e = read_pairs(buf_cstr(&path), now - MSGID_MAP_KEEP, &data,
			reterr);
	}
	if (e == ERR_OK && buf_printf(&data, "%lld\t%s\t%s\n", (long long)now,
	    original, assigned) != ERR_OK) {
		e = errinfo_set(reterr, ERR_LIMIT, "%s: too many message IDs",
			buf_cstr(&path));
	}
	if (e == ERR_OK && write_pairs(&data, &out) != ERR_OK) {
		e = errinfo_set(reterr, ERR_LIMIT, "%s: too many message IDs",
			buf_cstr(&path));
	}
	if (e == ERR_OK) {
		e = fileio_write_private(buf_cstr(&path), out.data, out.len, 0,
			reterr);
	}
	if (lfd >= 0) {
		close(lfd);
	}
	buf_release(&path);
	buf_release(&lock);
	buf_release(&data);
	buf_release(&out);
	return e;
}
