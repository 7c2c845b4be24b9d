/*
 * message_ids.c - the message's own Message-ID and the rewriting of the
 * IDs it cites (In-Reply-To:, References:) in the wire header block; see
 * message.h.
 */
#include <stdlib.h>
#include <string.h>

#include "message_int.h"
#include "msgid_map.h"
#include "util.h"

/* Length of the field starting at p (with its continuation lines). */
static size_t
field_len(const char *p, const char *end)
{
	const char *q = p;

	for (;;) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));

		if (nl == NULL) {
			return (size_t)(end - p);
		}
		q = nl + 1;
		if (q >= end || (*q != ' ' && *q != '\t')) {
			return (size_t)(q - p);
		}
	}
}

static int
field_is(const char *p, size_t n, const char *name)
{
	size_t k = strlen(name);

	return n > k && util_strncasecmp(p, name, k) == 0 && p[k] == ':';
}

int
message_cites_ids(const struct message *m)
{
	const char *p = m->head.data, *end = m->head.data + m->head.len;

	while (p < end && !(end - p >= 2 && p[0] == '\r' && p[1] == '\n')) {
		size_t n = field_len(p, end);

		if ((field_is(p, n, "In-Reply-To") ||
		    field_is(p, n, "References")) && memchr(p, '<', n) != NULL) {
			return 1;
		}
		p += n;
	}
	return 0;
}

enum err
message_own_id(const struct message *m, struct buf *out)
{
	const char *p = m->head.data, *end = m->head.data + m->head.len;

	while (p < end && !(end - p >= 2 && p[0] == '\r' && p[1] == '\n')) {
		size_t n = field_len(p, end);

		if (field_is(p, n, "Message-ID")) {
			const char *lt = memchr(p, '<', n);
			const char *gt = lt != NULL ? memchr(lt, '>',
				(size_t)(p + n - lt)) : NULL;

			if (gt != NULL && gt - lt > 1) {
				return buf_append(out, lt + 1,
					(size_t)(gt - lt - 1));
			}
			return ERR_OK;
		}
		p += n;
	}
	return ERR_OK;
}

enum err
message_rewrite_refs(struct message *m,
	int (*lookup)(void *ctx, const char *id, size_t len, struct buf *ret),
	void *ctx, int *ret_changed, struct errinfo *reterr)
{
	const char *p = m->head.data, *end = m->head.data + m->head.len;
	struct buf out, id;
	enum err e = ERR_OK;

	*ret_changed = 0;
	buf_init(&out, HEAD_MAX);
	buf_init(&id, MSGID_MAP_ID_MAX);
	while (e == ERR_OK && p < end) {
		size_t n = field_len(p, end);
		const char *q = p, *fend = p + n;

		if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
			n = (size_t)(end - p);	/* the empty line (and all) */
			e = buf_append(&out, p, n);
			p += n;
			break;
		}
		if (!field_is(p, n, "In-Reply-To") &&
		    !field_is(p, n, "References")) {
			e = buf_append(&out, p, n);
			p += n;
			continue;
		}
		while (e == ERR_OK && q < fend) {
			const char *lt = memchr(q, '<', (size_t)(fend - q));
			const char *gt = lt != NULL ? memchr(lt, '>',
				(size_t)(fend - lt)) : NULL;

			if (gt == NULL) {
				e = buf_append(&out, q, (size_t)(fend - q));
				break;
			}
			e = buf_append(&out, q, (size_t)(lt - q));
			buf_reset(&id);
			if (e == ERR_OK && lookup(ctx, lt + 1,
			    (size_t)(gt - lt - 1), &id)) {
				*ret_changed = 1;
				e = buf_putc(&out, '<');
				if (e == ERR_OK) {
					e = buf_append(&out, id.data, id.len);
				}
				if (e == ERR_OK) {
					e = buf_putc(&out, '>');
				}
			} else if (e == ERR_OK) {
				e = buf_append(&out, lt, (size_t)(gt - lt + 1));
			}
			q = gt + 1;
		}
		p = fend;
	}
	if (e == ERR_OK && *ret_changed) {
		buf_release(&m->head);
		m->head = out;
		buf_init(&out, HEAD_MAX);
	}
	buf_release(&out);
	buf_release(&id);
	if (e != ERR_OK) {
		*ret_changed = 0;
		return errinfo_set(reterr, e, "rewriting In-Reply-To/"
			"References: header block too large");
	}
	return ERR_OK;
}
