/*
 * maildrop.h - the system maildrop: messages handed over by callers who
 * have no configuration of their own, written by the setgid oasmtp-drop
 * and picked up by the system service (oasmtp -q --system, pickup.c).
 *
 * The file format and the directory layout are documented at the top of
 * maildrop.c.  This module formats and parses an entry's header and holds
 * the option policy that both sides apply; it does no I/O, never prints
 * and never exits, so the privileged program stays small.
 *
 * Everything in a maildrop entry comes from an unprivileged caller: the
 * service re-checks the policy (maildrop_check_opts) on every entry it
 * reads, it never trusts the writer.
 */
#ifndef OASMTP_MAILDROP_H
#define OASMTP_MAILDROP_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct buf;
struct cli_opts;

#define MAILDROP_HEADER_MAX (256 * 1024)	/* the record before the body */
#define MAILDROP_MESSAGE_MAX (64L * 1024 * 1024)	/* the body */
#define MAILDROP_ID_LEN 24	/* hex: 8 of time, 16 random */
#define MAILDROP_LEFTOVER_AGE 3600	/* seconds before a .tmp is stale */

/* One parsed entry header.  Heap-owned; maildrop_entry_release(). */
struct maildrop_entry {
	long uid;		/* the caller's real uid */
	char *user;		/* its passwd name, or "#UID" */
	int64_t time;		/* when dropped (unix time) */
	char **argv;		/* "sendmail" + the stored arguments, NULL-ended */
	int argc;
	uint64_t body_offset;	/* where the message starts in the file */
};

/* Free what e owns and zero it; NULL is fine. */
void maildrop_entry_release(struct maildrop_entry *e);

/*
 * The options a maildrop entry may carry: a send (no other mode), no -C,
 * -a, -X, -oQ, --pretend or --system.  ERR_USAGE with a message naming
 * the refused option; ERR_OK when o may be stored or delivered.
 */
MUST_CHECK enum err maildrop_check_opts(const struct cli_opts *o,
	struct errinfo *reterr);

/*
 * Append the header record for a message dropped by uid/user at time now
 * with the n arguments args (argv without argv[0]) to out.
 * Errors: ERR_USAGE (too large: the arguments exceed
 * MAILDROP_HEADER_MAX), ERR_NOMEM.
 */
MUST_CHECK enum err maildrop_format_header(struct buf *out, long uid, const char *user,
	int64_t now, int n, char *const *args, struct errinfo *reterr);

/*
 * Parse the header record at the start of data[0..len).  On success
 * *ret is filled (the caller releases it) and ret->body_offset is the
 * length of the record.  ERR_DATA for anything malformed or incomplete,
 * ERR_NOMEM.
 */
MUST_CHECK enum err maildrop_parse_header(const char *data, size_t len,
	struct maildrop_entry *ret, struct errinfo *reterr);

/*
 * How many bytes of data[0..len) the header record takes, trailer
 * included, or 0 when its trailer has not been read yet.
 */
size_t maildrop_header_end(const char *data, size_t len);

/*
 * Classify a directory entry name: 2 for a complete entry "ID", 1 for
 * one being written "ID.tmp", 0 for anything else.
 */
int maildrop_name_kind(const char *name);

/* A fresh entry id (MAILDROP_ID_LEN hex digits + NUL) for time now. */
void maildrop_new_id(char out[MAILDROP_ID_LEN + 1], int64_t now);

#endif
