/* sysmode.c - the system-wide setup as oasmtp sees it; see sysmode.h. */
#include "sysmode.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oasmtp-config.h"

#include "buf.h"
#include "cli.h"
#include "config.h"
#include "log.h"
#include "paths.h"
#include "util.h"

const char *
sysmode_state_dir(void)
{
	return paths_service_state_dir(OASMTP_STATEDIR);
}

enum err
sysmode_maildrop_dir(struct buf *out, struct errinfo *reterr)
{
	const char *s = getenv("OASMTP_SPOOL_DIR");

	if (s == NULL || s[0] != '/') {
		s = OASMTP_SPOOLDIR;
	}
	if (buf_printf(out, "%s/maildrop", s) != ERR_OK) {
		return errinfo_set(reterr, ERR_LIMIT, "spool path too long");
	}
	return ERR_OK;
}

/* An installed oasmtp-drop: a regular file with the setgid bit. */
static int
is_drop(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & S_ISGID) != 0;
}

/* oasmtp-drop next to this executable, else in LIBEXECDIR; 1 if found. */
static int
find_drop(struct buf *out)
{
	int r = util_find_sibling("oasmtp-drop", LIBEXECDIR, is_drop, out);

	return r == 1 || (r == 0 && is_drop(buf_cstr(out)));
}

int
sysmode_handoff(const struct cli_opts *o, char **argv, enum err *ret_e,
	struct errinfo *reterr)
{
	struct buf drop;
	int err;

	if (o->mode != CLI_MODE_SEND || o->pretend || o->system ||
	    o->config_file != NULL || o->n_settings > 0 ||
	    config_user_file_exists(NULL)) {
		return 0;
	}
	buf_init(&drop, PATH_MAX);
	if (!find_drop(&drop)) {
		buf_release(&drop);
		return 0;
	}
	log_debug(1, "no personal configuration: handing the message to "
		"the system queue (%s)", buf_cstr(&drop));
	fflush(NULL);
	execv(buf_cstr(&drop), argv);
	err = errno;
	*ret_e = errinfo_set(reterr, ERR_INTERNAL, "cannot run '%s' for the "
		"system queue: %s", buf_cstr(&drop), strerror(err));
	buf_release(&drop);
	return 1;
}

enum err
sysmode_check_runner(const struct cli_opts *o, struct errinfo *reterr)
{
	if (!o->system || geteuid() != 0 ||
	    (o->mode != CLI_MODE_FLUSH_QUEUE && o->mode != CLI_MODE_QUEUE_DROP &&
	    o->mode != CLI_MODE_QUEUE_RETRY)) {
		return ERR_OK;
	}
	return errinfo_set(reterr, ERR_CONFIG, "refusing to change the system "
		"queue as root: its files must stay the service user's; run "
		"systemctl start oasmtp-system.service, or runuser -u %s -- "
		"oasmtp --system ...", OASMTP_SERVICE_USER);
}
