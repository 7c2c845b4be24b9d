/* route.c - SMTP or an HTTPS API, and the fall-back of transport auto
 * (route.h). */
#include "route.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "account.h"
#include "api_route.h"
#include "api_send.h"
#include "buf.h"
#include "cli.h"
#include "job.h"

/* why a route was taken, one line for -v and the route file */
#define ROUTE_WHY_MAX 2048
#include "log.h"
#include "transport.h"
#include "util.h"

enum api_kind
route_choose(const struct job *job)
{
	const struct account *acc = job->acc;
	enum api_kind kind = API_NONE;
	struct buf why;
	time_t since = 0;

	if (acc->transport == VIA_GRAPH || acc->transport == VIA_GMAIL_API) {
		kind = api_kind_of(acc);
		log_debug(1, "transport %s: sending through %s",
			api_transport_name(acc->transport),
			api_url_of(acc, kind));
		return kind;
	}
	if (acc->transport != VIA_AUTO) {
		return API_NONE;
	}
	buf_init(&why, ROUTE_WHY_MAX);
	if (api_route_recall(acc, time(NULL), &kind, &since, &why)) {
		log_debug(1, "transport auto: sending through %s (%s), as "
			"decided %ld min ago: %s", api_kind_name(kind),
			api_url_of(acc, kind),
			(long)((time(NULL) - since) / 60), buf_cstr(&why));
	} else {
		kind = API_NONE;
		log_debug(1, "transport auto: trying SMTP first (%s port %d; "
			"%s if it is closed)", acc->host, acc->port,
			api_kind_name(api_kind_of(acc)));
	}
	buf_release(&why);
	return kind;
}

static enum err
probe_connect(void *ctx, const char *host, int port, const char *source_ip,
	int64_t deadline, struct transport **ret_t, struct errinfo *reterr)
{
	struct route_probe *probe = ctx;
	int64_t mine = util_now_ms() + ROUTE_AUTO_CONNECT_S * 1000;
	enum err e;

	if (deadline != 0 && deadline < mine) {
		mine = deadline;
	}
	if (probe->next.connect != NULL) {
		e = probe->next.connect(probe->next.ctx, host, port, source_ip,
			mine, ret_t, reterr);
	} else {
		e = transport_tcp_connect(host, port, source_ip, mine, ret_t,
			reterr);
	}
	if (e == ERR_NET || e == ERR_TIMEOUT) {
		probe->connect_failed = 1;
	}
	return e;
}

void
route_probe_install(const struct job *job, struct submit_params *sp,
	struct route_probe *probe)
{
	memset(probe, 0, sizeof(*probe));
	if (job->acc->transport == VIA_AUTO) {
		probe->next = sp->io;
		sp->io.connect = probe_connect;
		sp->io.ctx = probe;
		/* only connect is wrapped: the sandbox sets no tls_start */
	}
}

/* 535 5.7.139 or the text Microsoft sends with it. */
static int
smtp_auth_disabled(enum err e, const struct errinfo *ei)
{
	if (e != ERR_AUTH && e != ERR_SMTP_PERM) {
		return 0;
	}
	return strcmp(ei->enhanced, "5.7.139") == 0 ||
		strstr(ei->msg, "5.7.139") != NULL ||
		strstr(ei->msg, "SmtpClientAuthentication is disabled") !=
		NULL || strstr(ei->msg, "SMTP AUTH is disabled") != NULL;
}

enum api_kind
route_fallback(const struct job *job, enum err e,
	const struct errinfo *reterr, struct route_probe *probe)
{
	const struct account *acc = job->acc;
	enum api_kind kind = api_kind_of(acc);
	struct errinfo werr;
	struct buf line;

	if (acc->transport != VIA_AUTO || e == ERR_OK || kind == API_NONE) {
		return API_NONE;
	}
	buf_init(&line, ROUTE_WHY_MAX);
	if (util_first_line(errinfo_msg(reterr), 200, &line) != ERR_OK) {
		buf_reset(&line);
	}
	if (smtp_auth_disabled(e, reterr)) {
		snprintf(probe->reason, sizeof(probe->reason), "SMTP AUTH is "
			"disabled for the account (%s)", buf_cstr(&line));
	} else if (probe->connect_failed) {
		snprintf(probe->reason, sizeof(probe->reason), "%s port %d "
			"cannot be reached (%s)", acc->host, acc->port,
			buf_cstr(&line));
	} else {
		buf_release(&line);
		return API_NONE;
	}
	buf_release(&line);
	log_debug(1, "transport auto: %s; sending through %s (%s) and "
		"remembering that for %d h", probe->reason, api_kind_name(kind),
		api_url_of(acc, kind), API_ROUTE_SECONDS / 3600);
	errinfo_init(&werr);
	if (api_route_remember(acc, kind, probe->reason, time(NULL), &werr) !=
	    ERR_OK) {
		log_debug(1, "transport auto: cannot remember it: %s",
			werr.msg);
	}
	return kind;
}

enum err
route_api_send(const struct job *job, enum api_kind kind,
	const struct submit_body *body, const struct envelope *env,
	long *ret_retry_after, struct errinfo *reterr)
{
	struct api_send_result ar;
	enum err e;

	e = api_send_message(job->acc, job->o->config_file, kind, body, env,
		job->o->verbose, &ar, reterr);
	*ret_retry_after = ar.retry_after;
	if (e == ERR_OK) {
		log_debug(1, "%s accepted the message (HTTP %d%s%s)",
			api_kind_name(kind), ar.status, ar.id[0] ? ", id " : "",
			ar.id);
	}
	return e;
}
