/* msgid_map.c - threading repair state; see msgid_map.h. */
#include "msgid_map.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "account.h"
#include "fileio.h"
#include "paths.h"
#include "util.h"

#define MAP_MAX (4 * 1024 * 1024)

void
msgid_map_init(struct msgid_map *map)
{
	buf_init(&map->path, MSGID_MAP_PATH_MAX);
	buf_init(&map->data, MAP_MAX);
}

void
msgid_map_release(struct msgid_map *map)
{
	buf_release(&map->path);
	buf_release(&map->data);
}

static enum err
map_path(const struct account *acc, struct buf *path, struct errinfo *reterr)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	struct buf who;
	size_t i;
	enum err e;

	buf_reset(path);
	e = paths_state_dir(path);
	if (e == ERR_OK) {
		e = buf_append_str(path, "/oasmtp/message-ids-");
	}
	if (e != ERR_OK) {
		return errinfo_set(reterr, ERR_CONFIG, "no state directory "
			"for message IDs (HOME is not set)");
	}
	buf_init(&who, MSGID_MAP_WHO_MAX);
	e = buf_printf(&who, "%s\n%s\n%d\n%s\n", acc->name != NULL ? acc->name :
		"", acc->host != NULL ? acc->host : "", acc->port,
		acc->user != NULL ? acc->user : "");
	if (e != ERR_OK || EVP_Digest(who.data, who.len, md, &md_len,
	    EVP_sha256(), NULL) != 1) {
		buf_release(&who);
		return errinfo_set(reterr, ERR_INTERNAL, "SHA-256 failed");
	}
	buf_release(&who);
	for (i = 0; i < 16 && e == ERR_OK; i++) {
		e = buf_printf(path, "%02x", md[i]);
	}
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
		e = buf_append_str(ret, "/oasmtp/x");
	}
	if (e == ERR_OK) {
		e = fileio_secret_dir(buf_cstr(ret), geteuid(), 1, NULL);
	}
	if (e == ERR_OK) {
		buf_truncate(ret, ret->len - 2);
	}
	return e;
}

/* Keep the lines of in recorded since cutoff (and well-formed). */
static enum err
read_pairs(const char *path, time_t cutoff, struct buf *out,
	struct errinfo *reterr)
{
	char chunk[8192];
	struct buf raw;
	const char *p, *end;
	ssize_t n;
	int fd;
	enum err e = ERR_OK;

	buf_reset(out);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT) {
			return ERR_OK;
		}
		return errinfo_set(reterr, ERR_IO, "%s: %s", path,
			strerror(errno));
	}
	buf_init(&raw, MAP_MAX);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		if (buf_append(&raw, chunk, (size_t)n) != ERR_OK) {
			break;	/* too big: keep what fits, the rest is old */
		}
	}
	close(fd);
	p = raw.data;
	end = raw.data + raw.len;
	while (p < end && e == ERR_OK) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		char num[32];
		const char *tab;
		long t;

		if (nl == NULL) {
			break;
		}
		tab = memchr(p, '\t', (size_t)(nl - p));
		if (tab != NULL && (size_t)(tab - p) < sizeof(num)) {
			memcpy(num, p, (size_t)(tab - p));
			num[tab - p] = '\0';
			if (util_parse_long(num, 0, 0x7fffffffL, &t) == 0 &&
			    (time_t)t >= cutoff &&
			    memchr(tab + 1, '\t', (size_t)(nl - tab - 1))) {
				e = buf_append(out, p, (size_t)(nl - p + 1));
			}
		}
		p = nl + 1;
	}
	buf_release(&raw);
	return ERR_OK;
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
	struct buf path, lock, data;
	int lfd;
	enum err e;

	if (strpbrk(original, "\t\r\n") != NULL ||
	    strpbrk(assigned, "\t\r\n") != NULL) {
		return ERR_OK;	/* nothing a header could cite */
	}
	buf_init(&path, MSGID_MAP_PATH_MAX);
	buf_init(&lock, MSGID_MAP_PATH_MAX);
	buf_init(&data, MAP_MAX);
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
	if (e == ERR_OK) {
		e = fileio_write_private(buf_cstr(&path), data.data, data.len, 0,
			reterr);
	}
	if (lfd >= 0) {
		close(lfd);
	}
	buf_release(&path);
	buf_release(&lock);
	buf_release(&data);
	return e;
}
