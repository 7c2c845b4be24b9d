/*
 * transport.h - the byte pipe under the SMTP engine: a small vtable so that
 * protocol code never asks whether TLS is active.
 *
 * Implementations: transport_tcp.c (plain TCP, connect with racing of all
 * resolved addresses) and transport_tls.c (OpenSSL, layered on a connected
 * transport, used for STARTTLS and implicit TLS).  Tests may provide their
 * own ops (socketpair, scripted peer).
 *
 * Deadlines are absolute CLOCK_MONOTONIC milliseconds (util_now_ms()); a
 * deadline of 0 means "no deadline".  Every call that waits returns
 * ERR_TIMEOUT when its deadline passes.  Errors: ERR_NET (connection
 * refused/reset/closed, DNS), ERR_TIMEOUT, ERR_TLS (handshake, certificate
 * verification, fingerprint; the message says which check failed), ERR_NOMEM,
 * ERR_CONFIG (an unreadable trust, CRL, certificate or key file, or a
 * malformed fingerprint).
 *
 * No hidden buffering below TLS: the TCP transport reads exactly what it is
 * asked for with one recv(2) and keeps nothing back, so its pending() is
 * always 0.  Bytes a server sends after its "220 ready to start TLS" reply
 * therefore sit either in the kernel or in the caller's own line buffer,
 * never in the transport; the driver detects STARTTLS response injection by
 * checking its own buffer before calling transport_tls_start(), which in
 * turn refuses to start when the transport it wraps reports pending bytes.
 *
 * Signals: writes never raise SIGPIPE (send(2) with MSG_NOSIGNAL, for TLS
 * too); a write to a closed connection is ERR_NET.  Reads and writes retry
 * on EINTR.  Thread safety: a transport is used by one thread at a time.
 */
#ifndef OASMTP_TRANSPORT_H
#define OASMTP_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct buf;
struct transport;

struct tls_params {
	const char *host;		/* SNI and name to verify */
	const char *trust_file;		/* NULL/"system": system store */
	const char *crl_file;		/* optional */
	const char *fingerprint;	/* optional SHA-256 hex, colons allowed */
	const char *cert_file;		/* optional client certificate */
	const char *key_file;
	int certcheck;			/* 0 = do not verify at all (tls_certcheck off) */
	const char *session_cache;	/* optional path of a 0600 session file */
};

struct transport_ops {
	/* Write all n bytes (one write where the kernel allows it). */
	enum err (*write)(struct transport *t, const void *p, size_t n,
		int64_t deadline, struct errinfo *reterr);
	/*
	 * Read what is available, at least one byte, at most cap.  A clean
	 * close by the peer is ERR_NET ("connection closed by server").
	 */
	enum err (*read)(struct transport *t, void *p, size_t cap,
		size_t *ret_n, int64_t deadline, struct errinfo *reterr);
	/*
	 * Bytes already received and buffered inside the transport: always 0
	 * for TCP; for TLS the decrypted bytes waiting, or at least 1 when
	 * only undecrypted record bytes are buffered.
	 */
	size_t (*pending)(struct transport *t);
	/* Close and free.  NULL-safe through transport_close(). */
	void (*close)(struct transport *t);
	/* Append a human description ("TLSv1.3 TLS_AES_256_GCM_SHA384 ..."). */
	enum err (*describe)(struct transport *t, struct buf *out);
};

struct transport {
	const struct transport_ops *ops;
	int fd;		/* underlying socket, -1 if none */
};

/*
 * Resolve host, connect to every address (IPv6 and IPv4 raced, RFC 8305
 * style: next attempt 250 ms after the previous one unless it failed first),
 * keep the first that succeeds.  source_ip may be NULL.  Sets TCP_NODELAY.
 * On success *ret_t is a new transport owned by the caller.
 *
 * host may be a name, an IPv4 literal or an IPv6 literal (brackets
 * allowed).  The deadline covers name resolution and the connects together:
 * a name is looked up by resolve_host() (resolve.h), literals are parsed
 * without a lookup.  Errors: ERR_NET for DNS failures (the message says
 * when the failure is temporary), refused or unreachable addresses (the
 * message names host, port and every address's reason); ERR_TIMEOUT when
 * the deadline passes during the lookup ("cannot resolve HOST within N s")
 * or with attempts still in flight; ERR_CONFIG for a source_ip that is not
 * a numeric address or shares no address family with host.
 */
MUST_CHECK enum err transport_tcp_connect(const char *host, int port,
	const char *source_ip, int64_t deadline, struct transport **ret_t,
	struct errinfo *reterr);

/*
 * The racing part of transport_tcp_connect() on an already resolved list
 * (any order; it is interleaved IPv6-first here).  host is used only in
 * messages.  Exposed for callers that resolved themselves and for tests.
 */
struct addrinfo;
MUST_CHECK enum err transport_tcp_connect_list(const struct addrinfo *list,
	const char *host, int port, const char *source_ip, int64_t deadline,
	struct transport **ret_t, struct errinfo *reterr);

/*
 * Wait until fd is ready for events (POLLIN/POLLOUT) or the deadline passes
 * (ERR_TIMEOUT, message "timed out <what>").  Retries on EINTR.  Readiness
 * includes errors and hang-ups: the next I/O call reports them.  Shared by
 * the implementations and by test transports.
 */
MUST_CHECK enum err transport_poll(int fd, short events, int64_t deadline,
	const char *what, struct errinfo *reterr);

/*
 * True (1) when the connected peer of t (TCP or TLS over TCP) is a loopback
 * address (127.0.0.0/8, ::1, or IPv4-mapped 127.x); 0 otherwise or when
 * unknown.  The driver uses it to allow AUTH without TLS to localhost only.
 */
int transport_peer_is_loopback(const struct transport *t);

/*
 * Run a TLS client handshake over the connected transport *t.  On success
 * *t is replaced by a TLS transport that owns the old one.  On failure *t is
 * left as it was (the caller closes it).  params and its strings are only
 * read during the call (the session_cache path is copied).
 *
 * Verification: TLS 1.2 or newer only.  With certcheck set and no
 * fingerprint, the chain is checked against trust_file (a PEM bundle) or
 * the system store, plus crl_file when given, and params->host is checked
 * against the certificate (as an IP address when it is an IP literal; SNI
 * is sent only for names).  A fingerprint (SHA-256, or msmtp's deprecated
 * SHA-1 or MD5, chosen by its length; hex with or without colons) replaces CA and name checks: the leaf must match
 * it exactly.  certcheck 0 disables every check.
 *
 * Session cache: when session_cache is set, a previous session saved there
 * for the same host and the same verification mode is offered; a missing,
 * corrupt, expired or foreign file is ignored.  New sessions (TLS 1.3
 * tickets arrive after the handshake, during the first reads) are written
 * atomically (temporary file + rename), mode 0600, creating missing parent
 * directories with mode 0700.  Failures to save are ignored.
 *
 * Errors: ERR_TLS for handshake and verification failures ("certificate has
 * expired", "host name mismatch (certificate is for X)", "unknown CA /
 * self-signed certificate", "fingerprint mismatch (got AB:CD:...)"),
 * ERR_TIMEOUT, ERR_NET when the server closes the connection, ERR_PROTO when
 * the wrapped transport holds unread bytes, ERR_CONFIG for unusable files.
 */
MUST_CHECK enum err transport_tls_start(struct transport **t,
	const struct tls_params *params, int64_t deadline,
	struct errinfo *reterr);

/*
 * Initialise OpenSSL once, the way every program of oasmtp wants it: the
 * system's OpenSSL configuration loaded (crypto policy), no clean-up at
 * exit, error texts loaded when a message first needs one.  OpenSSL keeps
 * the choices of its first initialisation only, so every code that uses
 * OpenSSL (a digest too) calls this first.  1 on success; harmless to
 * call again.
 */
int transport_tls_init(void);

/* transport_tls_session_key()'s length (hex digits), and a buffer for it. */
#define TLS_SESSION_KEY_LEN 32
#define TLS_SESSION_KEY_MAX (TLS_SESSION_KEY_LEN + 1)

/*
 * The session key of params: 32 hex digits appended to out, a digest of
 * everything that decides how transport_tls_start() verifies a server -
 * the name (SNI), the check mode (certcheck, pin), the pin, the trust
 * (trust_file, or the system store's bundle and directory and the
 * SSL_CERT_FILE / SSL_CERT_DIR choice), the CRL file, the client
 * certificate and key, the protocol settings and the OpenSSL
 * configuration file.  A file or directory counts by its identity
 * (path, device, inode, size, modification and change times, in
 * nanoseconds; a tls_trust_file directory with each entry's), so
 * a replaced or rewritten file changes the key; contents are not read.
 * A resumed handshake verifies no chain, so a session must be offered only
 * under the key it was saved under (submit_session_cache_path()).
 * Errors: ERR_NOMEM, ERR_LIMIT (out too small).
 */
MUST_CHECK enum err transport_tls_session_key(const struct tls_params *params,
	struct buf *out);

/*
 * For --serverinfo: append protocol, cipher, peer certificate subject,
 * issuer, validity and SHA-256 fingerprint.  Nothing for a plain transport.
 */
MUST_CHECK enum err transport_tls_info(struct transport *t, struct buf *out);

/* 1 when t is a TLS transport whose session was resumed, else 0. */
int transport_tls_resumed(const struct transport *t);

static inline void
transport_close(struct transport *t)
{
	if (t != NULL) {
		t->ops->close(t);
	}
}

#endif
