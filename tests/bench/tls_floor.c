/*
 * tls_floor.c - about the least an OpenSSL client executes for what the
 * benchmark's scenarios a and c do before their first SMTP command over
 * TLS: the reference their instruction counts are read against.
 *
 *   oasmtp-bench-tls-floor PORT CAFILE HOST [starttls]
 *
 * Connects to 127.0.0.1:PORT; with "starttls" reads the greeting, sends
 * EHLO and STARTTLS and reads their replies; then a TLS handshake with
 * OpenSSL's defaults and the system configuration (OPENSSL_init_ssl with
 * LOAD_CONFIG and no error texts, as oasmtp does), the chain verified
 * against CAFILE and the name HOST; then QUIT over TLS, its reply, and
 * exit.  No session is saved
 * or resumed, nothing authenticates, no message is sent.  Exit 0 when all of
 * it worked, 1 otherwise (with a line on stderr).
 *
 * Whatever oasmtp's first send to a server costs above this figure is its
 * own; below it no OpenSSL client can go without skipping part of the
 * certificate check (tests/bench/README.md, "instructions").
 *
 * Test code, never installed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static int
fail(const char *what)
{
	fprintf(stderr, "tls_floor: %s\n", what);
	return 1;
}

/*
 * Read one whole SMTP reply (all its lines) from fd, or over TLS when ssl
 * is not NULL: the code of its last line, or -1.
 */
static int
reply(int fd, SSL *ssl)
{
	char buf[2048];
	size_t have = 0;

	for (;;) {
		ssize_t n = ssl != NULL ? SSL_read(ssl, buf + have,
			(int)(sizeof(buf) - 1 - have)) : read(fd, buf + have,
			sizeof(buf) - 1 - have);
		char *line = buf, *nl;

		if (n <= 0) {
			return -1;
		}
		have += (size_t)n;
		buf[have] = '\0';
		while ((nl = strstr(line, "\r\n")) != NULL) {
			/* the last line: "NNN text" or just "NNN" */
			if (nl - line >= 3 && (nl - line == 3 || line[3] == ' ')) {
				return atoi(line);
			}
			line = nl + 2;
		}
		if (have == sizeof(buf) - 1) {
			return -1;
		}
	}
}

static int
plain_cmd(int fd, const char *cmd)
{
	size_t n = strlen(cmd);

	return write(fd, cmd, n) == (ssize_t)n ? reply(fd, NULL) : -1;
}

/* The TLS part; NULL when it all worked, else what failed. */
static const char *
over_tls(int fd, SSL_CTX *ctx, const char *host, int implicit)
{
	SSL *ssl = SSL_new(ctx);
	const char *failed = NULL;

	if (ssl == NULL || !SSL_set_fd(ssl, fd) || !SSL_set1_host(ssl, host)) {
		failed = "cannot set up the TLS connection";
	} else if (SSL_connect(ssl) != 1 ||
	    SSL_get_verify_result(ssl) != X509_V_OK) {
		failed = "TLS handshake or certificate check failed";
	} else if (implicit && reply(fd, ssl) != 220) {
		failed = "no greeting";	/* implicit TLS: it comes over TLS */
	} else if (SSL_write(ssl, "QUIT\r\n", 6) != 6 ||
	    reply(fd, ssl) != 221) {
		failed = "QUIT failed";
	}
	/* the connection's own objects, as oasmtp frees them */
	SSL_free(ssl);
	return failed;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa;
	const char *failed;
	SSL_CTX *ctx;
	int fd, starttls;

	if (argc < 4) {
		return fail("usage: PORT CAFILE HOST [starttls]");
	}
	starttls = argc > 4 && strcmp(argv[4], "starttls") == 0;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		return fail("cannot connect");
	}
	if (starttls && (reply(fd, NULL) != 220 ||
	    plain_cmd(fd, "EHLO floor\r\n") != 250 ||
	    plain_cmd(fd, "STARTTLS\r\n") != 220)) {
		return fail("STARTTLS failed");
	}
	/* the system configuration; error texts only load when needed */
	if (!OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG |
	    OPENSSL_INIT_NO_ATEXIT | OPENSSL_INIT_NO_LOAD_SSL_STRINGS |
	    OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, NULL)) {
		return fail("OPENSSL_init_ssl failed");
	}
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL ||
	    !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    SSL_CTX_load_verify_locations(ctx, argv[2], NULL) != 1) {
		failed = "cannot set up the TLS context";
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		failed = over_tls(fd, ctx, argv[3], !starttls);
	}
	/* OpenSSL's global tables stay (no exit-time clean-up, as oasmtp) */
	SSL_CTX_free(ctx);
	close(fd);
	return failed != NULL ? fail(failed) : 0;
}
