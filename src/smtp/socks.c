/* socks.c - the SOCKS5 CONNECT handshake; see socks.h. */
#include "socks.h"

#include <string.h>

#include "transport.h"

/* Read exactly n bytes (the transport never reads more than asked). */
static MUST_CHECK enum err
read_exact(struct transport *t, unsigned char *p, size_t n, int64_t deadline,
	struct errinfo *reterr)
{
	while (n > 0) {
		size_t got = 0;
		enum err e = t->ops->read(t, p, n, &got, deadline, reterr);

		if (e != ERR_OK) {
			return e;
		}
		p += got;
		n -= got;
	}
	return ERR_OK;
}

/* RFC 1928 section 6: the reply field. */
static const char *
reply_text(unsigned char rep)
{
	switch (rep) {
	case 1:
		return "general SOCKS server failure";
	case 2:
		return "connection not allowed by its rules";
	case 3:
		return "network unreachable";
	case 4:
		return "host unreachable (or its name cannot be resolved)";
	case 5:
		return "connection refused";
	case 6:
		return "TTL expired";
	case 7:
		return "command not supported";
	case 8:
		return "address type not supported";
	default:
		return "unknown error";
	}
}

enum err
socks5_connect(struct transport *t, const char *proxy, const char *host,
	int port, int64_t deadline, struct errinfo *reterr)
{
	unsigned char msg[4 + 1 + 255 + 2];
	size_t hlen = strlen(host), n;
	enum err e;

	if (hlen == 0 || hlen > 255) {
		return errinfo_set(reterr, ERR_CONFIG, "the host name '%.64s' "
			"cannot be sent to the SOCKS proxy (1 to 255 bytes)",
			host);
	}
	/* greeting: version 5, one method, "no authentication" */
	msg[0] = 5;
	msg[1] = 1;
	msg[2] = 0;
	e = t->ops->write(t, msg, 3, deadline, reterr);
	if (e == ERR_OK) {
		e = read_exact(t, msg, 2, deadline, reterr);
	}
	if (e != ERR_OK) {
		return errinfo_prefix(reterr, "SOCKS proxy %s: ", proxy);
	}
	if (msg[0] != 5) {
		return errinfo_set(reterr, ERR_PROTO, "SOCKS proxy %s does not "
			"speak SOCKS version 5", proxy);
	}
	if (msg[1] != 0) {
		return errinfo_set(reterr, ERR_CONFIG, "SOCKS proxy %s wants "
			"authentication, which oasmtp does not do (as msmtp); "
			"use a proxy that accepts clients without it", proxy);
	}
	/* CONNECT to the name: the proxy resolves it */
	msg[0] = 5;
	msg[1] = 1;
	msg[2] = 0;
	msg[3] = 3;
	msg[4] = (unsigned char)hlen;
	memcpy(msg + 5, host, hlen);
	msg[5 + hlen] = (unsigned char)((unsigned)port >> 8);
	msg[6 + hlen] = (unsigned char)((unsigned)port & 0xff);
	e = t->ops->write(t, msg, 7 + hlen, deadline, reterr);
	if (e == ERR_OK) {
		e = read_exact(t, msg, 4, deadline, reterr);
	}
	if (e != ERR_OK) {
		return errinfo_prefix(reterr, "SOCKS proxy %s: ", proxy);
	}
	if (msg[0] != 5 || msg[2] != 0) {
		return errinfo_set(reterr, ERR_PROTO, "SOCKS proxy %s sent a "
			"malformed reply", proxy);
	}
	if (msg[1] != 0) {
		return errinfo_set(reterr, msg[1] == 2 ? ERR_CONFIG : ERR_NET,
			"SOCKS proxy %s cannot connect to %s port %d: %s",
			proxy, host, port, reply_text(msg[1]));
	}
	/* the bound address: IPv4, a name, or IPv6; then the port */
	switch (msg[3]) {
	case 1:
		n = 4;
		break;
	case 4:
		n = 16;
		break;
	case 3:
		e = read_exact(t, msg, 1, deadline, reterr);
		if (e != ERR_OK) {
			return errinfo_prefix(reterr, "SOCKS proxy %s: ", proxy);
		}
		n = msg[0];
		break;
	default:
		return errinfo_set(reterr, ERR_PROTO, "SOCKS proxy %s sent a "
			"malformed reply", proxy);
	}
	e = read_exact(t, msg, n + 2, deadline, reterr);
	if (e != ERR_OK) {
		return errinfo_prefix(reterr, "SOCKS proxy %s: ", proxy);
	}
	return ERR_OK;
}
