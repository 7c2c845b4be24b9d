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
 * verification, fingerprint; the message says which check failed), ERR_NOMEM.
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
	const char *fingerprint;	/* optional SHA-256 (or SHA-1) hex, colons allowed */
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
	/* Bytes already received and buffered inside the transport (TLS). */
	size_t (*pending)(struct transport *t);
	/* Close and free.  NULL-safe through transport_close(). */
	void (*close)(struct transport *t);
	/* Append a human description ("TLSv1.3 TLS_AES_256_GCM_SHA384 ..."). */
	void (*describe)(struct transport *t, struct buf *out);
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
 */
enum err transport_tcp_connect(const char *host, int port,
	const char *source_ip, int64_t deadline, struct transport **ret_t,
	struct errinfo *reterr);

/*
 * Run a TLS client handshake over the connected transport *t.  On success
 * *t is replaced by a TLS transport that owns the old one.  On failure *t is
 * left as it was (the caller closes it).
 */
enum err transport_tls_start(struct transport **t,
	const struct tls_params *params, int64_t deadline,
	struct errinfo *reterr);

/*
 * For --serverinfo: append protocol, cipher, peer certificate subject,
 * issuer, validity and SHA-256 fingerprint.  Nothing for a plain transport.
 */
void transport_tls_info(struct transport *t, struct buf *out);

static inline void
transport_close(struct transport *t)
{
	if (t != NULL) {
		t->ops->close(t);
	}
}

#endif
