/*
 * pickup.h - the system service's side of the maildrop (maildrop.h):
 * turn every complete maildrop entry into an entry of the system queue.
 *
 * For each entry the service re-checks what the caller asked for
 * (maildrop_check_opts), cross-checks the recorded uid with the file's
 * owner, then prepares the message exactly as a direct send would, but
 * with the system configuration: account chosen by the sender, aliases,
 * from_rewrite.  The prepared message is stored with queue_add() in the
 * account's queue (system default: STATE/queue) and the maildrop entry
 * removed.  A crash between the two may deliver a message twice, never
 * lose one.
 *
 * Entries that can never be sent (malformed, refused options, no
 * recipients, bad headers) are moved to STATE/rejected/ and reported on
 * stderr (the service's journal) with the caller's name.
 */
#ifndef OASMTP_PICKUP_H
#define OASMTP_PICKUP_H

#include <stddef.h>

#include "err.h"

struct cli_opts;

/*
 * Pick up every complete entry of the maildrop (o->system must be set;
 * o->config_file, when given, names the system file).  A missing maildrop
 * is empty.  *ret_moved (may be NULL) counts the entries queued.
 * Errors: ERR_CONFIG (the maildrop is not ours: run as the service user;
 * the system configuration cannot be loaded), ERR_IO, ERR_NOMEM.  Entries
 * not handled because of an error stay for the next run.
 */
MUST_CHECK enum err pickup_run(const struct cli_opts *o, size_t *ret_moved,
	struct errinfo *reterr);

/* The number of complete entries waiting in the maildrop (for mailq);
 * -1 when it cannot be read. */
long pickup_pending(void);

#endif
