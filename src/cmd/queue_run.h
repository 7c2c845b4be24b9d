/*
 * queue_run.h - delivering the queue: `oasmtp -q` and the detached
 * delivery of `queue always` (doc/design.md, On-disk state).
 *
 * Entries are grouped by (configuration, account) and each group is sent
 * over ONE connection, transactions back to back, the credential fetched
 * once.  An entry is removed only after the final 250 for it; a 5xx to its
 * own transaction moves it to failed/ with the reply; a temporary failure
 * reschedules it with back-off until queue_max_age, after which it moves to
 * failed/ too.  Nothing is deleted silently.
 *
 * Partial delivery: when a 452 split an entry's recipients, the record is
 * rewritten without the delivered ones as soon as their part is committed
 * (before the rest is sent), and a failure of the rest keeps (or moves to
 * failed/) the entry for the others only, its last error naming who has
 * the message.  Nobody gets a queued message twice.
 *
 * Re-authorization: when an account's grant is gone (ERR_REAUTH), the run
 * tells the human once per account (notify_reauth(): syslog and
 * notify_command) and defers the account's entries in every queue
 * directory without connecting or asking the token endpoint again.
 */
#ifndef OASMTP_QUEUE_RUN_H
#define OASMTP_QUEUE_RUN_H

#include "err.h"

struct cli_opts;

/*
 * -q: deliver the due entries of every queue directory the configuration
 * names (plus the default one), under the queue lock (another flusher
 * running: nothing to do).  Filters (-qI, -qR, -qS) select entries and
 * ignore the back-off schedule.  Delivery failures are reported as warnings
 * and recorded in the entries; the result is ERR_OK unless the queue itself
 * cannot be read (ERR_IO, ERR_NOMEM) or no queue directory is known
 * (ERR_CONFIG).
 */
MUST_CHECK enum err queue_run_flush(const struct cli_opts *o, struct errinfo *reterr);

/*
 * queue always: deliver entry id of dir (and whatever else is due there)
 * in a detached process (double fork, new session, stdio on /dev/null) and
 * return at once.  When the fork fails the entry waits for the next -q.
 */
void queue_run_detached(const struct cli_opts *o, const char *dir,
	const char *id);

#endif
