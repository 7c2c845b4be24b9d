/*
 * sandbox.h - the confined network phase of a send or a flush (the policy
 * of src/base/confine.h for one account, and its broker).
 *
 * When: a send (sendmail.c), --serverinfo, --check (check.c) and each
 * account's session of a flush (queue_run.c) confine the process that talks to the server once the
 * configuration is loaded, the message spooled and the TCP connection up:
 * sandbox_io() puts a hook behind the TCP connect that applies the policy.
 * So the TLS handshake, the server's replies and everything after run
 * confined.  The secret is fetched when AUTH asks for it, as unconfined:
 * a literal password, a cached token and a prefetched oasmtp-token (a
 * child started before the connect, only read and waited for) here;
 * passwordeval and any other oasmtp-token run by the broker.
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
 *   - the secret when it needs a program or a file: passwordeval,
 *     oasmtp-token (--fresh after the server refused the cached token),
 *     msmtp's password lookup (credential.h: Secret Service, netrc,
 *     the terminal);
 *   - notify_command (and its syslog line) when the grant is gone;
 *   - for transport auto, the HTTPS fall-back (route.h): the one message
 *     of a send, through oasmtp-token send, once SMTP turned out closed
 *     (sandbox_fallback(); at most once per broker, so never twice).
 * A send forks the broker before it connects (sandbox_start()), only when
 * the account may need it (passwordeval, oauth2_*, msmtp's password lookup,
 * notify_command, transport auto: not for
 * a literal password or without AUTH); a flush
 * runs each account's session in a confined child and is itself the
 * broker (sandbox_run_child()) and runs notify_command after it ended.  The broker runs only the account's own
 * configured commands; a confined process can at worst ask for a token
 * it could use anyway, or run notify_command with a reason of its choice
 * (given in the environment, never to a shell).
 *
 * A session keeper (keeper.h).  A confined process can fork (the child
 * is confined too), but can neither exec, create a socket, bind, connect
 * nor listen or accept, and Landlock (ABI 6) also refuses connecting to an
 * abstract UNIX socket.  So a send that may keep its session claims the
 * keeper's place before it connects (keeper_claim(): the lock, and a Unix
 * socket bound in the private directory, not listening) and puts that
 * socket in listen_fd: the seccomp filter then allows listen, accept and
 * accept4 on that one descriptor (it compares the call's first argument),
 * every other socket call stays refused.  After the message went out, the
 * confined process listens on it and forks the keeper, which inherits the
 * confinement: it accepts callers, reads their requests and the message
 * through the descriptor they pass (recvmsg with SCM_RIGHTS makes no
 * socket), and talks to the server it is connected to.  /dev/null is
 * readable and writable then (the keeper's stdio).  The socket file is
 * not removed by a confined process (the directory is not writable): the
 * next claim removes it under the lock.  A send that hands its message to
 * a keeper does so before it connects or confines itself.
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
#include "proc.h"
#include "submit.h"

/* The secret the broker hands to the confined process. */
#define SANDBOX_SECRET_MAX (64 * 1024)

struct account;

/*
 * The HTTPS fall-back of a send (transport auto): send(ctx, kind, reason,
 * ...) sends the send's message through api_kind kind and remembers the
 * route.  Set before sandbox_start(): the broker, a copy of this process
 * made then, calls it with its copy of ctx (the message, the envelope).
 */
struct sandbox_fallback {
	enum err (*send)(void *ctx, int kind, const char *reason,
		long *ret_retry_after, struct errinfo *reterr);
	void *ctx;
};

struct sandbox {
	const struct account *acc;	/* borrowed */
	const char *config_file;	/* borrowed, may be NULL */
	const char *queue_dir;	/* a flush's queue (borrowed), or NULL */
	struct credential *cred;	/* the session's own secret source */
	int on;			/* the account wants confinement */
	int confined;		/* applied (this process) */
	int fd;			/* to the broker, or -1 */
	int listen_fd;		/* a keeper's place (keeper.h), or -1 */
	struct proc broker;	/* the broker (proc.fn), pid -1 when none */
	struct sandbox_fallback fallback;	/* a send's, or none */
	int fallback_used;	/* the broker ran it (never twice) */
	int secret_from_broker;	/* the broker fetched the secret used */
};

/*
 * The -vv "credentials:" line for the secret this session used: what the
 * broker decided when it fetched the secret (a lookup, passwordeval, a
 * refresh), else what sb->cred did.  Appended to out.  Errors: those of
 * buf_printf(); ERR_TOKEN_TEMP when the broker is gone.
 */
MUST_CHECK enum err sandbox_describe(struct sandbox *sb, struct buf *out);

/* That line under -vv (nothing with auth off), for send, -q and --check. */
void sandbox_log_credentials(struct sandbox *sb, const struct account *acc);

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
 * AUTH gets the secret from sb->cred (or the broker); without sb->on, the
 * plain credential source; without sb->cred, none.
 */
void sandbox_io(struct sandbox *sb, struct submit_params *p);

/*
 * The secret source sandbox_io() installs (ctx is sb, sb->cred set), for a
 * caller that puts its own in front (--check reuses the secret of its
 * token step): from sb->cred, or from the broker when confined and it
 * would run a program.  Errors as credential_get().
 */
MUST_CHECK enum err sandbox_secret(void *ctx, int force_fresh,
	struct buf *ret_secret, struct errinfo *reterr);

/* The confinement itself (sandbox_io's hook calls it).  ERR_INTERNAL. */
MUST_CHECK enum err sandbox_enter(struct sandbox *sb, struct errinfo *reterr);

/*
 * The account's grant is gone: notify_reauth() here when not confined,
 * else by the broker.  Errors as notify_reauth().
 */
MUST_CHECK enum err sandbox_notify(struct sandbox *sb, const char *reason,
	struct errinfo *reterr);

/*
 * Transport auto found SMTP closed (route_fallback()): send the message
 * through kind's API with sb->fallback.send, here when this process is not
 * confined, else by the broker, which runs it once at most.  Errors: those
 * of the send; ERR_SMTP_TEMP when the request never reached the broker
 * (nothing was sent); ERR_TIMEOUT when the broker ended without an answer
 * (the API may or may not have the message, as when oasmtp-token send
 * runs past its deadline); ERR_INTERNAL with no fall-back set.
 */
MUST_CHECK enum err sandbox_fallback(struct sandbox *sb, int kind,
	const char *reason, long *ret_retry_after, struct errinfo *reterr);

/* End the broker (if any) and wipe the secret.  sb may be unused. */
void sandbox_release(struct sandbox *sb);

/* What the child of sandbox_run_child() reported. */
struct sandbox_result {
	int forked;		/* 0: fn ran here and did its own bookkeeping */
	size_t counts[3];	/* sandbox_report() of the child */
	char *reauth;		/* malloc'd reason, or NULL */
	int fallback;		/* sandbox_report_fallback(): kind, 0 none */
	char *fallback_reason;	/* malloc'd, or NULL */
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

/*
 * From fn in the child: SMTP is closed to the account (transport auto)
 * and the messages it did not try go through API kind, which the parent
 * does after the child ended (res->fallback, res->fallback_reason).
 * Nothing when fn runs in the parent.
 */
void sandbox_report_fallback(struct sandbox *sb, int kind,
	const char *reason);

#endif
