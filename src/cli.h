/*
 * cli.h - the sendmail-compatible command line, parsed into struct cli_opts.
 *
 * The parser does no I/O, never prints and never exits: main.c prints the
 * message of a failed parse and exits 64 (EX_USAGE), and prints
 * cli_help_text() for CLI_MODE_HELP.
 *
 * Accepted syntax (oasmtp(1)):
 *   - short options may be clustered ("-ti", "-toi"); an option that takes a
 *     value takes the rest of its cluster ("-fuser@x", "-FCronDaemon",
 *     "-B8BITMIME") or, when nothing is glued, the next argument ("-f x");
 *   - long options take "--name=value" or "--name value" (exact names only);
 *   - options and recipients may be mixed in any order (GNU-style
 *     permutation); after "--" every argument is a recipient; a lone "-" is
 *     a recipient, as getopt treats it;
 *   - sendmail flags we have no use for are accepted and ignored together
 *     with their value: -A -B -e -h -L -O -o -p take one (glued or
 *     separate), -G -m -n -U take none;
 *   - a CR or LF in any argument is a usage error (header and command
 *     injection); NUL cannot occur in a C argument.
 */
#ifndef OASMTP_CLI_H
#define OASMTP_CLI_H

#include <stddef.h>

#include "err.h"

enum cli_mode {
	CLI_MODE_SEND = 0,	/* default, also -bm: read a mail, submit it */
	CLI_MODE_LIST_QUEUE,	/* -bp, or invoked as "mailq" */
	CLI_MODE_FLUSH_QUEUE,	/* -q[interval], -qI/-qR/-qS filters */
	CLI_MODE_NEWALIASES,	/* -bi, -I, or invoked as "newaliases": no-op */
	CLI_MODE_VERSION,	/* --version */
	CLI_MODE_HELP,		/* --help */
	CLI_MODE_SERVERINFO,	/* --serverinfo, -S */
	CLI_MODE_QUEUE_DROP,	/* --queue-drop ID */
	CLI_MODE_QUEUE_RETRY,	/* --queue-retry ID */
	CLI_MODE_CHECK,		/* --check [ACCOUNT]: test, send nothing */
	CLI_MODE_MAX
};

/* Which queued messages a flush (-q) selects. */
enum cli_queue_filter {
	CLI_QUEUE_ALL = 0,
	CLI_QUEUE_ID,		/* -qI<substr>: queue id contains the value */
	CLI_QUEUE_RECIPIENT,	/* -qR<substr>: a recipient contains it */
	CLI_QUEUE_SENDER,	/* -qS<substr>: the sender contains it */
	CLI_QUEUE_FILTER_MAX
};

/* -N: bits of cli_opts.dsn_notify_flags (0 = not given, or "-N off"). */
#define CLI_DSN_NOTIFY_SUCCESS	0x1u
#define CLI_DSN_NOTIFY_FAILURE	0x2u
#define CLI_DSN_NOTIFY_DELAY	0x4u
#define CLI_DSN_NOTIFY_NEVER	0x8u	/* never combined with the others */

/* -R */
enum cli_dsn_return {
	CLI_DSN_RET_UNSET = 0,
	CLI_DSN_RET_HDRS,	/* "hdrs" or "headers" */
	CLI_DSN_RET_FULL,	/* "full" */
	CLI_DSN_RET_MAX
};

/*
 * One of msmtp's command-line configuration options (--host=H, --tls,
 * --auth=plain ...; oasmtp(1)): the configuration key it sets and the
 * value, exactly as a line "key value" of the file would.  option is the
 * long option's name without "--" (static storage); value borrows from
 * argv or is static.
 */
struct cli_setting {
	const char *option;
	const char *key;
	const char *value;
};

/*
 * The parsed command line.  Every string borrows from the argv given to
 * cli_parse() (never copied), so it lives as long as that argv does.
 * recipients is a heap array owned by the struct: release it with
 * cli_opts_release().  NULL strings mean "not given".
 */
struct cli_opts {
	enum cli_mode mode;
	const char *progname;		/* basename of argv[0], "oasmtp" if none */

	int read_recipients;		/* -t, --read-recipients */
	int ignore_dots;		/* -i, -oi: a lone "." does not end input */

	/*
	 * -f/-r/--from.  has_envelope_from says it was given; "<>" and ""
	 * both mean the null sender and are stored as "".  Other values are
	 * kept exactly as typed (address parsing is not this module's job).
	 */
	int has_envelope_from;
	const char *envelope_from;
	int read_envelope_from;		/* --read-envelope-from (excludes -f) */
	const char *full_name;		/* -F: for a From header we add */

	/* DSN (RFC 3461); the raw -N text is kept for messages. */
	const char *dsn_notify;
	unsigned int dsn_notify_flags;	/* CLI_DSN_NOTIFY_* */
	enum cli_dsn_return dsn_return;
	const char *dsn_envid;		/* -V: 1..100 printable ASCII chars */

	const char *config_file;	/* -C, --file */
	const char *account;		/* -a, --account, --check's ACCOUNT */
	int verbose;			/* count of -v, -d, --debug */
	const char *logfile;		/* -X, --logfile */
	int pretend;			/* -P, --pretend */
	int system;			/* --system: the system configuration,
					   queue and state (as the service) */
	const char *queue_dir_option;	/* sendmail's -oQDIR / -OQueueDirectory=
					   (ignored; oasmtp-drop refuses it) */

	/* CLI_MODE_FLUSH_QUEUE only. */
	const char *queue_interval;	/* "30m" from -q30m, else NULL */
	enum cli_queue_filter queue_filter;
	const char *queue_filter_value;	/* the <substr>, else NULL */

	/* CLI_MODE_QUEUE_DROP / CLI_MODE_QUEUE_RETRY: the queue id. */
	const char *queue_id;

	/*
	 * msmtp's configuration options in command-line order (owned array,
	 * borrowed strings).  host is the value of the last --host: the
	 * account then comes from the command line alone (no file is read).
	 */
	struct cli_setting *settings;
	size_t n_settings;
	const char *host;

	/* Recipient arguments in command-line order, each an address list. */
	char **recipients;		/* NULL-terminated, never NULL on success */
	size_t recipient_count;
};

/*
 * Parse argc/argv (argv[0] is the program name; argv itself is not
 * modified).  argv[0]'s basename picks the initial mode: "mailq" lists the
 * queue, "newaliases" is a no-op, anything else (sendmail, oasmtp) sends;
 * an explicit mode option overrides it.  --help, then --version, win over
 * any other mode.
 *
 * On success fills *ret (call cli_opts_release() later).  On failure *ret
 * is untouched and reterr holds a one-line message:
 *   ERR_USAGE  unknown option ("see oasmtp --help"), missing option value,
 *              CR/LF in an argument, unsupported mode (-bs, -bd, -bv, ...),
 *              invalid -N/-R/-V/-q value, conflicting modes, -f together
 *              with --read-envelope-from, recipients given to a mode that
 *              takes none, or no recipients at all in send mode without -t
 *              or --pretend; --check with more than one account name, or
 *              with one that differs from -a; --host together with -a;
 *              msmtp's --configure and --rmqs (not supported).  The values
 *              of the configuration options are checked by config_load()
 *   ERR_NOMEM
 */
MUST_CHECK enum err cli_parse(int argc, char **argv, struct cli_opts *ret,
	struct errinfo *reterr);

/* Free the recipients array and reset *o to zeros.  o may be NULL. */
void cli_opts_release(struct cli_opts *o);

/* Usage text for --help (static storage, ends in a newline). */
const char *cli_help_text(void);

/* Stable name of a mode ("send", "list-queue", ...), for debug output. */
const char *cli_mode_name(enum cli_mode mode);

/* -R as the RET parameter of MAIL FROM ("HDRS", "FULL"); NULL when unset. */
const char *cli_dsn_return_text(enum cli_dsn_return r);

#endif
