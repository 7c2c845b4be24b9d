/*
 * route.h - which way a message of an account leaves (oasmtprc(5),
 * transport): SMTP, or an HTTPS API through oasmtp-token send, and for
 * transport auto the fall-back from SMTP to the API and its memory
 * (api_route.h).  Shared by the send (sendmail.c) and the queue flush
 * (queue_run.c).  -v lines say which path was taken and why.
 */
#ifndef OASMTP_ROUTE_H
#define OASMTP_ROUTE_H

#include <stdint.h>

#include "api.h"
#include "err.h"
#include "submit.h"

struct job;
struct envelope;

/* The connect deadline of the SMTP attempt of transport auto. */
#define ROUTE_AUTO_CONNECT_S 10

/*
 * The API the next message of job's account goes to straight away
 * (transport graph or gmail-api, or auto with a remembered fall-back), or
 * API_NONE for SMTP first.  Says why with -v.
 */
enum api_kind route_choose(const struct job *job);

/*
 * For transport auto: install in sp the SMTP connect with the short
 * deadline that tells "port closed" (ROUTE_AUTO_CONNECT_S).  ctx must
 * outlive the session; route_fallback() reads it afterwards.
 */
struct route_probe {
	int connect_failed;	/* the TCP connect failed or timed out */
	char reason[256];	/* why SMTP is not usable, for -v */
	struct submit_io next;	/* the hook it wraps (the sandbox's) */
};
void route_probe_install(const struct job *job, struct submit_params *sp,
	struct route_probe *probe);

/*
 * After an SMTP failure e (reterr) of a transport auto account: the API to
 * fall back to (and the choice remembered), or API_NONE when the failure
 * is not one that the API can avoid (SMTP AUTH disabled, 5.7.139; the
 * port refused or silent).  Says why with -v.
 */
enum api_kind route_fallback(const struct job *job, enum err e,
	const struct errinfo *reterr, struct route_probe *probe);

/*
 * Send body to env's recipients over kind's API.  *ret_retry_after gets
 * the seconds the API asked to wait (0: none).  Errors of
 * api_send_message().
 */
enum err route_api_send(const struct job *job, enum api_kind kind,
	const struct submit_body *body, const struct envelope *env,
	long *ret_retry_after, struct errinfo *reterr);

#endif
