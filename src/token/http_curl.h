/*
 * http_curl.h - what every HTTPS request of oasmtp-token shares (the token
 * endpoint in oauth_http.c, the mail APIs in api_http.c): libcurl set up
 * once per process, https only, no redirects followed, the peer verified
 * against the system trust plus oauth2_ca_file, TLS 1.2 or later,
 * timeouts.  Internal to src/token/ (it includes libcurl's header).
 */
#ifndef OASMTP_HTTP_CURL_H
#define OASMTP_HTTP_CURL_H

#include <curl/curl.h>

#include "err.h"

/* The extra CA file, and whether a CA load error is that file's fault. */
struct http_ca {
	const char *file;	/* oauth2_ca_file, NULL or "": none */
	int blame_file;
};

/*
 * curl_easy_setopt(h, opt, val) into rc while rc is CURLE_OK: a run of
 * them stops at the first failure, which the request then reports.
 */
#define HTTP_SETOPT(rc, h, opt, val) \
	do { \
		if ((rc) == CURLE_OK) { \
			(rc) = curl_easy_setopt((h), (opt), (val)); \
		} \
	} while (0)

/*
 * curl_global_init() once per process (thread-safe).  ERR_INTERNAL with a
 * message when it failed.
 */
enum err http_curl_init(struct errinfo *reterr);

/*
 * The common options on h: url, https only (requests and redirects, and
 * redirects not followed), peer and host verified, TLS >= 1.2, no
 * signals, the timeouts (<= 0: 15 s to connect, 60 s in all), the error
 * buffer and the user agent, and ca->file added to the trust.  Returns
 * the first failing setopt's code.
 */
CURLcode http_curl_secure(CURL *h, const char *url, long connect_timeout_ms,
	long timeout_ms, char *errbuf, struct http_ca *ca);

#endif
