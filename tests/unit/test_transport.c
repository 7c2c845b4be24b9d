/*
 * test_transport.c - TCP and TLS transports against in-process servers.
 *
 * A test CA, a second (untrusted) CA and the server certificates are made
 * with the OpenSSL API into a mkdtemp directory at start.  Servers are
 * threads on 127.0.0.1 (and ::1 when present), port 0, each serving a fixed
 * number of connections with 5 s socket timeouts, and are always joined.
 * SIGPIPE is blocked in server threads only: the main thread keeps the
 * default action, so a client write that raised SIGPIPE would kill the test.
 *
 * Name resolution: resolve_host() costs (no thread for literals), and a DNS
 * server that never answers, in private namespaces (test_resolve_hung_dns).
 */
#define _GNU_SOURCE	/* unshare(2) and CLONE_* for the DNS test */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "err.h"
#include "resolve.h"
#include "tap.h"
#include "transport.h"
#include "util.h"

static char tmpdir[256];
static struct errinfo ei;

/* ---- certificates ---- */

static EVP_PKEY *
gen_key(void)
{
	EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
	EVP_PKEY *key = NULL;

	if (kc == NULL || EVP_PKEY_keygen_init(kc) <= 0
		|| EVP_PKEY_CTX_set_ec_paramgen_curve_nid(kc,
			NID_X9_62_prime256v1) <= 0
		|| EVP_PKEY_keygen(kc, &key) <= 0) {
		key = NULL;
	}
	EVP_PKEY_CTX_free(kc);
	return key;
}

static void
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ex;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
	ex = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ex != NULL) {
		X509_add_ext(cert, ex, -1);
		X509_EXTENSION_free(ex);
	}
}

/*
 * A certificate for key, valid from now+from_s to now+until_s, signed by
 * ca/ca_key (self-signed when ca is NULL).  san NULL: a CA certificate.
 */
static X509 *
make_cert(const char *cn, const char *san, EVP_PKEY *key, X509 *ca,
	EVP_PKEY *ca_key, long from_s, long until_s)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
		(const unsigned char *)"oasmtp tests", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
		(const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, ca != NULL ? X509_get_subject_name(ca) : name);
	X509_gmtime_adj(X509_getm_notBefore(x), from_s);
	X509_gmtime_adj(X509_getm_notAfter(x), until_s);
	X509_set_pubkey(x, key);
	if (san == NULL) {
		add_ext(x, ca != NULL ? ca : x, NID_basic_constraints,
			"critical,CA:TRUE");
		add_ext(x, ca != NULL ? ca : x, NID_key_usage,
			"critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, ca != NULL ? ca : x, NID_basic_constraints,
			"CA:FALSE");
		add_ext(x, ca != NULL ? ca : x, NID_subject_alt_name, san);
	}
	X509_sign(x, ca_key != NULL ? ca_key : key, EVP_sha256());
	return x;
}

static void
path_in_tmp(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", tmpdir, name);
}

static int
write_pem(const char *name, X509 *cert, EVP_PKEY *key)
{
	char path[512];
	FILE *f;
	int ok = 1;

	path_in_tmp(path, sizeof(path), name);
	f = fopen(path, "w");
	if (f == NULL) {
		return 0;
	}
	if (cert != NULL) {
		ok = ok && PEM_write_X509(f, cert);
	}
	if (key != NULL) {
		ok = ok && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL,
			NULL);
	}
	return fclose(f) == 0 && ok;
}

static void
digest_of(X509 *cert, const EVP_MD *md_type, int colons, int lower,
	char *out, size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	size_t pos = 0;

	X509_digest(cert, md_type, md, &n);
	out[0] = '\0';
	for (unsigned int i = 0; i < n && pos + 4 < size; i++) {
		pos += (size_t)snprintf(out + pos, size - pos,
			lower ? "%s%02x" : "%s%02X",
			colons && i > 0 ? ":" : "", md[i]);
	}
}

static void
fingerprint_of(X509 *cert, int colons, int lower, char *out, size_t size)
{
	digest_of(cert, EVP_sha256(), colons, lower, out, size);
}

struct pki {
	EVP_PKEY *ca_key, *ca2_key, *srv_key, *cli_key;
	X509 *ca, *ca2, *good, *expired, *foreign, *client;
};

static struct pki pki;

/* A CRL from the test CA, revoking cert when it is not NULL. */
static int
write_crl(const char *name, X509 *revoked)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *now = X509_gmtime_adj(NULL, -60);
	ASN1_TIME *next = X509_gmtime_adj(NULL, 86400);
	char path[512];
	FILE *f;
	int ok = 0;

	X509_CRL_set_version(crl, 1);
	X509_CRL_set_issuer_name(crl, X509_get_subject_name(pki.ca));
	X509_CRL_set1_lastUpdate(crl, now);
	X509_CRL_set1_nextUpdate(crl, next);
	if (revoked != NULL) {
		X509_REVOKED *r = X509_REVOKED_new();

		X509_REVOKED_set_serialNumber(r,
			X509_get_serialNumber(revoked));
		X509_REVOKED_set_revocationDate(r, now);
		X509_CRL_add0_revoked(crl, r);
	}
	X509_CRL_sort(crl);
	if (X509_CRL_sign(crl, pki.ca_key, EVP_sha256()) > 0) {
		path_in_tmp(path, sizeof(path), name);
		f = fopen(path, "w");
		if (f != NULL) {
			ok = PEM_write_X509_CRL(f, crl);
			ok = fclose(f) == 0 && ok;
		}
	}
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	X509_CRL_free(crl);
	return ok;
}

static int
make_pki(void)
{
	const char *san = "DNS:localhost,IP:127.0.0.1,IP:::1";

	pki.ca_key = gen_key();
	pki.ca2_key = gen_key();
	pki.srv_key = gen_key();
	pki.cli_key = gen_key();
	if (pki.ca_key == NULL || pki.ca2_key == NULL || pki.srv_key == NULL
		|| pki.cli_key == NULL) {
		return 0;
	}
	pki.ca = make_cert("oasmtp Test CA", NULL, pki.ca_key, NULL, NULL,
		-86400, 86400 * 30);
	pki.ca2 = make_cert("Untrusted CA", NULL, pki.ca2_key, NULL, NULL,
		-86400, 86400 * 30);
	pki.good = make_cert("localhost", san, pki.srv_key, pki.ca,
		pki.ca_key, -3600, 86400);
	pki.expired = make_cert("localhost", san, pki.srv_key, pki.ca,
		pki.ca_key, -86400 * 3, -86400);
	pki.foreign = make_cert("localhost", san, pki.srv_key, pki.ca2,
		pki.ca2_key, -3600, 86400);
	pki.client = make_cert("client", "DNS:client.test", pki.cli_key,
		pki.ca, pki.ca_key, -3600, 86400);
	return write_crl("crl-empty.pem", NULL)
		&& write_crl("crl-revoked.pem", pki.good)
		&& write_pem("ca.pem", pki.ca, NULL)
		&& write_pem("ca2.pem", pki.ca2, NULL)
		&& write_pem("client.pem", pki.client, NULL)
		&& write_pem("client.key", NULL, pki.cli_key);
}

static void
free_pki(void)
{
	EVP_PKEY_free(pki.ca_key);
	EVP_PKEY_free(pki.ca2_key);
	EVP_PKEY_free(pki.srv_key);
	EVP_PKEY_free(pki.cli_key);
	X509_free(pki.ca);
	X509_free(pki.ca2);
	X509_free(pki.good);
	X509_free(pki.expired);
	X509_free(pki.foreign);
	X509_free(pki.client);
}

static SSL_CTX *
server_ctx(X509 *cert, int max_version, int want_client_cert)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	SSL_CTX_use_certificate(ctx, cert);
	SSL_CTX_use_PrivateKey(ctx, pki.srv_key);
	if (max_version != 0) {
		SSL_CTX_set_security_level(ctx, 0);
		SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
		SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
		SSL_CTX_set_max_proto_version(ctx, max_version);
	}
	if (want_client_cert) {
		X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), pki.ca);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER
			| SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return ctx;
}

/* ---- servers ---- */

enum srv_mode {
	SRV_GREET,	/* send a greeting, then echo until closed */
	SRV_SILENT,	/* accept, never speak, wait for the close */
	SRV_CLOSE,	/* accept and close at once */
	SRV_GREET_CLOSE,/* greeting, then close (TLS: with close_notify) */
};

struct server {
	int lfd;
	int port;
	SSL_CTX *ctx;		/* NULL: plain TCP */
	enum srv_mode mode;
	int conns;		/* connections to serve */
	int accepted;
	int handshakes;
	pthread_t thr;
};

static void
set_timeouts(int fd, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void
serve_plain(struct server *s, int fd)
{
	char b[4096];
	ssize_t n;

	if (s->mode == SRV_CLOSE) {
		return;
	}
	if (s->mode == SRV_GREET || s->mode == SRV_GREET_CLOSE) {
		(void)!write(fd, "220 hello\r\n", 11);
		if (s->mode == SRV_GREET_CLOSE) {
			return;
		}
	}
	while ((n = read(fd, b, sizeof(b))) > 0) {
		if (s->mode == SRV_GREET && write(fd, b, (size_t)n) != n) {
			break;
		}
	}
}

static void
serve_tls(struct server *s, int fd)
{
	SSL *ssl;
	char b[4096];
	int n;

	if (s->mode == SRV_CLOSE || s->mode == SRV_SILENT) {
		serve_plain(s, fd);
		return;
	}
	ssl = SSL_new(s->ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) == 1) {
		s->handshakes++;
		SSL_write(ssl, "220 hello\r\n", 11);
		if (s->mode == SRV_GREET) {
			while ((n = SSL_read(ssl, b, sizeof(b))) > 0) {
				if (SSL_write(ssl, b, n) != n) {
					break;
				}
			}
		}
		SSL_shutdown(ssl);
	}
	SSL_free(ssl);
	ERR_clear_error();
}

static void *
server_main(void *arg)
{
	struct server *s = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (int i = 0; i < s->conns; i++) {
		struct pollfd p = { .fd = s->lfd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 5000) != 1) {
			break;
		}
		fd = accept(s->lfd, NULL, NULL);
		if (fd < 0) {
			break;
		}
		s->accepted++;
		set_timeouts(fd, 5);
		if (s->ctx != NULL) {
			serve_tls(s, fd);
		} else {
			serve_plain(s, fd);
		}
		close(fd);
	}
	return NULL;
}

/* Bind addr:port (port 0: any), listen with backlog; fd or -1. */
static int
listen_on(const char *addr, int port, int backlog, int *ret_port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, addr, &s6->sin6_addr);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, addr, &s4->sin_addr);
		len = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -1;
	}
	if (ss.ss_family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)&ss, len) != 0
		|| listen(fd, backlog) != 0) {
		close(fd);
		return -1;
	}
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*ret_port = ntohs(ss.ss_family == AF_INET6
		? ((struct sockaddr_in6 *)&ss)->sin6_port
		: ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static int
server_start_on(struct server *s, const char *addr, SSL_CTX *ctx,
	enum srv_mode mode, int conns)
{
	memset(s, 0, sizeof(*s));
	s->ctx = ctx;
	s->mode = mode;
	s->conns = conns;
	s->lfd = listen_on(addr, 0, 16, &s->port);
	if (s->lfd < 0) {
		return 0;
	}
	if (pthread_create(&s->thr, NULL, server_main, s) != 0) {
		close(s->lfd);
		return 0;
	}
	return 1;
}

static int
server_start(struct server *s, SSL_CTX *ctx, enum srv_mode mode, int conns)
{
	return server_start_on(s, "127.0.0.1", ctx, mode, conns);
}

static void
server_stop(struct server *s)
{
	pthread_join(s->thr, NULL);
	close(s->lfd);
}

/*
 * A listener that accepts no more connections: backlog 0 and one queued
 * connection, so further SYNs go unanswered and connects hang.
 */
struct blackhole {
	int lfd;
	int filler;
	int port;
};

static int
blackhole_open(struct blackhole *b, const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	b->lfd = listen_on(addr, 0, 0, &b->port);
	if (b->lfd < 0) {
		return 0;
	}
	getsockname(b->lfd, (struct sockaddr *)&ss, &len);
	b->filler = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	(void)connect(b->filler, (struct sockaddr *)&ss, len);
	usleep(50 * 1000);
	return 1;
}

static void
blackhole_close(struct blackhole *b)
{
	close(b->filler);
	close(b->lfd);
}

/* ---- client helpers ---- */

static int64_t
deadline_in(int ms)
{
	return util_now_ms() + ms;
}

/* Read until a LF; the line (with CRLF) into out. */
static enum err
read_line(struct transport *t, char *out, size_t size, int64_t deadline)
{
	size_t len = 0;

	out[0] = '\0';
	while (len + 1 < size) {
		size_t n = 0;
		enum err e = t->ops->read(t, out + len, 1, &n, deadline, &ei);

		if (e != ERR_OK) {
			return e;
		}
		len += n;
		out[len] = '\0';
		if (out[len - 1] == '\n') {
			return ERR_OK;
		}
	}
	return ERR_LIMIT;
}

static enum err
connect_local(struct server *s, struct transport **t)
{
	errinfo_init(&ei);
	return transport_tcp_connect("127.0.0.1", s->port, NULL,
		deadline_in(3000), t, &ei);
}

static void
fill_sockaddr(struct sockaddr_storage *ss, struct addrinfo *ai,
	const char *addr, int port)
{
	memset(ss, 0, sizeof(*ss));
	memset(ai, 0, sizeof(*ai));
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, addr, &s6->sin6_addr);
		ai->ai_addrlen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, addr, &s4->sin_addr);
		ai->ai_addrlen = sizeof(*s4);
	}
	ai->ai_family = ss->ss_family;
	ai->ai_socktype = SOCK_STREAM;
	ai->ai_protocol = IPPROTO_TCP;
	ai->ai_addr = (struct sockaddr *)ss;
}

static int
have_ipv6_loopback(void)
{
	int port;
	int fd = listen_on("::1", 0, 1, &port);

	if (fd < 0) {
		return 0;
	}
	close(fd);
	return 1;
}

/* ---- TCP tests ---- */

static void
test_tcp_echo(void)
{
	struct server s;
	struct transport *t = NULL;
	struct buf d;
	char line[128];
	enum err e;

	if (!ok(server_start(&s, NULL, SRV_GREET, 1), "tcp: echo server up")) {
		return;
	}
	e = connect_local(&s, &t);
	is_int(e, ERR_OK, "tcp: connect to 127.0.0.1 (%s)", errinfo_msg(&ei));
	if (e == ERR_OK) {
		is_int(read_line(t, line, sizeof(line), deadline_in(2000)),
			ERR_OK, "tcp: read greeting");
		is_str(line, "220 hello\r\n", "tcp: greeting bytes");
		is_int(t->ops->pending(t), 0, "tcp: nothing buffered");
		is_int(t->ops->write(t, "EHLO x\r\n", 8, deadline_in(2000),
			&ei), ERR_OK, "tcp: write");
		is_int(read_line(t, line, sizeof(line), deadline_in(2000)),
			ERR_OK, "tcp: read echo");
		is_str(line, "EHLO x\r\n", "tcp: echo bytes");
		ok(transport_peer_is_loopback(t), "tcp: peer is loopback");
		buf_init(&d, 1024);
		t->ops->describe(t, &d);
		contains(buf_cstr(&d), "127.0.0.1", "tcp: describe names peer");
		buf_release(&d);
		d.len = 0;
		buf_init(&d, 1024);
		setup(transport_tls_info(t, &d));
		is_int(d.len, 0, "tcp: no TLS info for plain TCP");
		buf_release(&d);
		ok(!transport_tls_resumed(t), "tcp: not a resumed TLS session");
	}
	transport_close(t);
	server_stop(&s);
}

static void
test_tcp_localhost(void)
{
	struct server s;
	struct transport *t = NULL;
	struct addrinfo hints, *res = NULL;
	int has6 = 0;

	/* Listener on 127.0.0.1 only: "localhost" must still connect. */
	if (!ok(server_start(&s, NULL, SRV_GREET, 1), "localhost: server up")) {
		return;
	}
	is_int(transport_tcp_connect("localhost", s.port, NULL,
		deadline_in(3000), &t, &ei), ERR_OK,
		"localhost: connects with a listener on 127.0.0.1 only (%s)",
		errinfo_msg(&ei));
	transport_close(t);
	t = NULL;
	server_stop(&s);

	/* And with one on ::1 only, when localhost resolves to ::1. */
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET6;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo("localhost", "25", &hints, &res) == 0) {
		has6 = 1;
		freeaddrinfo(res);
	}
	if (!has6 || !have_ipv6_loopback()) {
		diag("localhost has no ::1 address here; the IPv6 half of the "
			"race is covered by test_tcp_race_list");
		return;
	}
	if (!ok(server_start_on(&s, "::1", NULL, SRV_GREET, 1),
		"localhost: ::1 server up")) {
		return;
	}
	is_int(transport_tcp_connect("localhost", s.port, NULL,
		deadline_in(3000), &t, &ei), ERR_OK,
		"localhost: connects with a listener on ::1 only (%s)", errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);
}

static void
test_tcp_race_list(void)
{
	struct server s;
	struct blackhole bh;
	struct sockaddr_storage ss[3];
	struct addrinfo ai[3];
	struct transport *t = NULL;
	struct buf d;
	char line[64];
	int64_t t0, dt;
	int refused_port;
	int fd;
	enum err e;

	if (!ok(server_start(&s, NULL, SRV_GREET, 3), "race: server up")) {
		return;
	}
	/* 1. A hanging first address: the second starts after ~250 ms. */
	if (ok(blackhole_open(&bh, "127.0.0.1"), "race: blackhole up")) {
		fill_sockaddr(&ss[0], &ai[0], "127.0.0.1", bh.port);
		fill_sockaddr(&ss[1], &ai[1], "127.0.0.1", s.port);
		ai[0].ai_next = &ai[1];
		errinfo_init(&ei);
		t0 = util_now_ms();
		e = transport_tcp_connect_list(ai, "race.test", s.port, NULL,
			deadline_in(3000), &t, &ei);
		dt = util_now_ms() - t0;
		is_int(e, ERR_OK, "race: hanging address is overtaken (%s)",
			errinfo_msg(&ei));
		ok(dt >= 200 && dt < 2000,
			"race: second attempt after the delay (%lld ms)",
			(long long)dt);
		if (e == ERR_OK) {
			is_int(read_line(t, line, sizeof(line),
				deadline_in(2000)), ERR_OK,
				"race: winner is the live server");
		}
		transport_close(t);
		t = NULL;

		/* Only the blackhole: the overall deadline wins. */
		ai[0].ai_next = NULL;
		errinfo_init(&ei);
		t0 = util_now_ms();
		e = transport_tcp_connect_list(ai, "hang.test", bh.port, NULL,
			deadline_in(300), &t, &ei);
		dt = util_now_ms() - t0;
		is_int(e, ERR_TIMEOUT, "race: hanging connect times out");
		ok(dt >= 250 && dt < 1500, "race: timeout on time (%lld ms)",
			(long long)dt);
		contains(errinfo_msg(&ei), "hang.test", "race: timeout names the host");
		ok(t == NULL, "race: no transport on timeout");
		blackhole_close(&bh);
	}

	/* 2. A refused first address: the next starts at once. */
	fd = listen_on("127.0.0.1", 0, 1, &refused_port);
	close(fd);
	fill_sockaddr(&ss[0], &ai[0], "127.0.0.1", refused_port);
	fill_sockaddr(&ss[1], &ai[1], "127.0.0.1", s.port);
	ai[0].ai_next = &ai[1];
	errinfo_init(&ei);
	t0 = util_now_ms();
	e = transport_tcp_connect_list(ai, "race.test", s.port, NULL,
		deadline_in(3000), &t, &ei);
	dt = util_now_ms() - t0;
	is_int(e, ERR_OK, "race: refused address skipped (%s)", errinfo_msg(&ei));
	ok(dt < 200, "race: no delay after a refusal (%lld ms)", (long long)dt);
	transport_close(t);
	t = NULL;

	/* 3. IPv6 goes first even when listed last (RFC 8305 order). */
	if (have_ipv6_loopback() && blackhole_open(&bh, "::1")) {
		fill_sockaddr(&ss[0], &ai[0], "127.0.0.1", s.port);
		fill_sockaddr(&ss[1], &ai[1], "::1", bh.port);
		ai[0].ai_next = &ai[1];
		errinfo_init(&ei);
		t0 = util_now_ms();
		e = transport_tcp_connect_list(ai, "race.test", s.port, NULL,
			deadline_in(3000), &t, &ei);
		dt = util_now_ms() - t0;
		is_int(e, ERR_OK, "race: v4 wins after the v6 attempt (%s)",
			errinfo_msg(&ei));
		ok(dt >= 200, "race: IPv6 was tried first (%lld ms)",
			(long long)dt);
		buf_init(&d, 512);
		if (t != NULL) {
			t->ops->describe(t, &d);
		}
		contains(buf_cstr(&d), "127.0.0.1", "race: connected over IPv4");
		buf_release(&d);
		transport_close(t);
		t = NULL;
		blackhole_close(&bh);
	} else {
		diag("no ::1 here: IPv6-first ordering not exercised");
		/* The server still expects a third connection. */
		e = connect_local(&s, &t);
		transport_close(t);
		t = NULL;
	}
	server_stop(&s);
}

static void
test_tcp_errors(void)
{
	struct transport *t = NULL;
	char portstr[16];
	int64_t t0, dt;
	int port;
	int fd;
	enum err e;

	/* Refused: a port that was just free. */
	fd = listen_on("127.0.0.1", 0, 1, &port);
	close(fd);
	snprintf(portstr, sizeof(portstr), "%d", port);
	t0 = util_now_ms();
	e = transport_tcp_connect("127.0.0.1", port, NULL, deadline_in(3000),
		&t, &ei);
	dt = util_now_ms() - t0;
	is_int(e, ERR_NET, "refused: ERR_NET");
	ok(dt < 1000, "refused: fails quickly (%lld ms)", (long long)dt);
	contains(errinfo_msg(&ei), "127.0.0.1", "refused: names the host");
	contains(errinfo_msg(&ei), portstr, "refused: names the port");
	contains(errinfo_msg(&ei), "refused", "refused: says why (%s)", errinfo_msg(&ei));
	ok(t == NULL, "refused: no transport");
	ok(err_is_temporary(e), "refused: temporary");

	/* DNS failure. */
	e = transport_tcp_connect("no-such-host.invalid", 25, NULL,
		deadline_in(3000), &t, &ei);
	/* a name that does not exist (RFC 6761: .invalid never does) */
	is_int(e, ERR_NOHOST, "dns: ERR_NOHOST (%s)", errinfo_msg(&ei));
	ok(err_exit_code(e) == 68 && !err_is_queueable(e) && err_is_config(e),
		"dns: exit 68, a configuration problem, not temporary");
	contains(errinfo_msg(&ei), "no-such-host.invalid", "dns: names the host");
	contains(errinfo_msg(&ei), "does not exist", "dns: says so");

	/* Bad arguments. */
	is_int(transport_tcp_connect("127.0.0.1", 0, NULL, 0, &t, &ei),
		ERR_CONFIG, "port 0 rejected");
	is_int(transport_tcp_connect("127.0.0.1", 25, "not-an-ip", 0, &t,
		&ei), ERR_CONFIG, "non-numeric source_ip rejected");
	is_int(transport_tcp_connect("127.0.0.1", 25, "::1", 0, &t, &ei),
		ERR_CONFIG, "source_ip of the wrong family rejected (%s)",
		errinfo_msg(&ei));
}

static void
test_tcp_source_ip(void)
{
	struct server s;
	struct transport *t = NULL;

	if (!ok(server_start(&s, NULL, SRV_GREET, 1), "source_ip: server up")) {
		return;
	}
	errinfo_init(&ei);
	is_int(transport_tcp_connect("[127.0.0.1]", s.port, "127.0.0.1",
		deadline_in(3000), &t, &ei), ERR_OK,
		"source_ip: bound connect works, bracketed host (%s)", errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);
}

static void
test_tcp_timeouts(void)
{
	struct server s;
	struct transport *t = NULL;
	char b[64];
	size_t n = 0;
	int64_t t0, dt;
	enum err e;

	/* A server that accepts but never speaks. */
	if (!ok(server_start(&s, NULL, SRV_SILENT, 1), "silent: server up")) {
		return;
	}
	e = connect_local(&s, &t);
	is_int(e, ERR_OK, "silent: connect");
	if (e == ERR_OK) {
		t0 = util_now_ms();
		e = t->ops->read(t, b, sizeof(b), &n, deadline_in(300), &ei);
		dt = util_now_ms() - t0;
		is_int(e, ERR_TIMEOUT, "silent: read times out");
		ok(dt >= 250 && dt < 1500, "silent: within bound (%lld ms)",
			(long long)dt);
		is_int(n, 0, "silent: nothing read");
		/* An already passed deadline fails at once. */
		e = t->ops->read(t, b, sizeof(b), &n, util_now_ms() - 1, &ei);
		is_int(e, ERR_TIMEOUT, "silent: past deadline");
	}
	transport_close(t);
	server_stop(&s);
}

static void
test_tcp_peer_close(void)
{
	struct server s;
	struct transport *t = NULL;
	static char big[64 * 1024];
	char b[64];
	size_t n = 0;
	enum err e;
	int i;

	if (!ok(server_start(&s, NULL, SRV_CLOSE, 1), "close: server up")) {
		return;
	}
	e = connect_local(&s, &t);
	is_int(e, ERR_OK, "close: connect");
	if (e == ERR_OK) {
		e = t->ops->read(t, b, sizeof(b), &n, deadline_in(3000), &ei);
		is_int(e, ERR_NET, "close: read reports ERR_NET");
		contains(errinfo_msg(&ei), "connection closed by server",
			"close: message (%s)", errinfo_msg(&ei));
		/* Writing into the closed connection: ERR_NET, no SIGPIPE. */
		memset(big, 'x', sizeof(big));
		for (i = 0; i < 50; i++) {
			e = t->ops->write(t, big, sizeof(big),
				deadline_in(2000), &ei);
			if (e != ERR_OK) {
				break;
			}
		}
		is_int(e, ERR_NET, "close: write fails without SIGPIPE (%s)",
			errinfo_msg(&ei));
	}
	transport_close(t);
	server_stop(&s);
}

/* ---- TLS tests ---- */

static struct tls_params
params_for(const char *host)
{
	static char trust[512];
	struct tls_params p;

	path_in_tmp(trust, sizeof(trust), "ca.pem");
	memset(&p, 0, sizeof(p));
	p.host = host;
	p.trust_file = trust;
	p.certcheck = 1;
	return p;
}

/*
 * Connect to a fresh server with ctx in mode, start TLS with p, and return
 * the result; on success the greeting is read and *ret_t holds the TLS
 * transport (the caller closes it, then calls server_stop(s)).
 */
static enum err
tls_try(struct server *s, SSL_CTX *ctx, enum srv_mode mode,
	const struct tls_params *p, int timeout_ms, struct transport **ret_t)
{
	struct transport *t = NULL;
	struct transport *before;
	enum err e;

	*ret_t = NULL;
	errinfo_init(&ei);
	if (!server_start(s, ctx, mode, 1)) {
		return errinfo_set(&ei, ERR_INTERNAL, "server did not start");
	}
	e = connect_local(s, &t);
	if (e != ERR_OK) {
		return e;
	}
	before = t;
	e = transport_tls_start(&t, p, deadline_in(timeout_ms), &ei);
	if (e != ERR_OK) {
		ok(t == before, "tls: failed start leaves the transport as is");
		transport_close(t);
		return e;
	}
	*ret_t = t;
	return ERR_OK;
}

static void
test_tls_verify(void)
{
	SSL_CTX *good = server_ctx(pki.good, 0, 0);
	SSL_CTX *expired = server_ctx(pki.expired, 0, 0);
	SSL_CTX *foreign = server_ctx(pki.foreign, 0, 0);
	struct tls_params p;
	struct transport *t;
	struct server s;
	struct buf d;
	char line[64];
	char fp[128];
	char crl[512];
	enum err e;

	/* Good certificate, trust file, host name. */
	p = params_for("localhost");
	e = tls_try(&s, good, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_OK, "tls: handshake with trust_file (%s)", errinfo_msg(&ei));
	if (e == ERR_OK) {
		is_int(read_line(t, line, sizeof(line), deadline_in(2000)),
			ERR_OK, "tls: read greeting");
		is_str(line, "220 hello\r\n", "tls: greeting bytes");
		is_int(t->ops->write(t, "NOOP\r\n", 6, deadline_in(2000), &ei),
			ERR_OK, "tls: write");
		is_int(read_line(t, line, sizeof(line), deadline_in(2000)),
			ERR_OK, "tls: read echo");
		is_str(line, "NOOP\r\n", "tls: echo bytes");
		is_int(t->ops->pending(t), 0, "tls: nothing pending");
		ok(transport_peer_is_loopback(t), "tls: peer is loopback");
		buf_init(&d, 8192);
		setup(transport_tls_info(t, &d));
		contains(buf_cstr(&d), "TLSv1.3", "tls info: protocol");
		contains(buf_cstr(&d), "cipher: TLS_", "tls info: cipher");
		contains(buf_cstr(&d), "CN=localhost", "tls info: subject");
		contains(buf_cstr(&d), "CN=oasmtp Test CA", "tls info: issuer");
		contains(buf_cstr(&d), "valid until: ", "tls info: validity");
		contains(buf_cstr(&d), "resumed: no", "tls info: not resumed");
		fingerprint_of(pki.good, 1, 0, fp, sizeof(fp));
		contains(buf_cstr(&d), fp, "tls info: SHA-256 fingerprint");
		buf_reset(&d);
		t->ops->describe(t, &d);
		contains(buf_cstr(&d), "TLSv1.3", "tls describe: protocol");
		contains(buf_cstr(&d), "over TCP", "tls describe: layering");
		buf_release(&d);
	}
	transport_close(t);
	server_stop(&s);

	/* IP-address host verified against the IP SAN. */
	p = params_for("127.0.0.1");
	e = tls_try(&s, good, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_OK, "tls: IP host verified as IP (%s)", errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);

	p = params_for("127.0.0.2");
	e = tls_try(&s, good, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_TLS, "tls: wrong IP refused");
	contains(errinfo_msg(&ei), "IP address mismatch", "tls: wrong IP (%s)", errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);

	/* Wrong host name. */
	p = params_for("mail.example.org");
	e = tls_try(&s, good, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_TLS, "tls: wrong host refused");
	contains(errinfo_msg(&ei), "host name mismatch", "tls: host name (%s)", errinfo_msg(&ei));
	contains(errinfo_msg(&ei), "certificate is for localhost",
		"tls: names the certificate's names");
	contains(errinfo_msg(&ei), "mail.example.org", "tls: names the wanted host");
	transport_close(t);
	server_stop(&s);

	/* Unknown CA. */
	p = params_for("localhost");
	e = tls_try(&s, foreign, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_TLS, "tls: unknown CA refused");
	contains(errinfo_msg(&ei), "unknown CA", "tls: unknown CA (%s)", errinfo_msg(&ei));
	contains(errinfo_msg(&ei), "Untrusted CA", "tls: names the issuer");
	transport_close(t);
	server_stop(&s);

	/* Expired. */
	e = tls_try(&s, expired, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_TLS, "tls: expired refused");
	contains(errinfo_msg(&ei), "certificate has expired", "tls: expired (%s)",
		errinfo_msg(&ei));
	ok(err_is_temporary(e), "tls: TLS failures are temporary (75)");
	transport_close(t);
	server_stop(&s);

	/* CRL: an empty one passes, one listing the server fails. */
	path_in_tmp(crl, sizeof(crl), "crl-empty.pem");
	p = params_for("localhost");
	p.crl_file = crl;
	e = tls_try(&s, good, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_OK, "tls: CRL without the server passes (%s)", errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);
	path_in_tmp(crl, sizeof(crl), "crl-revoked.pem");
	e = tls_try(&s, good, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_TLS, "tls: revoked certificate refused");
	contains(errinfo_msg(&ei), "revoked", "tls: revoked (%s)", errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);

	/* Fingerprint replaces CA checks: unknown CA, but pinned. */
	fingerprint_of(pki.foreign, 1, 0, fp, sizeof(fp));
	p = params_for("localhost");
	p.fingerprint = fp;
	e = tls_try(&s, foreign, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_OK, "tls: fingerprint match with unknown CA (%s)",
		errinfo_msg(&ei));
	if (e == ERR_OK) {
		is_int(read_line(t, line, sizeof(line), deadline_in(2000)),
			ERR_OK, "tls: pinned connection usable");
	}
	transport_close(t);
	server_stop(&s);

	fingerprint_of(pki.foreign, 0, 1, fp, sizeof(fp));
	p.host = "other.example";	/* the name is not checked when pinned */
	e = tls_try(&s, foreign, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_OK, "tls: fingerprint without colons, lower case (%s)",
		errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);

	fingerprint_of(pki.good, 1, 0, fp, sizeof(fp));
	p.host = "localhost";
	e = tls_try(&s, foreign, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_TLS, "tls: fingerprint mismatch refused");
	contains(errinfo_msg(&ei), "fingerprint mismatch (got ", "tls: mismatch (%s)",
		errinfo_msg(&ei));
	fingerprint_of(pki.foreign, 1, 0, fp, sizeof(fp));
	contains(errinfo_msg(&ei), fp, "tls: mismatch shows the real fingerprint");
	transport_close(t);
	server_stop(&s);

	/* msmtp's deprecated SHA-1 and MD5 pins still work (the config warns) */
	digest_of(pki.foreign, EVP_sha1(), 1, 0, fp, sizeof(fp));
	p.fingerprint = fp;
	e = tls_try(&s, foreign, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_OK, "tls: SHA-1 fingerprint match (%s)", errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);
	digest_of(pki.foreign, EVP_md5(), 0, 1, fp, sizeof(fp));
	e = tls_try(&s, foreign, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_OK, "tls: MD5 fingerprint match (%s)", errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);
	digest_of(pki.good, EVP_sha1(), 1, 0, fp, sizeof(fp));
	e = tls_try(&s, foreign, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_TLS, "tls: SHA-1 fingerprint mismatch refused");
	digest_of(pki.foreign, EVP_sha1(), 1, 0, fp, sizeof(fp));
	contains(errinfo_msg(&ei), fp, "tls: SHA-1 mismatch shows the SHA-1 of the peer");
	transport_close(t);
	server_stop(&s);
	p.fingerprint = "00:11:22";
	e = tls_try(&s, foreign, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_CONFIG, "tls: 3-byte fingerprint refused");
	transport_close(t);
	server_stop(&s);

	/* certcheck off accepts anything. */
	p = params_for("wrong.example");
	p.certcheck = 0;
	e = tls_try(&s, foreign, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_OK, "tls: certcheck off, unknown CA + wrong name (%s)",
		errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);
	e = tls_try(&s, expired, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_OK, "tls: certcheck off, expired (%s)", errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);

	SSL_CTX_free(good);
	SSL_CTX_free(expired);
	SSL_CTX_free(foreign);
}

static void
test_tls_protocol(void)
{
	SSL_CTX *old = server_ctx(pki.good, TLS1_1_VERSION, 0);
	SSL_CTX *good = server_ctx(pki.good, 0, 0);
	SSL_CTX *need_cert = server_ctx(pki.good, 0, 1);
	struct tls_params p = params_for("localhost");
	struct transport *t;
	struct server s;
	char line[64];
	char cert[512], key[512];
	int64_t t0, dt;
	enum err e;

	/* A TLS 1.1 server is refused. */
	e = tls_try(&s, old, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_TLS, "tls: TLS 1.1 server refused (%s)", errinfo_msg(&ei));
	contains(errinfo_msg(&ei), "TLS 1.2", "tls: says why");
	transport_close(t);
	server_stop(&s);
	is_int(s.handshakes, 0, "tls: no TLS 1.1 session was established");

	/* A server that never speaks: the handshake times out. */
	t0 = util_now_ms();
	e = tls_try(&s, good, SRV_SILENT, &p, 300, &t);
	dt = util_now_ms() - t0;
	is_int(e, ERR_TIMEOUT, "tls: silent server times out (%s)", errinfo_msg(&ei));
	ok(dt >= 250 && dt < 2000, "tls: handshake timeout on time (%lld ms)",
		(long long)dt);
	transport_close(t);
	server_stop(&s);

	/* A server that hangs up before the handshake. */
	e = tls_try(&s, good, SRV_CLOSE, &p, 3000, &t);
	ok(e == ERR_NET || e == ERR_TLS, "tls: hang-up during handshake is "
		"ERR_NET/ERR_TLS (%s: %s)", err_name(e), errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);

	/* Peer closes after the greeting: ERR_NET, writes without SIGPIPE. */
	e = tls_try(&s, good, SRV_GREET_CLOSE, &p, 3000, &t);
	is_int(e, ERR_OK, "tls close: handshake");
	if (e == ERR_OK) {
		static char big[64 * 1024];
		size_t n = 0;
		int i;

		is_int(read_line(t, line, sizeof(line), deadline_in(2000)),
			ERR_OK, "tls close: greeting");
		e = t->ops->read(t, line, sizeof(line), &n, deadline_in(2000),
			&ei);
		is_int(e, ERR_NET, "tls close: read reports ERR_NET");
		contains(errinfo_msg(&ei), "connection closed by server",
			"tls close: message (%s)", errinfo_msg(&ei));
		memset(big, 'y', sizeof(big));
		for (i = 0; i < 50; i++) {
			e = t->ops->write(t, big, sizeof(big),
				deadline_in(2000), &ei);
			if (e != ERR_OK) {
				break;
			}
		}
		ok(e == ERR_NET || e == ERR_TLS,
			"tls close: write fails without SIGPIPE (%s)", errinfo_msg(&ei));
	}
	transport_close(t);
	server_stop(&s);

	/* Client certificate. */
	path_in_tmp(cert, sizeof(cert), "client.pem");
	path_in_tmp(key, sizeof(key), "client.key");
	p.cert_file = cert;
	p.key_file = key;
	e = tls_try(&s, need_cert, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_OK, "tls: client certificate handshake (%s)", errinfo_msg(&ei));
	if (e == ERR_OK) {
		is_int(read_line(t, line, sizeof(line), deadline_in(2000)),
			ERR_OK, "tls: server accepted the client certificate");
	}
	transport_close(t);
	server_stop(&s);
	is_int(s.handshakes, 1, "tls: server saw the client certificate");

	p.cert_file = NULL;
	p.key_file = NULL;
	e = tls_try(&s, need_cert, SRV_GREET, &p, 3000, &t);
	if (e == ERR_OK) {
		/* TLS 1.3: the refusal arrives after the client's Finished. */
		e = read_line(t, line, sizeof(line), deadline_in(2000));
	}
	ok(e == ERR_TLS || e == ERR_NET,
		"tls: no client certificate refused by server (%s)", errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);
	is_int(s.handshakes, 0, "tls: server completed no handshake");

	SSL_CTX_free(old);
	SSL_CTX_free(good);
	SSL_CTX_free(need_cert);
}

static void
test_tls_config_errors(void)
{
	SSL_CTX *good = server_ctx(pki.good, 0, 0);
	struct tls_params p = params_for("localhost");
	struct transport *t;
	struct server s;
	char missing[512];
	enum err e;

	path_in_tmp(missing, sizeof(missing), "no-such-ca.pem");
	p.trust_file = missing;
	e = tls_try(&s, good, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_CONFIG, "tls: missing trust file is ERR_CONFIG");
	contains(errinfo_msg(&ei), "no-such-ca.pem", "tls: names the file (%s)", errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);

	p = params_for("localhost");
	p.fingerprint = "AB:CD:zz";
	e = tls_try(&s, good, SRV_GREET, &p, 3000, &t);
	is_int(e, ERR_CONFIG, "tls: malformed fingerprint is ERR_CONFIG (%s)",
		errinfo_msg(&ei));
	transport_close(t);
	server_stop(&s);

	SSL_CTX_free(good);
}

/* A fake transport that claims to hold buffered bytes. */
static size_t
fake_pending(struct transport *t)
{
	return 3;
}

static void
fake_close(struct transport *t)
{
}

static void
test_tls_refuses_buffered(void)
{
	static const struct transport_ops fake_ops = {
		.pending = fake_pending,
		.close = fake_close,
	};
	struct transport fake = { .ops = &fake_ops, .fd = 0 };
	struct transport *t = &fake;
	struct tls_params p = params_for("localhost");

	is_int(transport_tls_start(&t, &p, deadline_in(1000), &ei), ERR_PROTO,
		"tls: refuses to start over buffered bytes");
	ok(t == &fake, "tls: transport untouched");
}

static int
file_mode(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		return -1;
	}
	return (int)(st.st_mode & 07777);
}

/* 1 when the file at path contains needle. */
static int
file_has(const char *path, const char *needle)
{
	char data[16384];
	FILE *f = fopen(path, "r");
	size_t n = f != NULL ? fread(data, 1, sizeof(data) - 1, f) : 0;

	if (f != NULL) {
		fclose(f);
	}
	data[n] = '\0';
	return strstr(data, needle) != NULL;
}

/* The PEM of the session record at path into pem (NUL-terminated); its length or -1. */
static int
session_pem_of(const char *path, char *pem, size_t size)
{
	char data[16384];
	FILE *f = fopen(path, "r");
	size_t n = f != NULL ? fread(data, 1, sizeof(data) - 1, f) : 0;
	const char *v, *end;
	size_t o = 0;

	if (f != NULL) {
		fclose(f);
	}
	data[n] = '\0';
	v = strstr(data, "\nsession ");
	end = v != NULL ? strchr(v + 1, '\n') : NULL;
	if (end == NULL) {
		return -1;
	}
	for (v += strlen("\nsession "); v < end && o + 1 < size; v++) {
		if (v[0] == '\\' && v[1] == 'n') {
			pem[o++] = '\n';
			v++;
		} else {
			pem[o++] = *v;
		}
	}
	pem[o] = '\0';
	return (int)o;
}

/* The SSL_SESSION the session record at path holds, or NULL. */
static SSL_SESSION *
cached_session(const char *path)
{
	char pem[16384];
	int n = session_pem_of(path, pem, sizeof(pem));
	SSL_SESSION *sess = NULL;
	BIO *b;

	if (n > 0 && (b = BIO_new_mem_buf(pem, n)) != NULL) {
		sess = PEM_read_bio_SSL_SESSION(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	return sess;
}

/*
 * Rewrite the session record at path in the layout of oasmtp 0.1.0: the
 * line "oasmtp-session host=H check=C", then the PEM.
 */
static int
session_to_v010(const char *path)
{
	char pem[16384];
	int n = session_pem_of(path, pem, sizeof(pem));
	FILE *f;

	if (n < 0 || (f = fopen(path, "w")) == NULL) {
		return -1;
	}
	fprintf(f, "oasmtp-session host=localhost check=ca\n%s", pem);
	fclose(f);
	return chmod(path, 0600);
}

/* The session key: stable for the same settings, new for any change. */
static void
test_tls_session_key(void)
{
	struct tls_params p = params_for("localhost"), q;
	char base[64] = "", key[64], other[512], trust[512];
	struct buf b;
	FILE *f;

	buf_init(&b, 64);
	is_int(transport_tls_session_key(&p, &b), ERR_OK, "key: computed");
	is_int((int)b.len, 32, "key: 32 hex digits");
	snprintf(base, sizeof(base), "%s", buf_cstr(&b));
	b.len = 0;
	setup(transport_tls_session_key(&p, &b));
	is_str(buf_cstr(&b), base, "key: same settings, same key");

#define KEY_DIFFERS(what) do { \
		b.len = 0; \
		setup(transport_tls_session_key(&q, &b)); \
		snprintf(key, sizeof(key), "%s", buf_cstr(&b)); \
		ok(strcmp(key, base) != 0, "key: %s changes it", what); \
	} while (0)
	q = p; q.host = "127.0.0.1"; KEY_DIFFERS("the server name");
	q = p; q.trust_file = NULL; KEY_DIFFERS("the system store");
	path_in_tmp(other, sizeof(other), "ca2.pem");
	q = p; q.trust_file = other; KEY_DIFFERS("another trust file");
	q = p; q.fingerprint = "AB:CD"; KEY_DIFFERS("a pin");
	q = p; q.certcheck = 0; KEY_DIFFERS("tls_certcheck off");
	q = p; q.crl_file = other; KEY_DIFFERS("a CRL file");
	q = p; q.cert_file = other; KEY_DIFFERS("a client certificate");
	q = p; q.key_file = other; KEY_DIFFERS("a client key");
	/* the same trust file path rewritten: another file */
	path_in_tmp(trust, sizeof(trust), "keyed-ca.pem");
	f = fopen(trust, "w");
	if (f != NULL) {
		fputs("one\n", f);
		fclose(f);
	}
	q = p; q.trust_file = trust;
	b.len = 0;
	setup(transport_tls_session_key(&q, &b));
	snprintf(base, sizeof(base), "%s", buf_cstr(&b));
	/* another size: two writes may share a timestamp tick */
	f = fopen(trust, "w");
	if (f != NULL) {
		fputs("two, longer\n", f);
		fclose(f);
	}
	KEY_DIFFERS("a rewritten trust file");
#undef KEY_DIFFERS
	unlink(trust);
	buf_release(&b);
}

static void
test_tls_resumption(void)
{
	SSL_CTX *good = server_ctx(pki.good, 0, 0);
	struct tls_params p = params_for("localhost");
	struct transport *t = NULL;
	SSL_SESSION *sess;
	struct server s;
	struct buf d;
	char cache[512], dir[512], line[64];
	FILE *f;
	enum err e;

	path_in_tmp(dir, sizeof(dir), "cache/oasmtp");
	path_in_tmp(cache, sizeof(cache), "cache/oasmtp/tls-localhost");
	p.session_cache = cache;
	if (!ok(server_start(&s, good, SRV_GREET, 5), "resume: server up")) {
		SSL_CTX_free(good);
		return;
	}

	/* 1st: full handshake; the ticket arrives with the greeting. */
	e = connect_local(&s, &t);
	if (e == ERR_OK) {
		errinfo_init(&ei);
		e = transport_tls_start(&t, &p, deadline_in(3000), &ei);
	}
	is_int(e, ERR_OK, "resume: first handshake (%s)", errinfo_msg(&ei));
	if (e == ERR_OK) {
		ok(!transport_tls_resumed(t), "resume: first is not resumed");
		is_int(read_line(t, line, sizeof(line), deadline_in(2000)),
			ERR_OK, "resume: greeting");
	}
	transport_close(t);
	t = NULL;
	is_int(file_mode(cache), 0600, "resume: cache file mode 0600");
	is_int(file_mode(dir), 0700, "resume: cache directory mode 0700");
	/* the chain was checked: the file keeps no certificate to decode */
	sess = cached_session(cache);
	ok(sess != NULL && SSL_SESSION_is_resumable(sess),
		"resume: the file holds a resumable session");
	ok(sess != NULL && SSL_SESSION_get0_peer(sess) == NULL,
		"resume: without the server's certificate (CA mode)");
	SSL_SESSION_free(sess);

	/* 2nd: resumed. */
	e = connect_local(&s, &t);
	if (e == ERR_OK) {
		errinfo_init(&ei);
		e = transport_tls_start(&t, &p, deadline_in(3000), &ei);
	}
	is_int(e, ERR_OK, "resume: second handshake (%s)", errinfo_msg(&ei));
	if (e == ERR_OK) {
		ok(transport_tls_resumed(t), "resume: second is resumed");
		buf_init(&d, 4096);
		setup(transport_tls_info(t, &d));
		contains(buf_cstr(&d), "resumed: yes", "resume: info says so");
		contains(buf_cstr(&d), "TLS certificate: not sent again "
			"(resumed session; checked when it was made)",
			"resume: info says why no certificate is shown");
		buf_release(&d);
		is_int(read_line(t, line, sizeof(line), deadline_in(2000)),
			ERR_OK, "resume: resumed session works");
	}
	transport_close(t);
	t = NULL;

	/* Another host never gets this host's session. */
	p.host = "127.0.0.1";
	e = connect_local(&s, &t);
	if (e == ERR_OK) {
		errinfo_init(&ei);
		e = transport_tls_start(&t, &p, deadline_in(3000), &ei);
	}
	is_int(e, ERR_OK, "resume: other host handshake (%s)", errinfo_msg(&ei));
	ok(e == ERR_OK && !transport_tls_resumed(t),
		"resume: other host's file not used");
	transport_close(t);
	t = NULL;
	p.host = "localhost";

	/* A corrupt file is ignored. */
	f = fopen(cache, "w");
	if (f != NULL) {
		fputs("oasmtp-session host=localhost check=ca\n"
			"-----BEGIN SSL SESSION PARAMETERS-----\n"
			"bm90IGEgc2Vzc2lvbg==\n"
			"-----END SSL SESSION PARAMETERS-----\n", f);
		fclose(f);
	}
	e = connect_local(&s, &t);
	if (e == ERR_OK) {
		errinfo_init(&ei);
		e = transport_tls_start(&t, &p, deadline_in(3000), &ei);
	}
	is_int(e, ERR_OK, "resume: corrupt cache ignored (%s)", errinfo_msg(&ei));
	ok(e == ERR_OK && !transport_tls_resumed(t),
		"resume: corrupt cache not resumed");
	transport_close(t);
	t = NULL;

	/* A full handshake that reads saves a fresh session again. */
	e = connect_local(&s, &t);
	if (e == ERR_OK) {
		errinfo_init(&ei);
		e = transport_tls_start(&t, &p, deadline_in(3000), &ei);
	}
	if (e == ERR_OK) {
		read_line(t, line, sizeof(line), deadline_in(2000));
	}
	transport_close(t);
	t = NULL;
	server_stop(&s);
	f = fopen(cache, "r");
	ok(f != NULL, "resume: cache rewritten after the corrupt one");
	if (f != NULL) {
		char head[128] = "";

		ok(fgets(head, sizeof(head), f) != NULL, "resume: readable");
		is_str(head, "oasmtp-session 2\n",
			"resume: a session record");
		fclose(f);
	}
	ok(file_has(cache, "\nhost localhost\ncheck ca\nsession -----BEGIN "
		"SSL SESSION PARAMETERS-----\\n"), "resume: it records host, "
		"check mode and the session");

	/* A session file as oasmtp 0.1.0 wrote it is still used. */
	ok(session_to_v010(cache) == 0, "resume: file in the 0.1.0 layout");
	if (server_start(&s, good, SRV_GREET, 5)) {
		e = connect_local(&s, &t);
		if (e == ERR_OK) {
			errinfo_init(&ei);
			e = transport_tls_start(&t, &p, deadline_in(3000), &ei);
		}
		ok(e == ERR_OK && transport_tls_resumed(t),
			"resume: a 0.1.0 session file is resumed (%s)", errinfo_msg(&ei));
		transport_close(t);
		t = NULL;
		server_stop(&s);
	}
	SSL_CTX_free(good);
}

/* The bytes of the file at path into out (NUL-terminated); its size. */
static size_t
file_bytes(const char *path, char *out, size_t size)
{
	FILE *f = fopen(path, "rb");
	size_t n = f != NULL ? fread(out, 1, size - 1, f) : 0;

	if (f != NULL) {
		fclose(f);
	}
	out[n] = '\0';
	return n;
}

/*
 * Each way of checking the server, over TLS 1.3 and 1.2: the second
 * handshake resumes; the kept session holds the server's certificate only
 * when a pin is checked again on resumption (transport_tls.c,
 * session_without_peer); -vv says what it shows and why.
 */
static void
test_tls_resumption_modes(void)
{
	static const struct {
		const char *name;
		int max_version, certcheck, pinned;
		const char *info;	/* in transport_tls_info() when resumed */
	} modes[] = {
		{ "CA, TLS 1.3", 0, 1, 0, "TLS certificate: not sent again "
			"(resumed session; checked when it was made)" },
		{ "CA, TLS 1.2", TLS1_2_VERSION, 1, 0, "TLS certificate: not "
			"sent again (resumed session; checked when it was made)" },
		{ "certcheck off", 0, 0, 0, "TLS certificate: not sent again "
			"(resumed session; tls_certcheck off)" },
		{ "pinned", 0, 1, 1, "subject: " },
		{ "pinned, TLS 1.2", TLS1_2_VERSION, 1, 1, "subject: " },
	};
	char cache[512], fp[200], line[64], first[16384], now[16384];
	struct transport *t = NULL;
	SSL_SESSION *sess;
	struct server s;
	struct buf d;
	size_t i;
	int round;
	enum err e;

	fingerprint_of(pki.good, 1, 0, fp, sizeof(fp));
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		SSL_CTX *ctx = server_ctx(pki.good, modes[i].max_version, 0);
		struct tls_params p = params_for("localhost");
		const char *m = modes[i].name;

		snprintf(line, sizeof(line), "cache/oasmtp/tls-mode-%zu", i);
		path_in_tmp(cache, sizeof(cache), line);
		p.session_cache = cache;
		p.certcheck = modes[i].certcheck;
		p.fingerprint = modes[i].pinned ? fp : NULL;
		if (!ok(server_start(&s, ctx, SRV_GREET, 2), "%s: server up",
		    m)) {
			SSL_CTX_free(ctx);
			continue;
		}
		for (round = 0; round < 2; round++) {
			e = connect_local(&s, &t);
			if (e == ERR_OK) {
				errinfo_init(&ei);
				e = transport_tls_start(&t, &p,
					deadline_in(3000), &ei);
			}
			is_int(e, ERR_OK, "%s: handshake %d (%s)", m,
				round + 1, errinfo_msg(&ei));
			ok(e == ERR_OK && transport_tls_resumed(t) ==
				(round == 1), "%s: handshake %d %s", m,
				round + 1, round == 1 ? "resumed" : "full");
			if (e == ERR_OK && round == 1) {
				buf_init(&d, 4096);
				setup(transport_tls_info(t, &d));
				contains(buf_cstr(&d), modes[i].info,
					"%s: -vv shows %s", m, modes[i].info);
				buf_release(&d);
			}
			if (e == ERR_OK) {
				/* TLS 1.3: the ticket comes with the greeting */
				is_int(read_line(t, line, sizeof(line),
					deadline_in(2000)), ERR_OK,
					"%s: greeting %d", m, round + 1);
			}
			transport_close(t);
			t = NULL;
			sess = cached_session(cache);
			ok(sess != NULL && SSL_SESSION_is_resumable(sess) &&
				(SSL_SESSION_get0_peer(sess) != NULL) ==
				modes[i].pinned, "%s: the kept session %s the "
				"server's certificate (%d)", m, modes[i].pinned
				? "has" : "does not have", round + 1);
			SSL_SESSION_free(sess);
			if (round == 0) {
				file_bytes(cache, first, sizeof(first));
			} else if (modes[i].max_version == 0) {
				/* a resumed TLS 1.3 session gets a new ticket */
				file_bytes(cache, now, sizeof(now));
				ok(strcmp(first, now) != 0, "%s: the file was "
					"written again", m);
			}
		}
		server_stop(&s);
		SSL_CTX_free(ctx);
	}
}

/* ---- name resolution under the deadline ---- */

static struct addrinfo
stream_hints(void)
{
	struct addrinfo hints;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	return hints;
}

/* Wait up to ms for every helper thread to end; the count left running. */
static unsigned long
resolve_threads_drain(int ms)
{
	int64_t until = util_now_ms() + ms;
	unsigned long started, running;

	for (;;) {
		resolve_thread_counts(&started, &running);
		if (running == 0 || util_now_ms() >= until) {
			return running;
		}
		usleep(20 * 1000);
	}
}

static void
test_resolve_costs(void)
{
	struct addrinfo hints = stream_hints(), *list = NULL;
	unsigned long started0, started, running;
	enum err e;

	resolve_thread_counts(&started0, &running);
	e = resolve_host("127.0.0.1", "25", &hints, deadline_in(3000), &list,
		&ei);
	is_int(e, ERR_OK, "resolve: IPv4 literal (%s)", errinfo_msg(&ei));
	ok(list != NULL && list->ai_family == AF_INET,
		"resolve: IPv4 literal gives an AF_INET address");
	freeaddrinfo(list);
	list = NULL;
	e = resolve_host("::1", "25", &hints, deadline_in(3000), &list, &ei);
	is_int(e, ERR_OK, "resolve: IPv6 literal (%s)", errinfo_msg(&ei));
	ok(list != NULL && list->ai_family == AF_INET6,
		"resolve: IPv6 literal gives an AF_INET6 address");
	freeaddrinfo(list);
	list = NULL;
	e = resolve_host("localhost", "25", &hints, 0, &list, &ei);
	is_int(e, ERR_OK, "resolve: a name without a deadline (%s)", errinfo_msg(&ei));
	freeaddrinfo(list);
	list = NULL;
	resolve_thread_counts(&started, &running);
	is_int((long long)(started - started0), 0,
		"resolve: literals and lookups without a deadline start no "
		"thread");

	/* A name with a deadline does: the counter can tell. */
	e = resolve_host("localhost", "25", &hints, deadline_in(3000), &list,
		&ei);
	is_int(e, ERR_OK, "resolve: a name with a deadline (%s)", errinfo_msg(&ei));
	ok(list != NULL, "resolve: and its addresses");
	freeaddrinfo(list);
	list = NULL;
	resolve_thread_counts(&started, &running);
	is_int((long long)(started - started0), 1,
		"resolve: a name with a deadline is looked up in a thread");
	is_int((long long)resolve_threads_drain(2000), 0,
		"resolve: the helper thread ends");

	/* A deadline already passed: no lookup at all. */
	e = resolve_host("localhost", "25", &hints, util_now_ms() - 1, &list,
		&ei);
	is_int(e, ERR_TIMEOUT, "resolve: a passed deadline is ERR_TIMEOUT");
	ok(list == NULL, "resolve: and no list");
	resolve_thread_counts(&started, &running);
	is_int((long long)(started - started0), 1,
		"resolve: and no thread");
}

/*
 * A DNS server that never answers.  A child process gets private user,
 * mount and network namespaces (no root needed where unprivileged user
 * namespaces are allowed, as on Debian), brings up its own loopback,
 * bind-mounts a resolv.conf naming 127.0.0.1 and an nsswitch.conf using
 * DNS only, binds UDP 127.0.0.1:53 and never reads it, then re-executes
 * this program as "resolve-child" (a fresh process, so libc reads the new
 * files).  That one resolves through transport_tcp_connect() and runs
 * OASMTP_BIN, and writes what it saw as "key value" lines to a pipe; the
 * checks are made here.  Then the same server answers, SERVFAIL and then
 * NXDOMAIN (dns_answering()), and both are looked up and sent to again:
 * a failing DNS server is temporary (75), a name it says does not exist is
 * not (68).  Nothing leaves the private network namespace.
 */
#define HUNG_NAME "mail.dns-hangs.test"
#define HUNG_LIB_MS 1000	/* the library call's deadline */
#define HUNG_BIN_TIMEOUT 2	/* the binary's 'timeout' */

static int
write_file_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	int ok_write;

	if (fd < 0) {
		return -1;
	}
	ok_write = util_write_all(fd, text, strlen(text)) == 0;
	return close(fd) == 0 && ok_write ? 0 : -1;
}

static int
write_in(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return write_file_text(path, text, mode);
}

/* In the forked child, before exec: 0, or -1 with the reason in why. */
static int
sandbox_enter(const char *dir, char *why, size_t size)
{
	char path[512], map[64];
	struct ifreq ifr;
	uid_t uid = getuid();	/* before: unmapped ids read as 65534 */
	gid_t gid = getgid();
	int fd;

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET) == 0) {
		/* Only "deny" lets an unprivileged process write gid_map. */
		(void)write_file_text("/proc/self/setgroups", "deny", 0);
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
		if (write_file_text("/proc/self/uid_map", map, 0) != 0) {
			snprintf(why, size, "uid_map: %s", strerror(errno));
			return -1;
		}
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
		if (write_file_text("/proc/self/gid_map", map, 0) != 0) {
			snprintf(why, size, "gid_map: %s", strerror(errno));
			return -1;
		}
	} else if (geteuid() != 0 || unshare(CLONE_NEWNS | CLONE_NEWNET) != 0) {
		snprintf(why, size, "unshare (user, mount and network "
			"namespaces are needed): %s", strerror(errno));
		return -1;
	}
	/* Nothing mounted here may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		snprintf(why, size, "making / private: %s", strerror(errno));
		return -1;
	}
	if (snprintf(path, sizeof(path), "%s/resolv.conf", dir) >=
	    (int)sizeof(path)) {
		snprintf(why, size, "temporary directory name too long");
		return -1;
	}
	if (mount(path, "/etc/resolv.conf", NULL, MS_BIND, NULL) != 0) {
		snprintf(why, size, "bind-mounting resolv.conf: %s",
			strerror(errno));
		return -1;
	}
	if (snprintf(path, sizeof(path), "%s/nsswitch.conf", dir) >=
	    (int)sizeof(path)) {
		snprintf(why, size, "temporary directory name too long");
		return -1;
	}
	if (access("/etc/nsswitch.conf", F_OK) == 0
		&& mount(path, "/etc/nsswitch.conf", NULL, MS_BIND, NULL) != 0) {
		snprintf(why, size, "bind-mounting nsswitch.conf: %s",
			strerror(errno));
		return -1;
	}
	/* A new network namespace has only lo, and it is down. */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&ifr, 0, sizeof(ifr));
	util_strlcpy(ifr.ifr_name, "lo", sizeof(ifr.ifr_name));
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
		snprintf(why, size, "reading the flags of lo: %s",
			strerror(errno));
		return -1;
	}
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) {
		snprintf(why, size, "bringing up lo: %s", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* The silent DNS server: bound, never read until counted.  fd or -1. */
static int
silent_dns_open(char *why, size_t size)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(53);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		snprintf(why, size, "binding UDP 127.0.0.1:53: %s",
			strerror(errno));
		if (fd >= 0) {
			close(fd);
		}
		return -1;
	}
	return fd;
}

/* Queries waiting on the silent server's socket (read and dropped). */
static int
silent_dns_count(int fd)
{
	char pkt[1500];
	int n = 0;

	while (recv(fd, pkt, sizeof(pkt), MSG_DONTWAIT) > 0) {
		n++;
	}
	return n;
}

/* Replace newlines so a text fits on one "key value" line. */
static void
one_line(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\n' || *s == '\r') {
			*s = '|';
		}
	}
}

/*
 * Run OASMTP_BIN with dir/oasmtprc and dir/message, HOME in dir, without
 * RES_OPTIONS (so the slow options of resolv.conf apply).  Bounded: killed
 * by PID after 15 s.  Writes bin_status, bin_ms and bin_stderr lines.
 */
static void
child_run_binary(const char *dir, int out, const char *k)
{
	extern char **environ;
	const char *bin = getenv("OASMTP_BIN");
	char cfg[512], msg[512], errpath[512], home[512];
	char envhome[600], envcfg[600], envdata[600], envcache[600];
	char *argv[] = { "oasmtp", "-C", cfg, "rcpt@example.org", NULL };
	char *envp[64];
	char text[2048];
	size_t n = 0;
	int64_t t0;
	pid_t pid;
	int status = -1, in, err_fd;
	ssize_t got;

	if (bin == NULL || bin[0] == '\0') {
		dprintf(out, "%s_error OASMTP_BIN is not set\n", k);
		return;
	}
	snprintf(cfg, sizeof(cfg), "%s/oasmtprc", dir);
	snprintf(msg, sizeof(msg), "%s/message", dir);
	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	snprintf(home, sizeof(home), "%s/home", dir);
	snprintf(envhome, sizeof(envhome), "HOME=%s", home);
	snprintf(envcfg, sizeof(envcfg), "XDG_CONFIG_HOME=%s/.config", home);
	snprintf(envdata, sizeof(envdata), "XDG_DATA_HOME=%s/.local", home);
	snprintf(envcache, sizeof(envcache), "XDG_CACHE_HOME=%s/.cache",
		home);
	envp[n++] = "PATH=/usr/bin:/bin";
	envp[n++] = "LC_ALL=C";
	envp[n++] = envhome;
	envp[n++] = envcfg;
	envp[n++] = envdata;
	envp[n++] = envcache;
	/* Sanitizer settings of a sanitizer build pass through. */
	for (char **e = environ; *e != NULL && n + 1 < 64; e++) {
		if (strncmp(*e, "ASAN_", 5) == 0 || strncmp(*e, "UBSAN_", 6) == 0
			|| strncmp(*e, "LSAN_", 5) == 0) {
			envp[n++] = *e;
		}
	}
	envp[n] = NULL;
	in = open(msg, O_RDONLY | O_CLOEXEC);
	err_fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (in < 0 || err_fd < 0) {
		dprintf(out, "%s_error cannot open %s or %s\n", k, msg,
			errpath);
		return;
	}
	t0 = util_now_ms();
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in, 0);
		dup2(err_fd, 1);
		dup2(err_fd, 2);
		execve(bin, argv, envp);
		_exit(127);
	}
	close(in);
	close(err_fd);
	if (pid < 0) {
		dprintf(out, "%s_error fork: %s\n", k, strerror(errno));
		return;
	}
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (util_now_ms() - t0 > 15000) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		usleep(10 * 1000);
	}
	dprintf(out, "%s_ms %lld\n", k, (long long)(util_now_ms() - t0));
	dprintf(out, "%s_status %d\n", k, WIFEXITED(status)
		? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	in = open(errpath, O_RDONLY | O_CLOEXEC);
	got = in >= 0 ? read(in, text, sizeof(text) - 1) : -1;
	text[got > 0 ? got : 0] = '\0';
	if (in >= 0) {
		close(in);
	}
	one_line(text);
	dprintf(out, "%s_stderr %s\n", k, text);
}

/*
 * The DNS server answering: a child process that replies to every query
 * on dns with the question and rcode (2 SERVFAIL, 3 NXDOMAIN), until it is
 * killed.  Its pid, or -1.
 */
static pid_t
dns_answering(int dns, int rcode)
{
	unsigned char q[1500];
	struct sockaddr_storage from;
	socklen_t fl;
	ssize_t n;
	size_t end;
	pid_t pid = fork();

	if (pid != 0) {
		return pid;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (;;) {
		fl = sizeof(from);
		n = recvfrom(dns, q, sizeof(q), 0, (struct sockaddr *)&from,
			&fl);
		if (n < 0 && errno != EINTR) {
			_exit(1);	/* no spinning on a broken socket */
		}
		if (n < 12) {
			continue;
		}
		/* the question: labels up to the root, type and class */
		for (end = 12; end < (size_t)n && q[end] != 0;
		    end += (size_t)q[end] + 1) {
		}
		end += 1 + 4;
		if (end > (size_t)n) {
			continue;
		}
		q[2] = (unsigned char)(0x80 | (q[2] & 0x79));	/* QR, RD */
		q[3] = (unsigned char)(0x80 | rcode);		/* RA */
		memset(q + 6, 0, 6);	/* no answer, authority, additional */
		(void)sendto(dns, q, end, 0, (struct sockaddr *)&from, fl);
	}
}

/* Look HUNG_NAME up and run the binary while dns answers with rcode. */
static void
child_answered(const char *dir, int out, int dns, int rcode, const char *k)
{
	struct transport *t = NULL;
	int64_t t0;
	pid_t pid;
	enum err e;

	(void)silent_dns_count(dns);
	pid = dns_answering(dns, rcode);
	if (pid < 0) {
		dprintf(out, "%s_error fork: %s\n", k, strerror(errno));
		return;
	}
	errinfo_init(&ei);
	t0 = util_now_ms();
	e = transport_tcp_connect(HUNG_NAME, 25, NULL, deadline_in(8000), &t,
		&ei);
	/* answered: far sooner than the resolver's own 2 s timeout */
	dprintf(out, "%s_lib_ms %lld\n", k, (long long)(util_now_ms() - t0));
	transport_close(t);
	one_line(ei.msg);
	dprintf(out, "%s_code %d\n%s_msg %s\n", k, (int)e, k, ei.msg);
	child_run_binary(dir, out, k);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* main() of the re-executed child, inside the namespaces. */
static int
resolve_child(const char *dir, int out, int dns)
{
	struct transport *t = NULL;
	unsigned long started, running;
	int64_t t0, dt;
	enum err e;

	/* Not for the program run below. */
	fcntl(out, F_SETFD, FD_CLOEXEC);
	fcntl(dns, F_SETFD, FD_CLOEXEC);
	errinfo_init(&ei);
	t0 = util_now_ms();
	e = transport_tcp_connect(HUNG_NAME, 25, NULL, deadline_in(HUNG_LIB_MS),
		&t, &ei);
	dt = util_now_ms() - t0;
	resolve_thread_counts(&started, &running);
	transport_close(t);
	one_line(ei.msg);
	dprintf(out, "lib_code %d\nlib_ms %lld\nlib_msg %s\nlib_running %lu\n",
		(int)e, (long long)dt, ei.msg, running);
	/* RES_OPTIONS timeout:2 attempts:1: the resolver gives up soon. */
	t0 = util_now_ms();
	dprintf(out, "lib_running_later %lu\n", resolve_threads_drain(8000));
	dprintf(out, "lib_drain_ms %lld\n", (long long)(util_now_ms() - t0));
	dprintf(out, "lib_queries %d\n", silent_dns_count(dns));
	/* the resolver gives up by itself (EAI_AGAIN): temporary, never 68 */
	e = transport_tcp_connect(HUNG_NAME, 25, NULL, deadline_in(8000), &t,
		&ei);
	transport_close(t);
	t = NULL;
	one_line(ei.msg);
	dprintf(out, "again_code %d\nagain_msg %s\n", (int)e, ei.msg);
	(void)silent_dns_count(dns);

	child_run_binary(dir, out, "bin");
	dprintf(out, "bin_queries %d\n", silent_dns_count(dns));
	/* the server answers: SERVFAIL is temporary, NXDOMAIN is not */
	child_answered(dir, out, dns, 2, "servfail");
	child_answered(dir, out, dns, 3, "nxdomain");
	dprintf(out, "end 1\n");
	return 0;
}

/* The value of "key value" in text (lines), copied into out; 0 if absent. */
static int
field(const char *text, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);
	const char *p = text;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, key, klen) == 0 && p[klen] == ' ') {
			const char *v = p + klen + 1;
			const char *end = strchr(v, '\n');
			size_t n = end != NULL ? (size_t)(end - v) : strlen(v);

			if (n >= size) {
				n = size - 1;
			}
			memcpy(out, v, n);
			out[n] = '\0';
			return 1;
		}
		p = strchr(p, '\n');
		p = p != NULL ? p + 1 : NULL;
	}
	out[0] = '\0';
	return 0;
}

static long long
field_num(const char *text, const char *key)
{
	char v[64];

	return field(text, key, v, sizeof(v)) ? strtoll(v, NULL, 10) : -1;
}

static void
test_resolve_hung_dns(const char *self)
{
	char dir[512], path[600], why[512], text[16384], v[4096];
	char fdarg[16], dnsarg[16];
	size_t len = 0;
	int64_t until;
	int pfd[2];
	pid_t pid;
	int status = 0;

	snprintf(dir, sizeof(dir), "%s/dns", tmpdir);
	snprintf(path, sizeof(path), "%s/home", dir);
	if (!ok(mkdir(dir, 0700) == 0 && mkdir(path, 0700) == 0,
		"hung dns: directories")) {
		return;
	}
	/* Without the deadline a lookup would wait 2 x 10 s here. */
	snprintf(v, sizeof(v), "account default\nhost " HUNG_NAME "\n"
		"port 25\ntls off\nauth off\ntimeout %d\n"
		"from sender@example.org\n", HUNG_BIN_TIMEOUT);
	if (!ok(write_in(dir, "resolv.conf", "nameserver 127.0.0.1\n"
		"options timeout:10 attempts:2\n", 0644) == 0
		&& write_in(dir, "nsswitch.conf", "hosts: dns\n", 0644) == 0
		&& write_in(dir, "message", "From: sender@example.org\n"
		"Subject: hung dns\n\nbody\n", 0644) == 0
		&& write_in(dir, "oasmtprc", v, 0600) == 0,
		"hung dns: resolv.conf, nsswitch.conf, message, oasmtprc")) {
		return;
	}

	if (!ok(pipe2(pfd, O_CLOEXEC) == 0, "hung dns: pipe")) {
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		char *argv[] = { (char *)self, "resolve-child", dir, fdarg,
			dnsarg, NULL };
		int dns;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(pfd[0]);
		if (sandbox_enter(dir, why, sizeof(why)) != 0
			|| (dns = silent_dns_open(why, sizeof(why))) < 0) {
			dprintf(pfd[1], "setup_error %s\n", why);
			_exit(1);
		}
		/* The pipe and the socket stay open across exec. */
		fcntl(pfd[1], F_SETFD, 0);
		snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
		snprintf(dnsarg, sizeof(dnsarg), "%d", dns);
		setenv("RES_OPTIONS", "timeout:2 attempts:1", 1);
		execv("/proc/self/exe", argv);
		dprintf(pfd[1], "setup_error exec: %s\n", strerror(errno));
		_exit(1);
	}
	close(pfd[1]);
	if (!ok(pid > 0, "hung dns: fork")) {
		close(pfd[0]);
		return;
	}
	/* Read everything, for 40 s at most; then the child is killed. */
	until = util_now_ms() + 40000;
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int64_t left = until - util_now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			break;
		}
		n = read(pfd[0], text + len, sizeof(text) - 1 - len);
		if (n <= 0) {
			break;
		}
		len += (size_t)n;
		if (len == sizeof(text) - 1) {
			break;
		}
	}
	text[len] = '\0';
	close(pfd[0]);
	if (waitpid(pid, &status, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	if (field(text, "setup_error", v, sizeof(v))) {
		ok(0, "hung dns: private namespaces set up (%s)", v);
		return;
	}
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0
		&& field_num(text, "end") == 1,
		"hung dns: the child finished (status %d)", status);

	/* The library: gives up at the deadline, temporary. */
	field(text, "lib_msg", v, sizeof(v));
	is_int(field_num(text, "lib_code"), ERR_TIMEOUT,
		"hung dns: transport_tcp_connect is ERR_TIMEOUT (%s)", v);
	ok(err_is_temporary(ERR_TIMEOUT) && err_exit_code(ERR_TIMEOUT) == 75,
		"hung dns: which is temporary, exit 75");
	ok(field_num(text, "lib_ms") >= HUNG_LIB_MS - 50
		&& field_num(text, "lib_ms") < HUNG_LIB_MS + 700,
		"hung dns: gave up at the deadline (%lld ms for %d ms)",
		field_num(text, "lib_ms"), HUNG_LIB_MS);
	contains(v, "cannot resolve " HUNG_NAME " within 1 s",
		"hung dns: the message names host and time");
	contains(v, "resolv.conf", "hung dns: the message gives advice");
	field(text, "again_msg", v, sizeof(v));
	is_int(field_num(text, "again_code"), ERR_NET,
		"hung dns: the resolver's own timeout is ERR_NET, exit 75, "
		"not 68 (%s)", v);
	field(text, "lib_msg", v, sizeof(v));
	ok(field_num(text, "lib_queries") >= 1,
		"hung dns: the lookup really asked the silent server (%lld "
		"queries)", field_num(text, "lib_queries"));
	/* The abandoned thread: still blocked then, gone after. */
	is_int(field_num(text, "lib_running"), 1,
		"hung dns: the helper was still inside getaddrinfo");
	is_int(field_num(text, "lib_running_later"), 0,
		"hung dns: it ended when the resolver gave up (%lld ms later)",
		field_num(text, "lib_drain_ms"));

	/* The program: exit 75 within timeout plus a little. */
	field(text, "bin_error", v, sizeof(v));
	ok(v[0] == '\0', "hung dns: oasmtp ran (%s)", v);
	field(text, "bin_stderr", v, sizeof(v));
	is_int(field_num(text, "bin_status"), 75,
		"hung dns: oasmtp exits 75 (temporary) (%s)", v);
	ok(field_num(text, "bin_ms") >= 0 && field_num(text, "bin_ms")
		< HUNG_BIN_TIMEOUT * 1000 + 1500,
		"hung dns: within timeout %d s plus slack (%lld ms)",
		HUNG_BIN_TIMEOUT, field_num(text, "bin_ms"));
	contains(v, "cannot resolve " HUNG_NAME " within 2 s",
		"hung dns: oasmtp says so");
	ok(field_num(text, "bin_queries") >= 1,
		"hung dns: oasmtp asked the silent server too");

	/* A server that answers SERVFAIL: temporary, 75, never 68. */
	field(text, "servfail_msg", v, sizeof(v));
	is_int(field_num(text, "servfail_code"), ERR_NET,
		"servfail: ERR_NET (%s)", v);
	contains(v, "temporary failure resolving host " HUNG_NAME,
		"servfail: the message says temporary");
	ok(field_num(text, "servfail_lib_ms") >= 0 &&
		field_num(text, "servfail_lib_ms") < 1000,
		"servfail: answered, not timed out (%lld ms; silence takes 2 s)",
		field_num(text, "servfail_lib_ms"));
	field(text, "servfail_stderr", v, sizeof(v));
	is_int(field_num(text, "servfail_status"), 75,
		"servfail: oasmtp exits 75 (%s)", v);
	contains(v, "temporary failure resolving host " HUNG_NAME,
		"servfail: oasmtp says so");
	/* NXDOMAIN from the same server: the name does not exist, 68. */
	field(text, "nxdomain_msg", v, sizeof(v));
	is_int(field_num(text, "nxdomain_code"), ERR_NOHOST,
		"nxdomain: ERR_NOHOST (%s)", v);
	ok(field_num(text, "nxdomain_lib_ms") >= 0 &&
		field_num(text, "nxdomain_lib_ms") < 1000,
		"nxdomain: answered (%lld ms)", field_num(text, "nxdomain_lib_ms"));
	field(text, "nxdomain_stderr", v, sizeof(v));
	is_int(field_num(text, "nxdomain_status"), 68,
		"nxdomain: oasmtp exits 68 (%s)", v);
	contains(v, "host " HUNG_NAME " does not exist",
		"nxdomain: oasmtp names the host");
}

/* ---- setup ---- */

static void
remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (d == NULL) {
		unlink(path);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char sub[1024];

		if (strcmp(de->d_name, ".") == 0
			|| strcmp(de->d_name, "..") == 0) {
			continue;
		}
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		remove_tree(sub);
	}
	closedir(d);
	rmdir(path);
}

int
main(int argc, char **argv)
{
	const char *base = getenv("TMPDIR");
	int64_t t0 = util_now_ms();

	/* Re-executed by test_resolve_hung_dns(): no TAP output here. */
	if (argc == 5 && strcmp(argv[1], "resolve-child") == 0) {
		return resolve_child(argv[2], atoi(argv[3]), atoi(argv[4]));
	}

	snprintf(tmpdir, sizeof(tmpdir), "%s/oasmtp-transport-XXXXXX",
		base != NULL && base[0] != '\0' ? base : "/tmp");
	if (!ok(mkdtemp(tmpdir) != NULL, "mkdtemp")) {
		return tap_done();
	}
	if (ok(make_pki(), "test certificates generated")) {
		test_tcp_echo();
		test_tcp_localhost();
		test_tcp_race_list();
		test_tcp_errors();
		test_tcp_source_ip();
		test_tcp_timeouts();
		test_tcp_peer_close();
		test_tls_verify();
		test_tls_protocol();
		test_tls_config_errors();
		test_tls_refuses_buffered();
		test_tls_resumption();
		test_tls_resumption_modes();
		test_tls_session_key();
	}
	test_resolve_costs();
	test_resolve_hung_dns(argv[0]);
	free_pki();
	remove_tree(tmpdir);
	ok(util_now_ms() - t0 < 20000, "whole test under 20 s (%lld ms)",
		(long long)(util_now_ms() - t0));
	return tap_done();
}
