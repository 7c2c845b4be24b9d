/*
 * sandbox.h - the confined network phase of a send or a flush (the policy
 * of src/base/confine.h for one account, and its broker).
 *
 * When: a send (sendmail.c) and each account's session of a flush
 * (queue_run.c) confine the process that talks to the server once the
 * configuration is loaded, the message spooled, the TCP connection up and
 * the secret obtained: sandbox_io() puts a hook behind the TCP connect
 * that first waits for the password or token (a prefetched oasmtp-token,
 * a passwordeval) and then applies the policy.  So the TLS handshake, the
 * server's replies and everything after run confined.
 *
 * The policy (for the account): read the trust store (OpenSSL's default
 * file and directory, SSL_CERT_FILE/SSL_CERT_DIR, /etc/ssl, /etc/pki,
 * /usr/share/ca-certificates, OpenSSL's configuration and modules
 * directories), tls_trust_file, tls_crl_file, tls_cert_file, tls_key_file,
 * the time zone files; write the account's queue directory (created first
 * when the queue is on), the TLS session cache directory, the logfile
 * (created first when missing).  syslog's socket is opened before.
 * Nothing else: no other file, no program, no new socket or connection.
 *
 * What needs more than that goes through a broker, a process that stays
 * unconfined and does exactly two things on request over a socketpair:
 *   - a fresh secret after the server refused the cached token
 *     (oasmtp-token --fresh, or passwordeval again);
 *   - notify_command (and its syslog line) when the grant is gone.
 * A send forks the broker before it connects (sandbox_start()); a flush
 * runs each account's session in a confined child and is itself the
 * broker (sandbox_run_child()) and runs notify_command after it ended.  The broker runs only the account's own
 * configured commands; a confined process can at worst ask for a token
 * it could use anyway, or run notify_command with a reason of its choice
 * (given in the environment, never to a shell).
 *
 * Hook for a session keeper (issue 15, not there yet): it must be forked
 * and its socket bound before sandbox_enter() (a confined process can
 * neither bind nor connect); passing a descriptor over an already
 * connected UNIX socket (SCM_RIGHTS) still works when confined.
 *
 * `confine off` in the account (oasmtprc(5)) turns all of this off; a
 * kernel without Landlock gets the seccomp filter only.  -v says which.
 * Prints (log_debug) only.
 */
#ifndef OASMTP_SANDBOX_H
#define OASMTP_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "credential.h"
#include "err.h"
#include "submit.h"

/* The secret the broker hands to the confined process. */
#define SANDBOX_SECRET_MAX (64 * 1024)

struct account;

struct sandbox {
	const struct account *acc;	/* borrowed */
	const char *config_file;	/* borrowed, may be NULL */
	const char *queue_dir;	/* a flush's queue (borrowed), or NULL */
	struct credential *cred;	/* the session's own secret source */
	int on;			/* the account wants confinement */
	int confined;		/* applied (this process) */
	int fd;			/* to the broker, or -1 */
	pid_t broker;		/* forked broker, or -1 */
	int have_secret;	/* secret/secret_err below are set */
	enum err secret_err;
	char *secret_msg;	/* error of the prefetch, or NULL */
	struct buf secret;	/* the prefetched secret (wiped) */
};

/*
 * Test-only: called right after confinement (NULL in oasmtp; only the
 * test build tests/unit/confine_fault.c sets it).
 */
extern void (*sandbox_after_confine_hook)(void);

/* Prepare sb for acc (no process, no file yet).  cred is borrowed. */
void sandbox_init(struct sandbox *sb, const struct account *acc,
	const char *config_file, struct credential *cred);

/*
 * A send: fork the broker (when sb is on).  Errors: ERR_INTERNAL (cannot
 * fork or make the socketpair).
 */
MUST_CHECK enum err sandbox_start(struct sandbox *sb, struct errinfo *reterr);

/*
 * Fill p->io and p->secret so that the connect confines the process and
 * AUTH takes the secret prefetched before; without sb->on, the plain
 * credential source.
 */
void sandbox_io(struct sandbox *sb, struct submit_params *p);

/* The confinement itself (sandbox_io's hook calls it).  ERR_INTERNAL. */
MUST_CHECK enum err sandbox_enter(struct sandbox *sb, struct errinfo *reterr);

/*
 * The account's grant is gone: notify_reauth() here when not confined,
 * else by the broker.  Errors as notify_reauth().
 */
MUST_CHECK enum err sandbox_notify(struct sandbox *sb, const char *reason,
	struct errinfo *reterr);

/* End the broker (if any) and wipe the secret.  sb may be unused. */
void sandbox_release(struct sandbox *sb);

/* What the child of sandbox_run_child() reported. */
struct sandbox_result {
	int forked;		/* 0: fn ran here and did its own bookkeeping */
	size_t counts[3];	/* sandbox_report() of the child */
	char *reauth;		/* malloc'd reason, or NULL */
};

/*
 * A flush: run fn(ctx, sb) in a confined child while this process serves
 * as its broker (fresh secrets), and wait for it.  Without sb->on, fn runs
 * here (res->forked 0).  Errors: ERR_INTERNAL (cannot fork; fn did not
 * run).
 */
MUST_CHECK enum err sandbox_run_child(struct sandbox *sb,
	void (*fn)(void *ctx, struct sandbox *sb), void *ctx,
	struct sandbox_result *res, struct errinfo *reterr);

/*
 * From fn in the child: its counts and, when the grant was found gone,
 * the reason (NULL otherwise); nothing when fn runs in the parent.
 */
void sandbox_report(struct sandbox *sb, const size_t counts[3],
	const char *reauth);

#endif
