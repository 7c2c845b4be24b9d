/*
 * transport_tls.c - OpenSSL client transport layered on a connected
 * transport (STARTTLS and implicit TLS).  See transport.h for the contract.
 *
 * OpenSSL talks to the socket through a small BIO of our own that uses
 * send(MSG_NOSIGNAL)/recv, so a write to a closed connection can never raise
 * SIGPIPE, and so that we learn when the peer closed the connection.  The
 * socket is non-blocking; every WANT_READ/WANT_WRITE is turned into a
 * transport_poll() against the caller's deadline.
 *
 * Ownership: the TLS transport owns its SSL_CTX, SSL (which owns the BIO),
 * the captured leaf certificate, a copy of the session-cache path and the
 * wrapped transport; tls_close() releases all of them.
 */
/* the per-library error-text loaders (ssl_reason()) are deprecated */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "transport.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "der.h"
#include "fileio.h"
#include "record.h"
#include "sha256.h"
#include "util.h"

/* a certificate fingerprint in hex with colons */
#define FINGERPRINT_HEX_MAX (3 * EVP_MAX_MD_SIZE)

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#define peer_certificate(ssl) SSL_get1_peer_certificate(ssl)
#else
#define peer_certificate(ssl) SSL_get_peer_certificate(ssl)
#endif

/* A session file is small; anything bigger is not ours. */
#define SESSION_FILE_MAX (64 * 1024)

/* Longest fingerprint digest we accept (SHA-256). */
#define FP_MAX 32

/* The words describing a certificate verification failure. */
#define TLS_VERIFY_TEXT_MAX 4096

enum check_mode {
	CHECK_CA,		/* chain + host name */
	CHECK_FINGERPRINT,	/* leaf digest only */
	CHECK_NONE,		/* certcheck off */
};

static const char *const check_names[] = {
	[CHECK_CA] = "ca",
	[CHECK_FINGERPRINT] = "fingerprint",
	[CHECK_NONE] = "none",
};

struct tls_transport {
	struct transport base;
	struct transport *inner;
	SSL_CTX *ctx;
	SSL *ssl;
	enum check_mode mode;
	int eof;		/* the BIO saw the peer close */
	int sys_errno;		/* last errno from the BIO */
	X509 *leaf;		/* captured by the verify callback */
	X509 *failed;		/* certificate at the first verify error */
	char *session_path;	/* NULL: no session cache */
	/*
	 * Trust material is loaded when a chain is first verified, not when
	 * the context is made: a resumed session verifies no certificate and
	 * so reads and parses no CA file.  params and reterr are those of
	 * transport_tls_start(), valid while it runs (the handshake).
	 */
	const struct tls_params *params;
	struct errinfo *reterr;
	int trust_loaded;
	enum err trust_err;	/* ERR_OK, or why the trust could not load */
	char host[256];
};

/* ---- a socket BIO that never raises SIGPIPE ---- */

static BIO_METHOD *sock_method;
static pthread_once_t sock_method_once = PTHREAD_ONCE_INIT;

static int
sock_bio_write(BIO *b, const char *p, int n)
{
	struct tls_transport *tt = BIO_get_data(b);
	ssize_t w;

	BIO_clear_retry_flags(b);
	do {
		w = send(tt->base.fd, p, (size_t)n, MSG_NOSIGNAL);
	} while (w < 0 && errno == EINTR);
	if (w < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			BIO_set_retry_write(b);
		} else {
			tt->sys_errno = errno;
			if (errno == EPIPE || errno == ECONNRESET) {
				tt->eof = 1;
			}
		}
		return -1;
	}
	return (int)w;
}

static int
sock_bio_read(BIO *b, char *p, int n)
{
	struct tls_transport *tt = BIO_get_data(b);
	ssize_t r;

	BIO_clear_retry_flags(b);
	do {
		r = recv(tt->base.fd, p, (size_t)n, 0);
	} while (r < 0 && errno == EINTR);
	if (r == 0) {
		tt->eof = 1;
		return 0;
	}
	if (r < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			BIO_set_retry_read(b);
		} else {
			tt->sys_errno = errno;
			if (errno == ECONNRESET) {
				tt->eof = 1;
			}
		}
		return -1;
	}
	return (int)r;
}

static long
sock_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_transport *tt = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return tt != NULL && tt->eof;
	default:
		return 0;
	}
}

static void
sock_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
		"oasmtp socket");

	if (m == NULL) {
		return;
	}
	if (!BIO_meth_set_write(m, sock_bio_write)
		|| !BIO_meth_set_read(m, sock_bio_read)
		|| !BIO_meth_set_ctrl(m, sock_bio_ctrl)) {
		BIO_meth_free(m);
		return;
	}
	sock_method = m;
}

/* ---- helpers ---- */

/*
 * OpenSSL's error texts.  Loading them all costs about a million
 * instructions, paid by every send although only a failure needs them:
 * they are loaded the first time a message needs one, for the libraries
 * whose errors a TLS set-up or handshake raises.  The per-library loaders
 * are deprecated in OpenSSL 3; where a build lacks them the texts are
 * loaded at start-up as usual (STRINGS_AT_START).
 */
#ifdef OPENSSL_NO_DEPRECATED_3_0
#define STRINGS_AT_START 0
#else
#define STRINGS_AT_START (OPENSSL_INIT_NO_LOAD_SSL_STRINGS | \
	OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS)

static void
load_error_strings(void)
{
	ERR_load_SSL_strings();
	ERR_load_X509_strings();
	ERR_load_X509V3_strings();
	ERR_load_PEM_strings();
	ERR_load_ASN1_strings();
	ERR_load_EVP_strings();
	ERR_load_BIO_strings();
	ERR_load_CRYPTO_strings();
}

static pthread_once_t strings_once = PTHREAD_ONCE_INIT;
#endif

int
transport_tls_init(void)
{
	/*
	 * The system's OpenSSL configuration (crypto policy) is loaded as
	 * usual; skipped are the clean-up at exit (the process ends anyway,
	 * and freeing every table OpenSSL built costs more than a million
	 * instructions per send) and, where they can be loaded later, the
	 * error texts (ssl_reason()).  These choices hold only if this is
	 * OpenSSL's first initialisation: any earlier use (a digest) would
	 * have initialised it with the defaults.
	 */
	return OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG |
		OPENSSL_INIT_NO_ATEXIT | STRINGS_AT_START, NULL) == 1;
}

/* The reason text of the most relevant queued OpenSSL error, or dflt. */
static const char *
ssl_reason(const char *dflt)
{
	unsigned long e = ERR_peek_last_error();
	const char *r;

	if (e == 0) {
		return dflt;
	}
#ifndef OPENSSL_NO_DEPRECATED_3_0
	pthread_once(&strings_once, load_error_strings);
#endif
	r = ERR_reason_error_string(e);
	return r != NULL ? r : dflt;
}

static int
host_is_ip(const char *host)
{
	unsigned char a[16];

	return inet_pton(AF_INET, host, a) == 1
		|| inet_pton(AF_INET6, host, a) == 1;
}

static MUST_CHECK enum err
append_hex(struct buf *out, const unsigned char *p, size_t n)
{
	enum err be = ERR_OK;

	for (size_t i = 0; i < n && be == ERR_OK; i++) {
		be = buf_printf(out, "%s%02X", i > 0 ? ":" : "", p[i]);
	}
	return be;
}

/* Append what the memory BIO m holds when printed is true; frees m. */
static MUST_CHECK enum err
append_bio(struct buf *out, BIO *m, int printed)
{
	enum err be = ERR_OK;
	char *p;
	long n;

	if (printed) {
		n = BIO_get_mem_data(m, &p);
		if (n > 0) {
			be = buf_append(out, p, (size_t)n);
		}
	}
	BIO_free(m);
	return be;
}

static MUST_CHECK enum err
append_name(struct buf *out, const X509_NAME *name)
{
	BIO *m = BIO_new(BIO_s_mem());

	if (m == NULL) {
		return ERR_NOMEM;
	}
	X509_NAME_print_ex(m, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	return append_bio(out, m, 1);
}

static MUST_CHECK enum err
append_time(struct buf *out, const ASN1_TIME *t)
{
	BIO *m = BIO_new(BIO_s_mem());

	if (m == NULL) {
		return ERR_NOMEM;
	}
	return append_bio(out, m, t != NULL && ASN1_TIME_print(m, t));
}

/* The names a certificate is valid for: DNS and IP SANs, else the CN. */
static MUST_CHECK enum err
append_cert_names(struct buf *out, X509 *cert)
{
	GENERAL_NAMES *names;
	size_t before = out->len;
	enum err be = ERR_OK;

	names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names)
		&& i < 16; i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		const char *sep = out->len > before ? ", " : "";

		if (gn->type == GEN_DNS) {
			const ASN1_IA5STRING *s = gn->d.dNSName;

			err_first(&be, buf_printf(out, "%s%.*s", sep, ASN1_STRING_length(s),
				(const char *)ASN1_STRING_get0_data(s)));
		} else if (gn->type == GEN_IPADD) {
			const ASN1_OCTET_STRING *s = gn->d.iPAddress;
			char text[64];
			int len = ASN1_STRING_length(s);
			int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;

			if (af != 0 && inet_ntop(af, ASN1_STRING_get0_data(s),
				text, sizeof(text)) != NULL) {
				err_first(&be, buf_printf(out, "%s%s", sep, text));
			}
		}
	}
	GENERAL_NAMES_free(names);
	if (out->len == before) {
		char cn[256];

		if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
			NID_commonName, cn, sizeof(cn)) > 0) {
			err_first(&be, buf_append_str(out, cn));
		} else {
			err_first(&be, buf_append_str(out, "no name"));
		}
	}
	return be;
}

/*
 * Parse "AB:CD:..." or "abcd..." into bytes; *ret_n is 32 (SHA-256), or
 * 20 / 16 for msmtp's deprecated SHA-1 / MD5 pins (the config warns).  -1
 * for anything else.
 */
static int
parse_fingerprint(const char *s, unsigned char *out, size_t *ret_n)
{
	size_t n = 0;
	int half = -1;

	for (; *s != '\0'; s++) {
		int v;

		if (*s == ':' || *s == ' ') {
			if (half >= 0) {
				return -1;
			}
			continue;
		}
		if (*s >= '0' && *s <= '9') {
			v = *s - '0';
		} else if (*s >= 'a' && *s <= 'f') {
			v = *s - 'a' + 10;
		} else if (*s >= 'A' && *s <= 'F') {
			v = *s - 'A' + 10;
		} else {
			return -1;
		}
		if (half < 0) {
			half = v;
			continue;
		}
		if (n >= FP_MAX) {
			return -1;
		}
		out[n++] = (unsigned char)(half << 4 | v);
		half = -1;
	}
	if (half >= 0 || (n != 32 && n != 20 && n != 16)) {
		return -1;
	}
	*ret_n = n;
	return 0;
}

/* ---- verification ---- */

static int tls_ex_index = -1;
static pthread_once_t tls_ex_once = PTHREAD_ONCE_INIT;

static void
tls_ex_init(void)
{
	tls_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static struct tls_transport *
tls_from_ssl(SSL *ssl)
{
	return SSL_get_ex_data(ssl, tls_ex_index);
}

/* Remember the leaf and the first failing certificate; decide nothing. */
static int
verify_cb(int preverify_ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs,
		SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_transport *tt = ssl != NULL ? tls_from_ssl(ssl) : NULL;

	if (tt == NULL) {
		return preverify_ok;
	}
	if (tt->leaf == NULL) {
		X509 *leaf = X509_STORE_CTX_get0_cert(xs);

		if (leaf != NULL && X509_up_ref(leaf)) {
			tt->leaf = leaf;
		}
	}
	if (!preverify_ok && tt->failed == NULL) {
		X509 *cur = X509_STORE_CTX_get_current_cert(xs);

		if (cur != NULL && X509_up_ref(cur)) {
			tt->failed = cur;
		}
	}
	return preverify_ok;
}

/* Describe a verification failure in words a user can act on. */
static MUST_CHECK enum err
verify_error(struct tls_transport *tt, long code, struct errinfo *reterr)
{
	struct buf m;
	X509 *cert = tt->failed != NULL ? tt->failed : tt->leaf;
	enum err e, be = ERR_OK;

	buf_init(&m, TLS_VERIFY_TEXT_MAX);
	switch (code) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		err_first(&be, buf_append_str(&m, "certificate has expired"));
		if (cert != NULL) {
			err_first(&be, buf_append_str(&m, " (not valid after "));
			err_first(&be, append_time(&m, X509_get0_notAfter(cert)));
			err_first(&be, buf_putc(&m, ')'));
		}
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		err_first(&be, buf_append_str(&m, "certificate is not yet valid"));
		if (cert != NULL) {
			err_first(&be, buf_append_str(&m, " (not valid before "));
			err_first(&be, append_time(&m, X509_get0_notBefore(cert)));
			err_first(&be, buf_putc(&m, ')'));
		}
		break;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		err_first(&be, buf_printf(&m, "%s mismatch (certificate is for ",
			code == X509_V_ERR_HOSTNAME_MISMATCH ? "host name"
			: "IP address"));
		if (tt->leaf != NULL) {
			err_first(&be, append_cert_names(&m, tt->leaf));
		} else {
			err_first(&be, buf_append_str(&m, "unknown names"));
		}
		err_first(&be, buf_putc(&m, ')'));
		break;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		err_first(&be, buf_append_str(&m, "unknown CA / self-signed certificate"));
		if (cert != NULL) {
			err_first(&be, buf_append_str(&m, " (issuer: "));
			err_first(&be, append_name(&m, X509_get_issuer_name(cert)));
			err_first(&be, buf_append_str(&m, "); set tls_trust_file or "
				"tls_fingerprint if this server is trusted"));
		}
		break;
	case X509_V_ERR_CERT_REVOKED:
		err_first(&be, buf_append_str(&m, "certificate has been revoked"));
		break;
	default:
		err_first(&be, buf_printf(&m, "%s", X509_verify_cert_error_string(code)));
		break;
	}
	/*
	 * A description that did not fit (be != ERR_OK) is shown as far as
	 * it got: the failure to report is still this one.
	 */
	(void)be;
	e = errinfo_set(reterr, ERR_TLS,
		"TLS certificate verification failed for %s: %s", tt->host,
		buf_cstr(&m));
	buf_release(&m);
	return e;
}

static MUST_CHECK enum err
check_fingerprint(struct tls_transport *tt, const char *want_text,
	struct errinfo *reterr)
{
	unsigned char want[FP_MAX], got[EVP_MAX_MD_SIZE];
	unsigned int got_len = 0;
	size_t want_len;
	X509 *cert;
	struct buf m;
	enum err e;
	int match;

	const EVP_MD *md;

	if (parse_fingerprint(want_text, want, &want_len) != 0) {
		return errinfo_set(reterr, ERR_CONFIG,
			"tls_fingerprint '%s' is not a SHA-256 digest (32 bytes "
			"as hex pairs separated by ':'; SHA-1 and MD5 are "
			"accepted, deprecated)", want_text);
	}
	md = want_len == 32 ? EVP_sha256() : want_len == 20 ? EVP_sha1()
		: EVP_md5();
	cert = peer_certificate(tt->ssl);
	if (cert == NULL) {
		return errinfo_set(reterr, ERR_TLS,
			"TLS: %s sent no certificate", tt->host);
	}
	if (!X509_digest(cert, md, got, &got_len)) {
		X509_free(cert);
		return errinfo_set(reterr, ERR_TLS,
			"TLS: cannot compute the certificate fingerprint: %s",
			ssl_reason("unknown error"));
	}
	X509_free(cert);
	match = got_len == want_len && CRYPTO_memcmp(got, want, want_len) == 0;
	if (match) {
		return ERR_OK;
	}
	buf_init(&m, FINGERPRINT_HEX_MAX);
	if (append_hex(&m, got, got_len) != ERR_OK) {
		buf_reset(&m);	/* no memory: the mismatch without the digest */
	}
	e = errinfo_set(reterr, ERR_TLS,
		"TLS certificate check failed for %s: fingerprint mismatch "
		"(got %s)", tt->host, buf_cstr(&m));
	buf_release(&m);
	return e;
}

/* ---- session cache ---- */

/*
 * A session file (mode 0600) is a record (record.h):
 *
 *   oasmtp-session 2
 *   host HOST          the server it is for
 *   check MODE         ca | fingerprint | none: how the server was checked
 *   session PEM        the SSL_SESSION in PEM
 *   end
 *
 * A file for another host or check mode is not used.  Version 1 (oasmtp
 * 0.1.0) was the line "oasmtp-session host=HOST check=MODE" and the PEM.
 */
static const struct record_key session_keys[] = {
	{ "host", RECORD_REQUIRED }, { "check", RECORD_REQUIRED },
	{ "session", RECORD_REQUIRED }, { NULL, 0 },
};

static const struct record_spec session_spec = {
	.name = "oasmtp-session", .what = "TLS session file",
	.min_version = 2, .max_version = 2, .trailer_since = 2,
	.keys = session_keys,
};

/* DER tag of SSL_SESSION's peer certificate: [3] EXPLICIT, constructed */
#define SESSION_PEER_TAG 0xa3

/* OpenSSL's session encoding starts with its version: INTEGER 1 */
static const unsigned char session_asn1_v1[] = { 0x02, 0x01, 0x01 };

/*
 * The session to keep in a file: sess without the server's certificate,
 * or NULL to keep sess as it is.  Nothing reads the certificate of a
 * resumed session when the chain was checked (or not at all, certcheck
 * off): a resumed handshake checks no certificate, and OpenSSL 3.0 would
 * decode its public key each time the file is read, an eighth of a whole
 * send's instructions.  In fingerprint mode it stays, for the pin is
 * checked again on every resumption.  OpenSSL offers no call to drop it,
 * so it is left out of the encoding (version 1 of SSL_SESSION_ASN1: a
 * SEQUENCE whose [3] element is the certificate, der.h) and the result
 * must read back as a resumable session without a certificate; anything
 * else keeps sess whole.
 */
static SSL_SESSION *
session_without_peer(const struct tls_transport *tt, SSL_SESSION *sess)
{
	unsigned char *der = NULL;
	const unsigned char *p = NULL;
	SSL_SESSION *out = NULL;
	struct buf b;
	int len;

	if (tt->mode == CHECK_FINGERPRINT || SSL_SESSION_get0_peer(sess) == NULL
	    || (len = i2d_SSL_SESSION(sess, &der)) <= 0) {
		return NULL;
	}
	buf_init_secret(&b, SESSION_FILE_MAX);
	if (der_without(der, (size_t)len, session_asn1_v1,
	    sizeof(session_asn1_v1), SESSION_PEER_TAG, &b) == ERR_OK &&
	    b.len <= LONG_MAX) {
		p = (const unsigned char *)b.data;
		out = d2i_SSL_SESSION(NULL, &p, (long)b.len);
	}
	if (out != NULL && (p != (const unsigned char *)b.data + b.len
	    || SSL_SESSION_get0_peer(out) != NULL
	    || !SSL_SESSION_is_resumable(out))) {
		SSL_SESSION_free(out);
		out = NULL;
	}
	OPENSSL_clear_free(der, (size_t)len);
	buf_release(&b);
	ERR_clear_error();
	return out;
}

/* Called by OpenSSL whenever a new session (TLS 1.3: ticket) arrives. */
static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_transport *tt = tls_from_ssl(ssl);
	SSL_SESSION *kept = NULL;
	struct buf rec;
	BIO *m = NULL;
	char *pem;
	long pem_len;
	enum err e;

	if (tt == NULL || tt->session_path == NULL
		|| !SSL_SESSION_is_resumable(sess)) {
		return 0;
	}
	buf_init_secret(&rec, SESSION_FILE_MAX - 1);
	kept = session_without_peer(tt, sess);
	m = BIO_new(BIO_s_secmem());	/* it holds the session's secret */
	if (m == NULL || !PEM_write_bio_SSL_SESSION(m, kept != NULL ? kept :
	    sess)
		|| (pem_len = BIO_get_mem_data(m, &pem)) <= 0) {
		goto out;
	}
	e = record_begin(&rec, session_spec.name, 2);
	if (e == ERR_OK) {
		e = record_put_str(&rec, "host", tt->host);
	}
	if (e == ERR_OK) {
		e = record_put_str(&rec, "check", check_names[tt->mode]);
	}
	if (e == ERR_OK) {
		e = record_put(&rec, "session", pem, (size_t)pem_len);
	}
	if (e == ERR_OK) {
		e = record_finish(&rec);
	}
	/* a session that cannot be kept only costs a full handshake */
	if (e == ERR_OK && fileio_secret_dir(tt->session_path, geteuid(), 1,
		NULL) == ERR_OK) {
		if (fileio_write_private(tt->session_path, rec.data,
		    rec.len, 0, NULL) != ERR_OK) {
			/* best effort, as above */
		}
	}
out:
	BIO_free(m);
	SSL_SESSION_free(kept);
	buf_release(&rec);
	/* 0: we kept no reference to sess. */
	return 0;
}

/*
 * The PEM of a session file in raw for this host and check mode, or NULL;
 * *ret_rec is released by the caller.
 */
static const char *
session_pem(const struct tls_transport *tt, const struct buf *raw,
	struct record *ret_rec, size_t *ret_len)
{
	char legacy[512];
	const char *host, *check, *nl;
	int n;

	memset(ret_rec, 0, sizeof(*ret_rec));
	if (record_parse(&session_spec, raw->data, raw->len, ret_rec, NULL)
		== ERR_OK) {
		host = record_get(ret_rec, "host");
		check = record_get(ret_rec, "check");
		if (strcmp(host, tt->host) != 0
			|| strcmp(check, check_names[tt->mode]) != 0) {
			return NULL;
		}
		nl = record_get(ret_rec, "session");
		*ret_len = strlen(nl);	/* PEM holds no NUL */
		return nl;
	}
	n = snprintf(legacy, sizeof(legacy), "oasmtp-session host=%s "
		"check=%s\n", tt->host, check_names[tt->mode]);
	nl = memchr(raw->data, '\n', raw->len);
	if (n <= 0 || (size_t)n >= sizeof(legacy) || nl == NULL
		|| (size_t)(nl + 1 - raw->data) != (size_t)n
		|| memcmp(raw->data, legacy, (size_t)n) != 0) {
		return NULL;
	}
	*ret_len = raw->len - (size_t)n;
	return nl + 1;
}

/*
 * Load the saved session for this host and check mode, or NULL when there
 * is none or it does not fit.  Never an error: a bad file is ignored.
 */
static SSL_SESSION *
load_session(const struct tls_transport *tt)
{
	const struct fileio_private rules = {
		.what = "TLS session file", .owner = geteuid(),
		.forbidden = 077, .max = SESSION_FILE_MAX - 1,
		.refused = ERR_CONFIG,
	};
	SSL_SESSION *sess = NULL;
	struct record rec;
	struct buf raw;
	const char *pem = NULL;
	size_t len = 0;
	BIO *m;

	buf_init_secret(&raw, SESSION_FILE_MAX);
	memset(&rec, 0, sizeof(rec));
	if (fileio_read_private(AT_FDCWD, tt->session_path, &rules, &raw,
		NULL, NULL) == ERR_OK) {
		pem = session_pem(tt, &raw, &rec, &len);
	}
	if (pem != NULL && len <= INT_MAX) {
		m = BIO_new_mem_buf(pem, (int)len);
		if (m != NULL) {
			sess = PEM_read_bio_SSL_SESSION(m, NULL, NULL, NULL);
			BIO_free(m);
		}
	}
	record_release(&rec);
	buf_release(&raw);
	ERR_clear_error();
	if (sess == NULL) {
		return NULL;
	}
	if (!SSL_SESSION_is_resumable(sess)
		|| (long)SSL_SESSION_get_time(sess)
		+ (long)SSL_SESSION_get_timeout(sess) <= (long)time(NULL)) {
		SSL_SESSION_free(sess);
		return NULL;
	}
	return sess;
}

/* ---- I/O ---- */

/*
 * Map the outcome of an SSL call: ERR_OK after waiting for what OpenSSL
 * asked for (the caller retries), or the error.
 */
static MUST_CHECK enum err
tls_step(struct tls_transport *tt, int ret, int64_t deadline,
	const char *what, struct errinfo *reterr)
{
	int code = SSL_get_error(tt->ssl, ret);

	switch (code) {
	case SSL_ERROR_WANT_READ:
		return transport_poll(tt->base.fd, POLLIN, deadline, what,
			reterr);
	case SSL_ERROR_WANT_WRITE:
		return transport_poll(tt->base.fd, POLLOUT, deadline, what,
			reterr);
	case SSL_ERROR_ZERO_RETURN:
		return errinfo_set(reterr, ERR_NET,
			"connection closed by server");
	default:
		break;
	}
	if (tt->eof) {
		errinfo_set_errno(reterr, tt->sys_errno);
		return errinfo_set(reterr, ERR_NET,
			"connection closed by server%s%s%s",
			tt->sys_errno != 0 ? " (" : "",
			tt->sys_errno != 0 ? strerror(tt->sys_errno) : "",
			tt->sys_errno != 0 ? ")" : "");
	}
	if (code == SSL_ERROR_SYSCALL && tt->sys_errno != 0) {
		errinfo_set_errno(reterr, tt->sys_errno);
		return errinfo_set(reterr, ERR_NET, "%s: %s", what,
			strerror(tt->sys_errno));
	}
	return errinfo_set(reterr, ERR_TLS, "TLS error %s: %s", what,
		ssl_reason("unknown error"));
}

static MUST_CHECK enum err
tls_write(struct transport *t, const void *p, size_t n, int64_t deadline,
	struct errinfo *reterr)
{
	struct tls_transport *tt = (struct tls_transport *)t;
	const char *c = p;

	while (n > 0) {
		size_t done = 0;
		enum err e;

		ERR_clear_error();
		if (SSL_write_ex(tt->ssl, c, n, &done) == 1) {
			c += done;
			n -= done;
			continue;
		}
		e = tls_step(tt, 0, deadline, "sending to server", reterr);
		if (e != ERR_OK) {
			return e;
		}
	}
	return ERR_OK;
}

static MUST_CHECK enum err
tls_read(struct transport *t, void *p, size_t cap, size_t *ret_n,
	int64_t deadline, struct errinfo *reterr)
{
	struct tls_transport *tt = (struct tls_transport *)t;

	*ret_n = 0;
	if (cap == 0) {
		return errinfo_set(reterr, ERR_INTERNAL,
			"transport read with no room");
	}
	for (;;) {
		size_t got = 0;
		enum err e;

		ERR_clear_error();
		if (SSL_read_ex(tt->ssl, p, cap, &got) == 1) {
			*ret_n = got;
			return ERR_OK;
		}
		e = tls_step(tt, 0, deadline, "waiting for data from server",
			reterr);
		if (e != ERR_OK) {
			return e;
		}
	}
}

static size_t
tls_pending(struct transport *t)
{
	struct tls_transport *tt = (struct tls_transport *)t;
	int n = SSL_pending(tt->ssl);

	if (n > 0) {
		return (size_t)n;
	}
	return SSL_has_pending(tt->ssl) ? 1 : 0;
}

static void
tls_free(struct tls_transport *tt)
{
	if (tt->ssl != NULL) {
		SSL_free(tt->ssl);
	}
	SSL_CTX_free(tt->ctx);
	X509_free(tt->leaf);
	X509_free(tt->failed);
	free(tt->session_path);
	free(tt);
}

static void
tls_close(struct transport *t)
{
	struct tls_transport *tt = (struct tls_transport *)t;

	/* One non-blocking attempt at close_notify; the result is moot. */
	ERR_clear_error();
	(void)SSL_shutdown(tt->ssl);
	ERR_clear_error();
	transport_close(tt->inner);
	tls_free(tt);
}

static MUST_CHECK enum err
tls_describe(struct transport *t, struct buf *out)
{
	struct tls_transport *tt = (struct tls_transport *)t;
	enum err e;

	e = buf_printf(out, "%s %s%s over ", SSL_get_version(tt->ssl),
		SSL_get_cipher_name(tt->ssl),
		SSL_session_reused(tt->ssl) ? " (resumed)" : "");
	return e != ERR_OK ? e : tt->inner->ops->describe(tt->inner, out);
}

static const struct transport_ops tls_ops = {
	.write = tls_write,
	.read = tls_read,
	.pending = tls_pending,
	.close = tls_close,
	.describe = tls_describe,
};

/* ---- the session key (transport_tls_session_key) ---- */

/* the oldest protocol version offered (setup_ctx); part of the key */
#define TLS_MIN_VERSION TLS1_2_VERSION

/* at most this many entries of a trust directory count, one by one */
#define KEY_DIR_ENTRIES_MAX 4096

/* Feed "label\0value\0" ("-" for no value) to the digest. */
static int
key_str(struct sha256 *md, const char *label, const char *v)
{
	if (v == NULL) {
		v = "-";
	}
	sha256_update(md, label, strlen(label) + 1);
	sha256_update(md, v, strlen(v) + 1);
	return 1;
}

/* The identity of what stat() found (or the errno it failed with). */
static int
key_stat(struct sha256 *md, const char *label, int rc, const struct stat *st)
{
	char id[256];

	if (rc != 0) {
		snprintf(id, sizeof(id), "errno %d", errno);
	} else {
		snprintf(id, sizeof(id), "%llu %llu %o %lld %lld.%09ld "
			"%lld.%09ld", (unsigned long long)st->st_dev,
			(unsigned long long)st->st_ino, (unsigned)st->st_mode,
			(long long)st->st_size, (long long)st->st_mtim.tv_sec,
			st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec,
			st->st_ctim.tv_nsec);
	}
	return key_str(md, label, id);
}

/*
 * A file or directory by its identity; with entries, a directory's
 * entries too (links followed: a link's target counts), in the order the
 * directory lists them (another order only costs a full handshake).
 */
static int
key_file(struct sha256 *md, const char *label, const char *path, int entries)
{
	struct stat st;
	struct dirent *de;
	size_t n = 0;
	DIR *d;
	int ok;

	if (path == NULL || path[0] == '\0') {
		return key_str(md, label, NULL);
	}
	ok = key_str(md, label, path) &&
		key_stat(md, "identity", stat(path, &st), &st);
	if (!ok || !entries || !S_ISDIR(st.st_mode)
		|| (d = opendir(path)) == NULL) {
		return ok;
	}
	while (ok && n < KEY_DIR_ENTRIES_MAX && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0
			|| strcmp(de->d_name, "..") == 0) {
			continue;
		}
		n++;
		ok = key_str(md, "entry", de->d_name) && key_stat(md,
			"identity", fstatat(dirfd(d), de->d_name, &st, 0), &st);
	}
	closedir(d);
	return ok;
}

/*
 * The trust as load_trust() would load it.  The system store counts by
 * its bundle file and its directory themselves, not by each certificate:
 * update-ca-certificates and update-ca-trust rewrite the bundle (a new
 * inode) and the directory's links whenever a certificate is added,
 * removed or changed, while stat'ing each of the directory's ~300 entries
 * costs 1-2 ms per send (measured on Debian 13: 3 stat calls take 6-30 us).
 * SSL_CERT_FILE and SSL_CERT_DIR count the same way (they usually name
 * the system store).  A directory named by tls_trust_file counts entry by
 * entry, so a certificate copied over another in place changes the key.
 */
static int
key_trust(struct sha256 *md, const struct tls_params *params)
{
	const char *tf = params->trust_file;
	const char *fenv = getenv(X509_get_default_cert_file_env());
	const char *denv = getenv(X509_get_default_cert_dir_env());

	if (tf != NULL && tf[0] != '\0' && strcmp(tf, "system") != 0) {
		return key_file(md, "trust", tf, 1);
	}
	if (fenv == NULL && denv == NULL) {
		return key_str(md, "trust", "system") &&
			key_file(md, "system file", X509_get_default_cert_file(),
			0) && key_file(md, "system dir",
			X509_get_default_cert_dir(), 0);
	}
	return key_str(md, "trust", "system from the environment") &&
		key_file(md, "SSL_CERT_FILE", fenv != NULL ? fenv :
		X509_get_default_cert_file(), 0) &&
		key_file(md, "SSL_CERT_DIR", denv != NULL ? denv :
		X509_get_default_cert_dir(), 0);
}

enum err
transport_tls_session_key(const struct tls_params *params, struct buf *out)
{
	unsigned char dg[SHA256_LEN];
	char name[2 * SHA256_NAME_BYTES + 1];
	struct sha256 md;
	char *conf;
	char num[64];
	int ok;
	enum err e = ERR_OK;

	/* no transport_tls_init(): a send a keeper serves never starts
	 * OpenSSL (sha256.h); these calls only read its build settings */
	snprintf(num, sizeof(num), "%d %d", params->certcheck != 0,
		TLS_MIN_VERSION);
	conf = CONF_get1_default_config_file();
	sha256_init(&md);
	ok = key_str(&md, "oasmtp-tls-session-key", "1") &&
		key_str(&md, "host", params->host) &&
		key_str(&md, "certcheck, min version", num) &&
		key_str(&md, "fingerprint", params->fingerprint) &&
		key_trust(&md, params) &&
		key_file(&md, "crl", params->crl_file, 0) &&
		key_file(&md, "cert", params->cert_file, 0) &&
		key_file(&md, "key", params->key_file, 0) &&
		key_file(&md, "openssl.cnf", conf, 0);
	OPENSSL_free(conf);
	sha256_final(&md, dg);
	util_hex(name, dg, SHA256_NAME_BYTES);
	if (ok) {
		e = buf_append_str(out, name);
	}
	return ok ? e : ERR_NOMEM;
}

/* ---- setting up ---- */

static MUST_CHECK enum err
load_file_err(const char *key, const char *file, struct errinfo *reterr)
{
	struct stat st;

	if (stat(file, &st) != 0) {
		errinfo_set_errno(reterr, errno);
		return errinfo_set(reterr, ERR_CONFIG, "%s %s: %s", key, file,
			strerror(errno));
	}
	return errinfo_set(reterr, ERR_CONFIG, "%s %s: cannot load: %s", key,
		file, ssl_reason("bad file"));
}

/*
 * Whether dir holds hashed certificate links (NAME.N, NAME eight hex
 * digits), as c_rehash and update-ca-certificates make them: then a
 * lookup by issuer finds the one certificate a chain needs.
 */
static int
has_hashed_links(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int found = 0;

	if (d == NULL) {
		return 0;
	}
	while (!found && (de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		size_t i = 0;

		while (i < 8 && isxdigit((unsigned char)n[i])) {
			i++;
		}
		found = i == 8 && n[8] == '.' &&
			isdigit((unsigned char)n[9]);
	}
	closedir(d);
	return found;
}

/*
 * The system trust store.  OpenSSL's default is its CA file and its CA
 * directory; the file is the whole bundle (some 140 certificates, parsed
 * in full: about 240 million instructions), the directory is read one
 * certificate at a time, by issuer.  Where the directory has hashed links
 * (Debian and derivatives build it from the same certificates as the
 * bundle) it alone is used; where it has none (Fedora's bundle-only
 * layout), or SSL_CERT_FILE / SSL_CERT_DIR choose otherwise, OpenSSL's
 * default paths are.
 */
static int
load_system_trust(X509_STORE *store)
{
	const char *dir = X509_get_default_cert_dir();
	X509_LOOKUP *lu;

	if (getenv(X509_get_default_cert_file_env()) == NULL &&
	    getenv(X509_get_default_cert_dir_env()) == NULL &&
	    has_hashed_links(dir)) {
		lu = X509_STORE_add_lookup(store, X509_LOOKUP_hash_dir());
		return lu != NULL && X509_LOOKUP_add_dir(lu, dir,
			X509_FILETYPE_PEM) == 1;
	}
	return X509_STORE_set_default_paths(store) == 1;
}

/* Load tls_trust_file (or the system store) and tls_crl_file into store. */
static MUST_CHECK enum err
load_trust(const struct tls_params *params, X509_STORE *store,
	struct errinfo *reterr)
{
	const char *tf = params->trust_file;
	struct stat st;

	if (tf == NULL || tf[0] == '\0' || strcmp(tf, "system") == 0) {
		if (!load_system_trust(store)) {
			return errinfo_set(reterr, ERR_CONFIG,
				"cannot load the system trust store: %s",
				ssl_reason("?"));
		}
	} else if (stat(tf, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (!X509_STORE_load_locations(store, NULL, tf)) {
			return load_file_err("tls_trust_file", tf, reterr);
		}
	} else if (!X509_STORE_load_locations(store, tf, NULL)) {
		return load_file_err("tls_trust_file", tf, reterr);
	}
	if (params->crl_file != NULL && params->crl_file[0] != '\0') {
		X509_LOOKUP *lu = X509_STORE_add_lookup(store,
			X509_LOOKUP_file());

		if (lu == NULL || X509_load_crl_file(lu, params->crl_file,
			X509_FILETYPE_PEM) <= 0) {
			return load_file_err("tls_crl_file", params->crl_file,
				reterr);
		}
	}
	return ERR_OK;
}

/*
 * OpenSSL's chain verification, with the trust loaded first (once).  A
 * trust that cannot load fails the handshake; handshake() reports
 * tt->trust_err instead of a verification error.
 */
static int
verify_chain(X509_STORE_CTX *xs, void *arg)
{
	struct tls_transport *tt = arg;

	if (!tt->trust_loaded) {
		tt->trust_loaded = 1;
		tt->trust_err = load_trust(tt->params,
			SSL_CTX_get_cert_store(tt->ctx), tt->reterr);
	}
	if (tt->trust_err != ERR_OK) {
		X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
		return 0;
	}
	return X509_verify_cert(xs);
}

static MUST_CHECK enum err
setup_ctx(struct tls_transport *tt, const struct tls_params *params,
	struct errinfo *reterr)
{
	SSL_CTX *ctx;

	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		return errinfo_set(reterr, ERR_NOMEM,
			"cannot create TLS context: %s", ssl_reason("?"));
	}
	tt->ctx = ctx;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS_MIN_VERSION)) {
		return errinfo_set(reterr, ERR_INTERNAL,
			"cannot require TLS 1.2: %s", ssl_reason("?"));
	}
	if (tt->mode == CHECK_CA) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
		SSL_CTX_set_cert_verify_callback(ctx, verify_chain, tt);
		/* the flag now: it is copied when verification starts */
		if (params->crl_file != NULL && params->crl_file[0] != '\0') {
			X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx),
				X509_V_FLAG_CRL_CHECK);
		}
	} else {
		/* Fingerprint: checked after the handshake.  None: nothing. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	if (params->cert_file != NULL && params->cert_file[0] != '\0') {
		const char *key = params->key_file != NULL
			&& params->key_file[0] != '\0' ? params->key_file
			: params->cert_file;

		if (SSL_CTX_use_certificate_chain_file(ctx,
			params->cert_file) != 1) {
			return load_file_err("tls_cert_file", params->cert_file,
				reterr);
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
			return load_file_err("tls_key_file", key, reterr);
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			return errinfo_set(reterr, ERR_CONFIG,
				"tls_key_file %s does not match tls_cert_file %s",
				key, params->cert_file);
		}
	}
	if (tt->session_path != NULL) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT
			| SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
	}
	return ERR_OK;
}

static MUST_CHECK enum err
setup_ssl(struct tls_transport *tt, struct errinfo *reterr)
{
	BIO *bio;

	tt->ssl = SSL_new(tt->ctx);
	if (tt->ssl == NULL || tls_ex_index < 0
		|| !SSL_set_ex_data(tt->ssl, tls_ex_index, tt)) {
		return errinfo_set(reterr, ERR_NOMEM,
			"cannot create TLS connection: %s", ssl_reason("?"));
	}
	bio = BIO_new(sock_method);
	if (bio == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "cannot create TLS BIO");
	}
	BIO_set_data(bio, tt);
	BIO_set_init(bio, 1);
	SSL_set_bio(tt->ssl, bio, bio);

	if (host_is_ip(tt->host)) {
		/* RFC 6066: no SNI for address literals. */
		if (tt->mode == CHECK_CA && !X509_VERIFY_PARAM_set1_ip_asc(
			SSL_get0_param(tt->ssl), tt->host)) {
			return errinfo_set(reterr, ERR_INTERNAL,
				"cannot set IP address to verify");
		}
	} else {
		if (!SSL_set_tlsext_host_name(tt->ssl, tt->host)) {
			return errinfo_set(reterr, ERR_INTERNAL,
				"cannot set SNI host name %s", tt->host);
		}
		if (tt->mode == CHECK_CA) {
			SSL_set_hostflags(tt->ssl,
				X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (!SSL_set1_host(tt->ssl, tt->host)) {
				return errinfo_set(reterr, ERR_INTERNAL,
					"cannot set host name to verify");
			}
		}
	}
	if (tt->session_path != NULL) {
		SSL_SESSION *sess = load_session(tt);

		if (sess != NULL) {
			(void)SSL_set_session(tt->ssl, sess);
			SSL_SESSION_free(sess);
		}
	}
	return ERR_OK;
}

static MUST_CHECK enum err
handshake(struct tls_transport *tt, int64_t deadline, struct errinfo *reterr)
{
	for (;;) {
		int r;
		int code;
		long vr;
		enum err e;

		ERR_clear_error();
		r = SSL_connect(tt->ssl);
		if (r == 1) {
			return ERR_OK;
		}
		code = SSL_get_error(tt->ssl, r);
		if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
			e = tls_step(tt, r, deadline, "during the TLS handshake",
				reterr);
			if (e != ERR_OK) {
				return e;
			}
			continue;
		}
		if (tt->trust_err != ERR_OK) {
			return tt->trust_err;
		}
		vr = SSL_get_verify_result(tt->ssl);
		if (tt->mode == CHECK_CA && vr != X509_V_OK) {
			return verify_error(tt, vr, reterr);
		}
		if (tt->eof) {
			return errinfo_set(reterr, ERR_NET,
				"connection closed by server during the TLS "
				"handshake with %s", tt->host);
		}
		if (code == SSL_ERROR_SSL) {
			unsigned long le = ERR_peek_last_error();
			int reason = ERR_GET_REASON(le);

			if (reason == SSL_R_WRONG_VERSION_NUMBER) {
				/* typically "220 ..." read as a TLS record */
				return errinfo_set(reterr, ERR_TLS,
					"TLS handshake with %s failed: the server "
					"did not answer in TLS; if the port "
					"expects STARTTLS (as 587 and 25 do), set "
					"'tls_starttls on'", tt->host);
			}
			if (reason == SSL_R_UNSUPPORTED_PROTOCOL
				|| reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION
				|| reason == SSL_R_NO_PROTOCOLS_AVAILABLE) {
				return errinfo_set(reterr, ERR_TLS,
					"TLS handshake with %s failed: %s (the "
					"server does not offer TLS 1.2 or newer)",
					tt->host, ssl_reason("?"));
			}
		}
		if (code == SSL_ERROR_SYSCALL && tt->sys_errno != 0) {
			return errinfo_set(reterr, ERR_NET,
				"TLS handshake with %s failed: %s", tt->host,
				strerror(tt->sys_errno));
		}
		return errinfo_set(reterr, ERR_TLS,
			"TLS handshake with %s failed: %s", tt->host,
			ssl_reason("unknown error"));
	}
}

enum err
transport_tls_start(struct transport **t, const struct tls_params *params,
	int64_t deadline, struct errinfo *reterr)
{
	struct tls_transport *tt;
	const char *host;
	size_t len;
	enum err e;

	if (t == NULL || *t == NULL || (*t)->fd < 0 || params == NULL) {
		return errinfo_set(reterr, ERR_INTERNAL,
			"TLS start without a connection");
	}
	if ((*t)->ops->pending(*t) > 0) {
		return errinfo_set(reterr, ERR_PROTO,
			"server sent data before the TLS handshake");
	}
	if (!transport_tls_init()) {
		return errinfo_set(reterr, ERR_INTERNAL,
			"cannot initialise OpenSSL: %s", ssl_reason("?"));
	}
	pthread_once(&sock_method_once, sock_method_init);
	pthread_once(&tls_ex_once, tls_ex_init);
	if (sock_method == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "cannot set up TLS");
	}

	tt = calloc(1, sizeof(*tt));
	if (tt == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	tt->base.ops = &tls_ops;
	tt->base.fd = (*t)->fd;
	host = params->host != NULL ? params->host : "";
	len = strlen(host);
	/* "[::1]" names the address ::1. */
	if (host[0] == '[' && len > 2 && host[len - 1] == ']'
		&& len - 2 < sizeof(tt->host)) {
		memcpy(tt->host, host + 1, len - 2);
		tt->host[len - 2] = '\0';
	} else if (util_strlcpy(tt->host, host, sizeof(tt->host))
		>= sizeof(tt->host)) {
		free(tt);
		return errinfo_set(reterr, ERR_CONFIG, "host name too long");
	}
	if (!params->certcheck) {
		tt->mode = CHECK_NONE;
	} else if (params->fingerprint != NULL
		&& params->fingerprint[0] != '\0') {
		tt->mode = CHECK_FINGERPRINT;
	} else {
		tt->mode = CHECK_CA;
	}
	if (tt->mode == CHECK_CA && tt->host[0] == '\0') {
		free(tt);
		return errinfo_set(reterr, ERR_CONFIG,
			"TLS needs a host name to verify");
	}
	if (params->session_cache != NULL && params->session_cache[0] != '\0') {
		tt->session_path = strdup(params->session_cache);
		if (tt->session_path == NULL) {
			free(tt);
			return errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
	}

	tt->params = params;
	tt->reterr = reterr;
	e = setup_ctx(tt, params, reterr);
	if (e == ERR_OK) {
		e = setup_ssl(tt, reterr);
	}
	if (e == ERR_OK) {
		e = handshake(tt, deadline, reterr);
	}
	if (e == ERR_OK && tt->mode == CHECK_FINGERPRINT) {
		e = check_fingerprint(tt, params->fingerprint, reterr);
	}
	tt->params = NULL;
	tt->reterr = NULL;
	if (e != ERR_OK) {
		ERR_clear_error();
		tls_free(tt);
		return e;
	}
	tt->inner = *t;
	*t = &tt->base;
	return ERR_OK;
}

int
transport_tls_resumed(const struct transport *t)
{
	const struct tls_transport *tt = (const struct tls_transport *)t;

	if (t == NULL || t->ops != &tls_ops) {
		return 0;
	}
	return SSL_session_reused(tt->ssl) == 1;
}

enum err
transport_tls_info(struct transport *t, struct buf *out)
{
	struct tls_transport *tt = (struct tls_transport *)t;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	enum err be = ERR_OK;
	X509 *cert;

	if (t == NULL || t->ops != &tls_ops) {
		return ERR_OK;
	}
	err_first(&be, buf_printf(out, "TLS session:\n    protocol: %s\n    cipher: %s\n"
		"    resumed: %s\n", SSL_get_version(tt->ssl),
		SSL_get_cipher_name(tt->ssl),
		SSL_session_reused(tt->ssl) ? "yes" : "no"));
	cert = peer_certificate(tt->ssl);
	if (cert == NULL) {
		/* a resumed session kept none: session_without_peer() */
		err_first(&be, buf_append_str(out, !SSL_session_reused(tt->ssl)
			? "TLS certificate: none\n" : tt->mode == CHECK_NONE ?
			"TLS certificate: not sent again (resumed session; "
			"tls_certcheck off)\n" : "TLS certificate: not sent "
			"again (resumed session; checked when it was made)\n"));
		return be;
	}
	err_first(&be, buf_append_str(out, "TLS certificate:\n    subject: "));
	err_first(&be, append_name(out, X509_get_subject_name(cert)));
	err_first(&be, buf_append_str(out, "\n    issuer: "));
	err_first(&be, append_name(out, X509_get_issuer_name(cert)));
	err_first(&be, buf_append_str(out, "\n    valid from: "));
	err_first(&be, append_time(out, X509_get0_notBefore(cert)));
	err_first(&be, buf_append_str(out, "\n    valid until: "));
	err_first(&be, append_time(out, X509_get0_notAfter(cert)));
	err_first(&be, buf_append_str(out, "\n    SHA-256 fingerprint: "));
	if (X509_digest(cert, EVP_sha256(), md, &md_len)) {
		err_first(&be, append_hex(out, md, md_len));
	}
	err_first(&be, buf_putc(out, '\n'));
	X509_free(cert);
	return be;
}
