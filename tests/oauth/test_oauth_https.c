/*
 * test_oauth_https.c - oauth_http and the broker through real libcurl over
 * HTTPS, against tests/oauth/fake_token_endpoint.py with a test CA made by
 * tests/oauth/mkcerts.sh.  The endpoint listens on 127.0.0.1, port 0; it is
 * stopped by PID at the end (and exits by itself after 120 s regardless).
 *
 * Environment: TEST_DATA = the tests/ source directory.
 */
#define _XOPEN_SOURCE 700	/* nftw() */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "account.h"
#include "buf.h"
#include "err.h"
#include "oauth_http.h"
#include "tap.h"
#include "token.h"
#include "util.h"

static char dir[256];
static char ca[PATH_MAX];
static int port;
static pid_t server_pid = -1;

static int
run(char *const argv[])
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		return -1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int
start_server(const char *data)
{
	char script[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], pfile[PATH_MAX];
	char mk[PATH_MAX];
	int64_t deadline;

	snprintf(mk, sizeof(mk), "%s/oauth/mkcerts.sh", data);
	{
		char *argv[] = { (char *)"/bin/sh", mk, dir, NULL };

		if (run(argv) != 0) {
			diag("mkcerts.sh failed");
			return -1;
		}
	}
	snprintf(script, sizeof(script), "%s/oauth/fake_token_endpoint.py", data);
	snprintf(cert, sizeof(cert), "%s/server.pem", dir);
	snprintf(key, sizeof(key), "%s/server.key", dir);
	snprintf(pfile, sizeof(pfile), "%s/port", dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	server_pid = fork();
	if (server_pid == 0) {
		char *argv[] = { (char *)"/usr/bin/python3", script, (char *)"--cert",
			cert, (char *)"--key", key, (char *)"--port-file", pfile,
			(char *)"--slow", (char *)"5", NULL };

		execv(argv[0], argv);
		_exit(127);
	}
	deadline = util_now_ms() + 15000;
	while (util_now_ms() < deadline) {
		FILE *f = fopen(pfile, "r");
		struct timespec ts = { 0, 50000000L };

		if (f != NULL) {
			int ok = fscanf(f, "%d", &port) == 1;

			fclose(f);
			if (ok) {
				return 0;
			}
		}
		nanosleep(&ts, NULL);
	}
	diag("endpoint did not start");
	return -1;
}

static void
stop_server(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
		server_pid = -1;
	}
}

static size_t
collect(char *p, size_t size, size_t n, void *ud)
{
	return buf_append(ud, p, size * n) == ERR_OK ? size * n : 0;
}

/* GET /stats with libcurl: the endpoint's request counters. */
static void
get_stats(struct buf *out)
{
	char url[128];
	CURL *h = curl_easy_init();

	buf_reset(out);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/stats", port);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_perform(h);
	curl_easy_cleanup(h);
}

static enum err
refresh(const char *mode, const char *ca_file, long timeout_ms,
	const char *secret, struct oauth_tokens *t, struct errinfo *ei)
{
	char url[128];
	struct oauth_request req;

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/%s", port, mode);
	memset(&req, 0, sizeof(req));
	req.account = "acct";
	req.token_endpoint = url;
	req.client_id = "client-1";
	req.client_secret = secret;
	req.refresh_token = "rt-0";
	req.ca_file = ca_file;
	req.timeout_ms = timeout_ms;
	req.connect_timeout_ms = timeout_ms;
	errinfo_init(ei);
	return oauth_refresh(&req, t, ei);
}

static struct errinfo ei;

static void
test_modes(void)
{
	struct oauth_tokens t;
	struct buf stats;
	int64_t t0;
	enum err e;

	oauth_tokens_init(&t);
	buf_init(&stats, 65536);

	e = refresh("ok", ca, 5000, NULL, &t, &ei);
	is_int(e, ERR_OK, "ok over HTTPS with the extra CA (%s)", errinfo_msg(&ei));
	is_str(buf_cstr(&t.access_token), "at-1", "access token");
	is_int(t.expires_in, 3600, "expires_in");
	is_int((long long)t.refresh_token.len, 0, "no rotation");

	e = refresh("rotate", ca, 5000, NULL, &t, &ei);
	is_int(e, ERR_OK, "rotate (%s)", errinfo_msg(&ei));
	is_str(buf_cstr(&t.refresh_token), "rt-2", "rotated refresh token");
	is_int(t.expires_in, 3600, "expires_in given as a string");

	e = refresh("echo", ca, 5000, NULL, &t, &ei);
	is_str(buf_cstr(&t.access_token), "keys:client_id,grant_type,refresh_token",
		"public client: no client_secret field on the wire");
	e = refresh("echo", ca, 5000, "sec", &t, &ei);
	is_str(buf_cstr(&t.access_token),
		"keys:client_id,client_secret,grant_type,refresh_token",
		"confidential client: client_secret sent");

	e = refresh("500", ca, 5000, NULL, &t, &ei);
	is_int(e, ERR_TOKEN_TEMP, "HTTP 500 -> ERR_TOKEN_TEMP");
	e = refresh("429", ca, 5000, NULL, &t, &ei);
	is_int(e, ERR_TOKEN_TEMP, "HTTP 429 -> ERR_TOKEN_TEMP");
	e = refresh("malformed", ca, 5000, NULL, &t, &ei);
	is_int(e, ERR_TOKEN_TEMP, "malformed JSON -> ERR_TOKEN_TEMP");
	e = refresh("invalid_grant", ca, 5000, NULL, &t, &ei);
	is_int(e, ERR_REAUTH, "invalid_grant -> ERR_REAUTH");
	contains(errinfo_msg(&ei), "run `oasmtp-token authorize acct`", "names the command");
	contains(errinfo_msg(&ei), "AADSTS700082", "quotes the provider's description");
	e = refresh("invalid_client", ca, 5000, NULL, &t, &ei);
	is_int(e, ERR_CONFIG, "invalid_client -> ERR_CONFIG");
	contains(errinfo_msg(&ei), "oauth2_client_id", "names the key");

	t0 = util_now_ms();
	e = refresh("slow", ca, 1000, NULL, &t, &ei);
	is_int(e, ERR_TOKEN_TEMP, "slow endpoint -> ERR_TOKEN_TEMP (%s)", errinfo_msg(&ei));
	ok(util_now_ms() - t0 < 4000, "the timeout bounds the wait (%lld ms)",
		(long long)(util_now_ms() - t0));

	e = refresh("ok", NULL, 5000, NULL, &t, &ei);
	is_int(e, ERR_TOKEN_TEMP, "unknown CA -> verification fails, temporary");
	contains(errinfo_msg(&ei), "unreachable", "message says why (%s)", errinfo_msg(&ei));

	{
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/nonexistent.pem", dir);
		e = refresh("ok", path, 5000, NULL, &t, &ei);
		is_int(e, ERR_CONFIG, "unreadable oauth2_ca_file -> ERR_CONFIG");
	}

	{
		struct oauth_request req;

		memset(&req, 0, sizeof(req));
		req.account = "acct";
		req.token_endpoint = "http://127.0.0.1:1/token";
		req.client_id = "c";
		req.refresh_token = "r";
		e = oauth_refresh(&req, &t, &ei);
		is_int(e, ERR_CONFIG, "http:// endpoint refused -> ERR_CONFIG");
		contains(errinfo_msg(&ei), "not an https URL", "message says https only");
	}

	get_stats(&stats);
	contains(buf_cstr(&stats), "\"malformed\": 1", "endpoint counted requests");
	oauth_tokens_release(&t);
	buf_release(&stats);
}

/* The whole broker over real HTTPS: rotation saved, then a cache hit. */
static void
test_broker(void)
{
	char endpoint[128], store[PATH_MAX], spec[PATH_MAX + 8], text[256];
	struct account acc;
	struct buf tok, stats;
	FILE *f;
	enum err e;

	snprintf(endpoint, sizeof(endpoint), "https://127.0.0.1:%d/rotate", port);
	snprintf(store, sizeof(store), "%s/refresh", dir);
	snprintf(spec, sizeof(spec), "file:%s", store);
	f = fopen(store, "w");
	fputs("rt-start\n", f);
	fclose(f);
	chmod(store, 0600);
	memset(&acc, 0, sizeof(acc));
	acc.name = (char *)"https";
	acc.timeout = 10;
	acc.oauth2_provider = OAUTH2_CUSTOM;
	acc.oauth2_client_id = (char *)"client-1";
	acc.oauth2_token_endpoint = endpoint;
	acc.oauth2_token_store = spec;
	acc.oauth2_ca_file = ca;
	acc.oauth2_refresh_margin = 600;
	buf_init_secret(&tok, 65536);
	buf_init(&stats, 65536);

	e = token_get(&acc, 0, &tok, &ei);
	is_int(e, ERR_OK, "token_get over HTTPS (%s)", errinfo_msg(&ei));
	ok(strncmp(buf_cstr(&tok), "at-", 3) == 0, "got an access token");
	f = fopen(store, "r");
	text[0] = '\0';
	if (f != NULL) {
		if (fgets(text, sizeof(text), f) == NULL) {
			text[0] = '\0';
		}
		fclose(f);
	}
	text[strcspn(text, "\n")] = '\0';
	ok(strncmp(text, "rt-", 3) == 0 && strcmp(text, "rt-start") != 0,
		"rotated refresh token saved (%s)", text);
	get_stats(&stats);
	/* test_modes() made one rotate request before */
	contains(buf_cstr(&stats), "\"rotate\": 2", "one more rotate request");
	e = token_get(&acc, 0, &tok, &ei);
	get_stats(&stats);
	ok(e == ERR_OK && strstr(buf_cstr(&stats), "\"rotate\": 2") != NULL,
		"second token_get is a cache hit: no request");
	buf_release(&tok);
	buf_release(&stats);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	(void)remove(path);
	return 0;
}

int
main(void)
{
	const char *data = getenv("TEST_DATA");
	char tmpl[] = "/tmp/oasmtp-https-test.XXXXXX";

	if (data == NULL || mkdtemp(tmpl) == NULL) {
		printf("Bail out! TEST_DATA not set or no temp dir\n");
		return 1;
	}
	util_strlcpy(dir, tmpl, sizeof(dir));
	setenv("XDG_RUNTIME_DIR", dir, 1);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (start_server(data) != 0) {
		stop_server();
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		printf("Bail out! cannot start the fake token endpoint\n");
		return 1;
	}
	test_modes();
	test_broker();
	stop_server();
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	curl_global_cleanup();
	return tap_done();
}
