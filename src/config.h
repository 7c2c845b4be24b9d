/*
 * config.h - msmtprc-compatible configuration: lookup, parsing, inheritance,
 * permission checks and account selection (oasmtprc(5)).
 *
 * Syntax, as msmtp defines it: one `key argument` per line; blank lines and
 * lines whose first non-blank character is `#` are ignored (a `#` later in
 * a line is part of the argument); an argument may be enclosed in double
 * quotes, inside which `\"` and `\\` stand for `"` and `\`; a leading `~`
 * in file-name arguments means the home directory; an empty argument means
 * `on` for boolean keys.  Lines may be up to CONFIG_LINE_MAX bytes.
 * `defaults` starts a section whose keys apply to every later account of
 * the same file; `account NAME [: PARENT[, PARENT...]]` starts an account
 * that first copies the explicitly set keys of its parents; `eval CMD`
 * is replaced by the first output line of CMD, which is parsed as a line.
 * Keys before any section go to an account named "default".
 *
 * Errors are ERR_CONFIG with "FILE:LINE: message" (did-you-mean for a
 * misspelt key) unless stated otherwise.  Nothing here prints or exits.
 */
#ifndef OASMTP_CONFIG_H
#define OASMTP_CONFIG_H

#include <stddef.h>

#include "err.h"

struct account;
struct buf;
struct cli_setting;

#define CONFIG_LINE_MAX (64 * 1024)	/* bytes per line, without the LF */
#define CONFIG_FILE_MAX (4 * 1024 * 1024)
#define CONFIG_EVAL_OUTPUT_MAX (64 * 1024)
#define CONFIG_SERVER_DESC_MAX 1024	/* config_describe_server() */

/* The aliases file system-mode accounts use when it exists. */
#define CONFIG_SYSTEM_ALIASES "/etc/aliases"


/*
 * Where to look and how to expand patterns.  Every member may be NULL (or
 * 0), which selects the normal behaviour given in its comment; tests fill
 * them in to stay away from the real home directory.  Borrowed: the
 * strings must live until config_load() returns.
 */
struct config_params {
	const char *file;		/* -C FILE: the only file read */
	const char *home;		/* NULL: $HOME, else the passwd entry */
	const char *xdg_config_home;	/* NULL: $XDG_CONFIG_HOME, else HOME/.config */
	const char *sysconfdir;		/* NULL: SYSCONFDIR; "": no system file */
	const char *user_name;		/* %U; NULL: passwd entry, else $USER */
	const char *host_name;		/* %H; NULL: gethostname() */
	const char *mailname_file;	/* %M; NULL: /etc/mailname */
	/*
	 * System mode (oasmtp --system, oasmtp-token --system): when set,
	 * only the system file is read (file when given, else
	 * SYSCONFDIR/oasmtprc); it must exist, and when root owns it, it
	 * may be shared read-only with a group (root:oasmtp 0640).  Every account then gets the system defaults
	 * below this state directory unless the file sets them:
	 * oauth2_token_store file:DIR/NAME.refresh, oauth2_token_cache
	 * DIR/NAME.token, queue_dir DIR/queue, from_rewrite on, and aliases
	 * /etc/aliases when that file exists.  NULL: the normal lookup.
	 */
	const char *system_state_dir;
	/*
	 * msmtp's command-line configuration options (cli.h), applied in
	 * order, after the files, to every account as if the account's
	 * section ended with those lines; their values are checked as the
	 * file's are ("option --port: invalid argument ...").  When one of
	 * them is `host`, no file is read: the one account, "cmdline",
	 * starts from msmtp's defaults and has only these settings (msmtp's
	 * --host).  Borrowed.
	 */
	const struct cli_setting *settings;
	size_t n_settings;
	int no_eval;			/* refuse `eval` lines (fuzzing) */
	int allow_no_file;		/* no file found: no accounts, no
					   error (msmtp's SMTPSERVER) */
	const char *cmdline_source;	/* the "cmdline" account's file name
					   for --pretend; NULL: "(command
					   line)" */
	int eval_timeout;		/* seconds for `eval` lines when the
					   section sets no timeout; 0: 60 */
};

/*
 * A loaded configuration.  Owns its accounts (in file order: system file
 * first, then user file; a user account replaces the system account of
 * the same name in place) and the warnings ("FILE:LINE: text", shown by
 * main with -v or --pretend).  Every account is resolved: built-in
 * defaults applied, port never 0, the provider preset's submission server
 * filled in when the file gives no host (provider.h: provider_server), %U
 * %H %C %M expanded in from/domain.
 */
struct config {
	struct account **accounts;
	size_t n_accounts;
	char **warnings;
	size_t n_warnings;
	char *system_file;	/* path read, or NULL */
	char *user_file;	/* path read (or -C FILE), or NULL */
};

/*
 * Find and read the configuration files (see the lookup order in
 * oasmtprc(5); `-C FILE` replaces all of it).  On success
 * *ret_cfg is a new config the caller frees with config_free().
 *
 * Errors: ERR_IO "cannot read FILE: reason" when -C FILE (or a user file
 * that exists) cannot be read; ERR_CONFIG for syntax errors, a file that
 * holds a literal `password` / `oauth2_client_secret` but is not private
 * ("... run: chmod 600 FILE"), or when no file exists at all; ERR_TIMEOUT
 * when an `eval` command timed out; ERR_NOMEM.
 */
MUST_CHECK enum err config_load(const struct config_params *params,
	struct config **ret_cfg, struct errinfo *reterr);

/*
 * Parse one file held in memory, named name in messages, as if it were the
 * only (user) file; no permission check.  For tests and the fuzzer.
 * Same errors as config_load() except the lookup ones.
 */
MUST_CHECK enum err config_parse_buffer(const struct config_params *params,
	const char *name, const char *data, size_t len,
	struct config **ret_cfg, struct errinfo *reterr);

/*
 * 1 when one of the user files of the lookup exists (readable or not),
 * so oasmtp uses the user's own accounts rather than the system queue.
 */
int config_user_file_exists(const struct config_params *params);

/* Release everything (secrets wiped); NULL is fine. */
void config_free(struct config *cfg);

/*
 * The account config_select() picks without -a, not checked: the first
 * whose `from` matches envelope_from (may be NULL), else "default", else
 * NULL.
 */
const struct account *config_match(const struct config *cfg,
	const char *envelope_from);

/*
 * Choose the account to use: account_name (-a) when given; else the first
 * account whose `from` matches envelope_from (-f; case-insensitive, shell
 * wildcards); else the one named "default".  The chosen account is then
 * checked (config_check_account).  *ret points into cfg and lives as long
 * as cfg.
 *
 * Errors: ERR_CONFIG for an unknown name (the message lists the available
 * accounts), for no match and no "default" account, or from the check.
 */
MUST_CHECK enum err config_select(const struct config *cfg, const char *account_name,
	const char *envelope_from, const struct account **ret,
	struct errinfo *reterr);

/*
 * Check that an account is usable (a host, given or from the provider
 * preset; both or neither of tls_cert_file/tls_key_file, a user for OAuth
 * mechanisms...).
 * ERR_CONFIG with "FILE:LINE: account 'NAME': problem".
 */
MUST_CHECK enum err config_check_account(const struct account *acc,
	struct errinfo *reterr);

/*
 * Append "key = value" lines for every effective setting of acc to out
 * (for --pretend).  Secrets (password, oauth2_client_secret) appear as
 * "*", never their value; commands such as passwordeval are shown.  Host,
 * port and tls_starttls filled from the oauth2_provider preset say so
 * ("host = smtp.gmail.com (from the oauth2_provider google preset)").
 * ERR_LIMIT when the output does not fit out->max (what fit is kept),
 * ERR_NOMEM.
 */
MUST_CHECK enum err config_print_account(const struct account *acc,
	struct buf *out);

/*
 * Append one phrase naming the server acc submits to, for -v and --check:
 * "smtp.gmail.com port 587, STARTTLS (from the oauth2_provider google
 * preset)"; the remark is there only when the preset gave the host ("host
 * from the ... preset" when the port was the file's).  Errors like
 * config_print_account().
 */
MUST_CHECK enum err config_describe_server(const struct account *acc,
	struct buf *out);

#endif
