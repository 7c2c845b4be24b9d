/*
 * msgid_map.h - threading repair (oasmtprc(5) message_id_fix): servers
 * that replace the Message-ID (Outlook / Microsoft 365) return the new one
 * in their final reply; the original -> assigned pairs of an account are
 * kept (24 hours) in a 0600 state file, $XDG_STATE_HOME/oasmtp/
 * message-ids/HASH (else ~/.local/state/oasmtp/...), a record (record.h:
 * "oasmtp-message-ids 1", one "pair TIME ORIGINAL ASSIGNED" line a pair),
 * so later messages of that account that cite an original ID in
 * In-Reply-To:/References: cite the assigned one instead.  Nothing here
 * prints.
 */
#ifndef OASMTP_MSGID_MAP_H
#define OASMTP_MSGID_MAP_H

#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "err.h"

struct account;

/* How long a pair is kept, in seconds. */
#define MSGID_MAP_KEEP (24 * 3600)

/* One Message-ID's text (a header line is at most 998 bytes). */
#define MSGID_MAP_ID_MAX 1024
/* The state file's and its lock's path; the account's identity text. */
#define MSGID_MAP_PATH_MAX 4096
#define MSGID_MAP_WHO_MAX 4096
/* The state file (read or written); the pairs kept in memory. */
#define MSGID_MAP_FILE_MAX (4 * 1024 * 1024)

struct msgid_map {
	struct buf path;
	struct buf data;	/* "time\toriginal\tassigned\n" lines */
};

void msgid_map_init(struct msgid_map *map);
void msgid_map_release(struct msgid_map *map);

/*
 * Load the pairs of acc recorded since now - MSGID_MAP_KEEP.  A missing
 * file is an empty map.  Errors: ERR_IO, ERR_CONFIG (state directory not
 * private), ERR_DATA (the file is not a well-formed map, or not private:
 * the message names it and the line), ERR_LIMIT, ERR_NOMEM.
 */
enum err msgid_map_load(struct msgid_map *map, const struct account *acc,
	time_t now, struct errinfo *reterr);

/*
 * Add original -> assigned to map's memory only (a session keeper's map:
 * doc/git-send-email.md).  Nothing is added for an ID that a header could
 * not cite (a space or control byte, MSGID_MAP_ID_MAX bytes or more).
 * Errors: ERR_LIMIT (the map is full), ERR_NOMEM.
 */
MUST_CHECK enum err msgid_map_add(struct msgid_map *map, const char *original,
	const char *assigned, time_t now);

/*
 * The pair at *pos (0 for the first), oldest first: 1 with the IDs
 * (not NUL-terminated) and *pos moved on, 0 after the last.
 */
int msgid_map_next(const struct msgid_map *map, size_t *pos,
	const char **ret_original, size_t *ret_olen,
	const char **ret_assigned, size_t *ret_alen);

/*
 * A lookup for message_rewrite_refs() (ctx: the map): the assigned ID of
 * original id, appended to ret; 1 when found.
 */
int msgid_map_lookup(void *ctx, const char *id, size_t len, struct buf *ret);

/*
 * The ID a final reply assigns ("250 2.0.0 OK <ID@host> [Hostname=...]"),
 * appended to ret without brackets, when it differs from own; returns 1
 * then, else 0.
 */
int msgid_map_assigned(const char *final_reply, const char *own,
	struct buf *ret);

/*
 * The directory of the maps (created, checked private) appended to ret,
 * for a confined process that must be allowed to write there and only
 * there.  Errors as for msgid_map_load().
 */
enum err msgid_map_dir(struct buf *ret);

/*
 * Record original -> assigned for acc (under a lock, with the pairs other
 * processes wrote meanwhile; old pairs dropped).  Errors: ERR_IO,
 * ERR_CONFIG, ERR_DATA (as for msgid_map_load()), ERR_LIMIT, ERR_NOMEM.
 */
enum err msgid_map_record(const struct account *acc, const char *original,
	const char *assigned, time_t now, struct errinfo *reterr);

#endif
