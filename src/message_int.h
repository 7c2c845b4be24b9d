/*
 * message_int.h - the message's representation, shared by the two halves
 * of the message module: message.c (reading and spooling, header access,
 * the wire form) and message_prepare.c (recipients, sender, added and
 * removed fields, the envelope).  Not for use outside them.
 */
#ifndef OASMTP_MESSAGE_INT_H
#define OASMTP_MESSAGE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "message.h"

/* Room for the fields message_prepare adds beyond the input bound. */
#define HEAD_MAX (4 * MESSAGE_HEADER_MAX)

struct field {
	char *raw;		/* "Name: value" and continuations, each + CRLF */
	size_t len;
	char *name;		/* NUL-terminated copy, trailing blanks cut */
	int removed;		/* dropped from the wire by message_prepare */
};

struct message {
	struct field *f;
	size_t n_f;
	size_t cap_f;
	size_t hdr_bytes;
	int body_fd;
	uint64_t body_len;
	int is_8bit;
	char *header_from;
	struct buf head;	/* wire header block + the empty line */
};

/* Blank or tab. */
int msg_is_wsp(char c);

/* Index of the first field named name (any case) at or after from, or n_f. */
size_t msg_find_field(const struct message *m, const char *name, size_t from);

/* Whether fl is a Resent-* field. */
int msg_is_resent(const struct field *fl);

/* Index of the first Resent-* field, or n_f. */
size_t msg_first_resent(const struct message *m);

/* The first address of field i, heap-owned, or NULL. */
char *msg_field_first_addr(const struct message *m, size_t i);

/*
 * Rebuild m->head: the added fields (may be NULL), the fields not removed,
 * and the empty line.  Errors: ERR_LIMIT, ERR_NOMEM.
 */
MUST_CHECK enum err msg_build_head(struct message *m, const struct buf *added,
	struct errinfo *reterr);

#endif
