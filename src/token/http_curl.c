/* http_curl.c - the libcurl set-up every HTTPS request shares (http_curl.h). */
#include "http_curl.h"

#include <pthread.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void
curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

enum err
http_curl_init(struct errinfo *reterr)
{
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK) {
		return errinfo_set(reterr, ERR_INTERNAL,
			"cannot initialise libcurl: %s",
			curl_easy_strerror(curl_init_rc));
	}
	return ERR_OK;
}

/* Add the configured CA file to the store libcurl already set up. */
static CURLcode
on_ssl_ctx(CURL *curl, void *ssl_ctx, void *ud)
{
	struct http_ca *ca = ud;
	X509_STORE *store = SSL_CTX_get_cert_store(ssl_ctx);

	(void)curl;
	if (store == NULL ||
	    X509_STORE_load_locations(store, ca->file, NULL) != 1) {
		ca->blame_file = 1;
		return CURLE_SSL_CACERT_BADFILE;
	}
	return CURLE_OK;
}

/*
 * Whether libcurl's own CA bundle can be read.  When it cannot (a host
 * without ca-certificates), libcurl fails before the extra CA file is
 * added, so that file is then given to it as the only bundle instead.
 */
static int
default_ca_bundle_readable(CURL *h)
{
#if LIBCURL_VERSION_NUM >= 0x075400
	char *path = NULL;

	if (curl_easy_getinfo(h, CURLINFO_CAINFO, &path) != CURLE_OK) {
		return 1;	/* unknown: let libcurl decide */
	}
	return path != NULL && access(path, R_OK) == 0;
#else
	(void)h;
	return 1;
#endif
}

CURLcode
http_curl_secure(CURL *h, const char *url, long connect_timeout_ms,
	long timeout_ms, char *errbuf, struct http_ca *ca)
{
	CURLcode rc = CURLE_OK;
	long cto = connect_timeout_ms > 0 ? connect_timeout_ms : 15000;
	long to = timeout_ms > 0 ? timeout_ms : 60000;

	/*
	 * Every setopt below either cannot fail on this libcurl or would make
	 * the request less safe if ignored, so failures abort the request.
	 */
#define SETOPT(opt, val) HTTP_SETOPT(rc, h, opt, val)
	SETOPT(CURLOPT_URL, url);
	SETOPT(CURLOPT_PROTOCOLS_STR, "https");
	SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, cto);
	SETOPT(CURLOPT_TIMEOUT_MS, to);
	SETOPT(CURLOPT_ERRORBUFFER, errbuf);
	SETOPT(CURLOPT_USERAGENT, "oasmtp");
	if (ca->file != NULL && ca->file[0] != '\0' &&
	    !default_ca_bundle_readable(h)) {
		/* the only bundle: whatever libcurl cannot load is this file */
		SETOPT(CURLOPT_CAINFO, ca->file);
		ca->blame_file = 1;
	} else if (ca->file != NULL && ca->file[0] != '\0') {
#if LIBCURL_VERSION_NUM >= 0x075700
		/* the store is modified below: do not share a cached one */
		SETOPT(CURLOPT_CA_CACHE_TIMEOUT, 0L);
#endif
		SETOPT(CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
		SETOPT(CURLOPT_SSL_CTX_DATA, (void *)ca);
	}
#undef SETOPT
	return rc;
}
