/*
 * sysmode.h - the system-wide setup as oasmtp sees it (doc/system-wide.md):
 * where the system maildrop and the service's state live, and whether a
 * send is handed to the system queue through oasmtp-drop.
 *
 * A send goes to the system queue when oasmtp-drop is installed (found
 * setgid next to oasmtp or in LIBEXECDIR) and the caller has no
 * configuration of their own and gave no -C.  Callers with a personal
 * configuration keep sending with their own accounts.
 *
 * OASMTP_SPOOL_DIR and STATE_DIRECTORY (set by systemd's StateDirectory=)
 * override the compiled-in directories for the unprivileged service and
 * for tests; oasmtp-drop itself never reads the environment.
 */
#ifndef OASMTP_SYSMODE_H
#define OASMTP_SYSMODE_H

#include "err.h"

struct buf;
struct cli_opts;

/*
 * The service's state directory: $STATE_DIRECTORY when it is one absolute
 * path, else OASMTP_STATEDIR.  Static or environment storage.
 */
const char *sysmode_state_dir(void);

/* The maildrop directory ($OASMTP_SPOOL_DIR or OASMTP_SPOOLDIR, then
 * "/maildrop") appended to out.  ERR_LIMIT. */
MUST_CHECK enum err sysmode_maildrop_dir(struct buf *out, struct errinfo *reterr);

/*
 * Whether this process may run o: root may look at the system queue
 * (mailq --system) but not change it (-q, --queue-retry, --queue-drop
 * with --system), which would leave root-owned files the service can no
 * longer update.  ERR_CONFIG naming the way to run it as the service user.
 */
MUST_CHECK enum err sysmode_check_runner(const struct cli_opts *o,
	struct errinfo *reterr);

/*
 * When o is a send for the system queue (see above), run oasmtp-drop with
 * argv in place of this process: returns 1 only if that failed, with the
 * error in *ret_e and reterr.  Returns 0, doing nothing, for every other
 * send.
 */
int sysmode_handoff(const struct cli_opts *o, char **argv, enum err *ret_e,
	struct errinfo *reterr);

#endif
