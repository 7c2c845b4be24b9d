/*
 * socks.h - the SOCKS5 CONNECT handshake (RFC 1928), as msmtp uses it for
 * proxy_host/proxy_port (a Tor client, an ssh -D tunnel): no
 * authentication method, and the server is named to the proxy by its host
 * name (address type 3, "domain name"), so the name is resolved by the
 * proxy and never by this machine, as msmtp does.
 *
 * It runs over a transport already connected to the proxy and reads exactly
 * the proxy's reply, nothing of what the server says next.  Nothing here
 * prints.
 */
#ifndef OASMTP_SOCKS_H
#define OASMTP_SOCKS_H

#include <stdint.h>

#include "err.h"

struct transport;

/* The default proxy_port (msmtp's and the usual SOCKS port). */
#define SOCKS_DEFAULT_PORT 1080

/*
 * Ask the proxy t is connected to for a connection to host:port, by name.
 * proxy names the proxy in messages ("127.0.0.1 port 9050").  deadline as
 * in transport.h.
 * Errors: ERR_NET (the proxy could not reach the server: its reply says
 * why: host unreachable, connection refused, ...; the connection to the
 * proxy failed), ERR_CONFIG (the proxy wants authentication, or its rules
 * refuse the connection; a host name longer than 255 bytes), ERR_PROTO
 * (not a SOCKS5 proxy, or a malformed reply), ERR_TIMEOUT.
 */
MUST_CHECK enum err socks5_connect(struct transport *t, const char *proxy,
	const char *host, int port, int64_t deadline, struct errinfo *reterr);

#endif
