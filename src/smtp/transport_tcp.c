/*
 * transport_tcp.c - plain TCP transport: resolve (resolve.c, under the
 * same deadline), race the connects, then move bytes with poll(2) and
 * absolute deadlines.  See transport.h.
 *
 * The socket stays non-blocking for its whole life; every wait goes through
 * transport_poll().  Nothing is buffered here: a read is one recv(2) into
 * the caller's memory.
 */
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "buf.h"
#include "resolve.h"
#include "util.h"

/* the failed attempts of one connection race, for the message */
#define FAILURES_MAX 2048

/* RFC 8305 section 5: the recommended "Connection Attempt Delay". */
#define ATTEMPT_DELAY_MS 250

/* Room for "[" + IPv6 text + "]:" + port. */
#define ADDR_TEXT_MAX (INET6_ADDRSTRLEN + 16)

/* Most addresses raced for one host; more is a misconfiguration. */
#define MAX_ADDRS 64

struct tcp_transport {
	struct transport base;
	char peer[ADDR_TEXT_MAX];	/* numeric address of the peer */
	char host[256];			/* name as given, for describe() */
	int port;
};

enum err
transport_poll(int fd, short events, int64_t deadline, const char *what,
	struct errinfo *reterr)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int timeout = -1;
		int r;

		if (deadline != 0) {
			int64_t left = deadline - util_now_ms();

			if (left <= 0) {
				return errinfo_set(reterr, ERR_TIMEOUT,
					"timed out %s", what);
			}
			timeout = left > INT_MAX ? INT_MAX : (int)left;
		}
		r = poll(&pfd, 1, timeout);
		if (r < 0) {
			if (errno == EINTR) {
				continue;
			}
			errinfo_set_errno(reterr, errno);
			return errinfo_set(reterr, ERR_NET, "poll while %s: %s",
				what, strerror(errno));
		}
		if (r > 0) {
			/* Errors and hang-ups are reported by the next I/O call. */
			return ERR_OK;
		}
	}
}

static void
addr_text(const struct sockaddr *sa, char *out, size_t size)
{
	char host[INET6_ADDRSTRLEN];
	const void *a;
	int port;

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		a = &s6->sin6_addr;
		port = ntohs(s6->sin6_port);
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		a = &s4->sin_addr;
		port = ntohs(s4->sin_port);
	} else {
		util_strlcpy(out, "?", size);
		return;
	}
	if (inet_ntop(sa->sa_family, a, host, sizeof(host)) == NULL) {
		util_strlcpy(out, "?", size);
		return;
	}
	if (sa->sa_family == AF_INET6) {
		snprintf(out, size, "[%s]:%d", host, port);
	} else {
		snprintf(out, size, "%s:%d", host, port);
	}
}

/* ---- the byte pipe ---- */

static MUST_CHECK enum err
tcp_write(struct transport *t, const void *p, size_t n, int64_t deadline,
	struct errinfo *reterr)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = send(t->fd, c, n, MSG_NOSIGNAL);

		if (w >= 0) {
			c += w;
			n -= (size_t)w;
			continue;
		}
		if (errno == EINTR) {
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			enum err e = transport_poll(t->fd, POLLOUT, deadline,
				"sending to server", reterr);

			if (e != ERR_OK) {
				return e;
			}
			continue;
		}
		errinfo_set_errno(reterr, errno);
		if (errno == EPIPE || errno == ECONNRESET) {
			return errinfo_set(reterr, ERR_NET,
				"connection closed by server (%s)",
				strerror(errno));
		}
		return errinfo_set(reterr, ERR_NET, "sending to server: %s",
			strerror(errno));
	}
	return ERR_OK;
}

static MUST_CHECK enum err
tcp_read(struct transport *t, void *p, size_t cap, size_t *ret_n,
	int64_t deadline, struct errinfo *reterr)
{
	*ret_n = 0;
	if (cap == 0) {
		return errinfo_set(reterr, ERR_INTERNAL,
			"transport read with no room");
	}
	for (;;) {
		ssize_t r = recv(t->fd, p, cap, 0);

		if (r > 0) {
			*ret_n = (size_t)r;
			return ERR_OK;
		}
		if (r == 0) {
			return errinfo_set(reterr, ERR_NET,
				"connection closed by server");
		}
		if (errno == EINTR) {
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			enum err e = transport_poll(t->fd, POLLIN, deadline,
				"waiting for data from server", reterr);

			if (e != ERR_OK) {
				return e;
			}
			continue;
		}
		errinfo_set_errno(reterr, errno);
		if (errno == ECONNRESET) {
			return errinfo_set(reterr, ERR_NET,
				"connection closed by server (%s)",
				strerror(errno));
		}
		return errinfo_set(reterr, ERR_NET, "reading from server: %s",
			strerror(errno));
	}
}

static size_t
tcp_pending(struct transport *t)
{
	/* Nothing is ever buffered here; see transport.h. */
	return 0;
}

static void
tcp_close(struct transport *t)
{
	if (t->fd >= 0) {
		close(t->fd);
	}
	free(t);
}

static MUST_CHECK enum err
tcp_describe(struct transport *t, struct buf *out)
{
	struct tcp_transport *tt = (struct tcp_transport *)t;

	return buf_printf(out, "TCP connection to %s port %d (%s)", tt->host,
		tt->port, tt->peer);
}

static const struct transport_ops tcp_ops = {
	.write = tcp_write,
	.read = tcp_read,
	.pending = tcp_pending,
	.close = tcp_close,
	.describe = tcp_describe,
};

int
transport_peer_is_loopback(const struct transport *t)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (t == NULL || t->fd < 0
		|| getpeername(t->fd, (struct sockaddr *)&ss, &len) != 0) {
		return 0;
	}
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;

		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
		const uint8_t *b = s6->sin6_addr.s6_addr;

		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)) {
			return 1;
		}
		return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && b[12] == 127;
	}
	return 0;
}

/* ---- connecting ---- */

struct attempt {
	int fd;
	const struct addrinfo *ai;
};

struct race {
	const struct addrinfo *order[MAX_ADDRS];
	size_t count;
	size_t next;			/* index of the next address to try */
	struct attempt live[MAX_ADDRS];
	size_t n_live;
	const struct sockaddr *source;	/* bind address or NULL */
	socklen_t source_len;
	struct buf failures;		/* "addr: reason, ..." */
	int last_errno;
};

static void
race_note_failure(struct race *r, const struct addrinfo *ai, int error)
{
	char text[ADDR_TEXT_MAX];

	addr_text(ai->ai_addr, text, sizeof(text));
	r->last_errno = error;
	/* Bounded: a long list of failures is cut, never an error itself. */
	if (buf_printf(&r->failures, "%s%s: %s", r->failures.len > 0 ?
	    ", " : "", text, strerror(error)) != ERR_OK) {
		return;
	}
}

/*
 * Start a connect to r->order[r->next].  Returns the fd of a socket that
 * connected at once, -1 when the attempt is now in flight (or failed at
 * once, which is noted).
 */
static int
race_start(struct race *r)
{
	const struct addrinfo *ai = r->order[r->next++];
	int fd;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK
		| SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0) {
		race_note_failure(r, ai, errno);
		return -1;
	}
	if (r->source != NULL && bind(fd, r->source, r->source_len) != 0) {
		race_note_failure(r, ai, errno);
		close(fd);
		return -1;
	}
	for (;;) {
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			return fd;
		}
		if (errno != EINTR) {
			break;
		}
	}
	if (errno == EINPROGRESS || errno == EINTR) {
		r->live[r->n_live].fd = fd;
		r->live[r->n_live].ai = ai;
		r->n_live++;
		return -1;
	}
	race_note_failure(r, ai, errno);
	close(fd);
	return -1;
}

static void
race_drop(struct race *r, size_t i)
{
	close(r->live[i].fd);
	r->live[i] = r->live[r->n_live - 1];
	r->n_live--;
}

/*
 * Interleave the families, IPv6 first (RFC 8305 section 4), keeping the
 * resolver's order within each family.
 */
static void
race_order(struct race *r, const struct addrinfo *list, int family)
{
	const struct addrinfo *v6[MAX_ADDRS], *v4[MAX_ADDRS];
	size_t n6 = 0, n4 = 0, i6 = 0, i4 = 0;

	for (const struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
		if (family != AF_UNSPEC && ai->ai_family != family) {
			continue;
		}
		if (ai->ai_family == AF_INET6 && n6 < MAX_ADDRS) {
			v6[n6++] = ai;
		} else if (ai->ai_family == AF_INET && n4 < MAX_ADDRS) {
			v4[n4++] = ai;
		}
	}
	r->count = 0;
	while ((i6 < n6 || i4 < n4) && r->count < MAX_ADDRS) {
		if (i6 < n6) {
			r->order[r->count++] = v6[i6++];
		}
		if (i4 < n4 && r->count < MAX_ADDRS) {
			r->order[r->count++] = v4[i4++];
		}
	}
}

/*
 * Run the race until one socket connects (ERR_OK, *ret_fd), or every
 * attempt failed (ERR_NET) or the deadline passed (ERR_TIMEOUT).
 */
static MUST_CHECK enum err
race_run(struct race *r, const char *host, int port, int64_t deadline,
	int *ret_fd, struct errinfo *reterr)
{
	int64_t next_start = util_now_ms();

	for (;;) {
		struct pollfd pfds[MAX_ADDRS];
		int64_t now = util_now_ms();
		int64_t wake = 0;
		int timeout;
		int n;

		if (deadline != 0 && now >= deadline) {
			int failed = r->failures.len > 0;

			return errinfo_set(reterr, ERR_TIMEOUT,
				"timed out connecting to %s port %d%s%s%s",
				host, port, failed ? " (" : "",
				buf_cstr(&r->failures), failed ? ")" : "");
		}
		if (r->next < r->count && (r->n_live == 0 || now >= next_start)) {
			int fd = race_start(r);

			if (fd >= 0) {
				*ret_fd = fd;
				return ERR_OK;
			}
			next_start = util_now_ms() + ATTEMPT_DELAY_MS;
			continue;
		}
		if (r->n_live == 0) {
			errinfo_set_errno(reterr, r->last_errno);
			return errinfo_set(reterr, ERR_NET,
				"cannot connect to %s port %d: %s", host, port,
				r->failures.len > 0 ? buf_cstr(&r->failures)
				: "no usable address");
		}
		if (r->next < r->count) {
			wake = next_start;
		}
		if (deadline != 0 && (wake == 0 || deadline < wake)) {
			wake = deadline;
		}
		if (wake == 0) {
			timeout = -1;
		} else if (wake - now > INT_MAX) {
			timeout = INT_MAX;
		} else {
			timeout = wake > now ? (int)(wake - now) : 0;
		}
		for (size_t i = 0; i < r->n_live; i++) {
			pfds[i].fd = r->live[i].fd;
			pfds[i].events = POLLOUT;
			pfds[i].revents = 0;
		}
		n = poll(pfds, r->n_live, timeout);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return errinfo_set(reterr, ERR_NET, "poll: %s",
				strerror(errno));
		}
		/* Walk backwards so race_drop() keeps unvisited slots intact. */
		for (size_t i = r->n_live; n > 0 && i-- > 0;) {
			int soerr = 0;
			socklen_t len = sizeof(soerr);

			if (pfds[i].revents == 0) {
				continue;
			}
			if (getsockopt(r->live[i].fd, SOL_SOCKET, SO_ERROR,
				&soerr, &len) != 0) {
				soerr = errno;
			}
			if (soerr == 0) {
				*ret_fd = r->live[i].fd;
				r->live[i] = r->live[r->n_live - 1];
				r->n_live--;
				return ERR_OK;
			}
			race_note_failure(r, r->live[i].ai, soerr);
			race_drop(r, i);
			/* A failure starts the next attempt at once. */
			next_start = util_now_ms();
		}
	}
}

static MUST_CHECK enum err
resolve_source(const char *source_ip, struct addrinfo **ret_ai,
	struct errinfo *reterr)
{
	struct addrinfo hints;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
	rc = getaddrinfo(source_ip, NULL, &hints, ret_ai);
	if (rc != 0) {
		return errinfo_set(reterr, ERR_CONFIG,
			"source_ip '%s' is not a numeric IP address: %s",
			source_ip, gai_strerror(rc));
	}
	return ERR_OK;
}

static MUST_CHECK enum err
make_transport(int fd, const char *host, int port, struct transport **ret_t,
	struct errinfo *reterr)
{
	struct tcp_transport *tt;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int one = 1;

	tt = calloc(1, sizeof(*tt));
	if (tt == NULL) {
		close(fd);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	/* Small SMTP commands must not wait for Nagle; failure is harmless. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	tt->base.ops = &tcp_ops;
	tt->base.fd = fd;
	tt->port = port;
	util_strlcpy(tt->host, host, sizeof(tt->host));
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
		addr_text((struct sockaddr *)&ss, tt->peer, sizeof(tt->peer));
	} else {
		util_strlcpy(tt->peer, "?", sizeof(tt->peer));
	}
	*ret_t = &tt->base;
	return ERR_OK;
}

enum err
transport_tcp_connect_list(const struct addrinfo *list, const char *host,
	int port, const char *source_ip, int64_t deadline,
	struct transport **ret_t, struct errinfo *reterr)
{
	struct addrinfo *src = NULL;
	struct race *r;
	enum err e;
	int fd = -1;

	*ret_t = NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	buf_init(&r->failures, FAILURES_MAX);
	if (source_ip != NULL && source_ip[0] != '\0') {
		e = resolve_source(source_ip, &src, reterr);
		if (e != ERR_OK) {
			free(r);
			return e;
		}
		r->source = src->ai_addr;
		r->source_len = src->ai_addrlen;
	}
	race_order(r, list, src != NULL ? src->ai_family : AF_UNSPEC);
	if (r->count == 0) {
		if (src != NULL) {
			e = errinfo_set(reterr, ERR_CONFIG,
				"source_ip '%s' and %s have no address family "
				"in common", source_ip, host);
		} else {
			e = errinfo_set(reterr, ERR_NET,
				"no usable address for %s", host);
		}
		goto out;
	}
	e = race_run(r, host, port, deadline, &fd, reterr);
	while (r->n_live > 0) {
		race_drop(r, r->n_live - 1);
	}
	if (e != ERR_OK) {
		goto out;
	}
	e = make_transport(fd, host, port, ret_t, reterr);
out:
	if (src != NULL) {
		freeaddrinfo(src);
	}
	buf_release(&r->failures);
	free(r);
	return e;
}

enum err
transport_tcp_connect(const char *host, int port, const char *source_ip,
	int64_t deadline, struct transport **ret_t, struct errinfo *reterr)
{
	struct addrinfo hints, *list = NULL;
	char name[256];
	char service[16];
	size_t len;
	enum err e;

	*ret_t = NULL;
	if (host == NULL || host[0] == '\0') {
		return errinfo_set(reterr, ERR_CONFIG,
			"no host given: set 'host' in the account");
	}
	if (port <= 0 || port > 65535) {
		return errinfo_set(reterr, ERR_CONFIG, "invalid port %d: "
			"'port' must be 1 to 65535", port);
	}
	/* Accept "[::1]" as well as "::1". */
	len = strlen(host);
	if (host[0] == '[' && len > 2 && host[len - 1] == ']') {
		if (len - 2 >= sizeof(name)) {
			return errinfo_set(reterr, ERR_CONFIG,
				"host name too long");
		}
		memcpy(name, host + 1, len - 2);
		name[len - 2] = '\0';
	} else if (util_strlcpy(name, host, sizeof(name)) >= sizeof(name)) {
		return errinfo_set(reterr, ERR_CONFIG, "host name too long");
	}
	snprintf(service, sizeof(service), "%d", port);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	/*
	 * No AI_ADDRCONFIG: it hides ::1 and 127.0.0.1 on hosts without a
	 * non-loopback address of that family, and the race copes with
	 * addresses that cannot be reached anyway.
	 */
	hints.ai_flags = AI_NUMERICSERV;
	/* The lookup shares the connect's deadline (see resolve.h). */
	e = resolve_host(name, service, &hints, deadline, &list, reterr);
	if (e != ERR_OK) {
		return e;
	}
	e = transport_tcp_connect_list(list, name, port, source_ip, deadline,
		ret_t, reterr);
	freeaddrinfo(list);
	return e;
}
