/*
 * test_explain.c - the error explainer table (explain.h): every listed code
 * finds its advice, near misses do not.
 */
#include <stddef.h>
#include <string.h>

#include "explain.h"
#include "tap.h"

struct want {
	const char *text;
	const char *advice_has;	/* NULL: no advice expected */
};

static const struct want cases[] = {
	{ "token endpoint rejected the client (invalid_client: AADSTS7000218: "
	  "The request body must contain the following parameter: "
	  "'client_assertion' or 'client_secret')", "Allow public client flows" },
	{ "AADSTS700025: Client is public so neither 'client_assertion' nor "
	  "'client_secret' should be presented.", "remove oauth2_client_secret" },
	{ "unauthorized_client: AADSTS7000112: Application 'x' is disabled.",
	  "disabled" },
	{ "invalid_grant: AADSTS700082: The refresh token has expired due to "
	  "inactivity.", "90 days" },
	{ "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is "
	  "disabled for the Tenant.", "Authenticated SMTP" },
	{ "535 5.7.3 Authentication unsuccessful [DB8PR]", "another account" },
	{ "554 5.2.252 SendAsDenied; user@x not allowed to send as other@y",
	  "Send As" },
	{ "501 5.5.127 Invalid XOAUTH2 auth data - Token will expire soon",
	  "oauth2_refresh_margin" },
	{ "server challenge {\"status\":\"401\",\"schemes\":\"bearer\","
	  "\"scope\":\"https://mail.google.com/\"}", "Google rejected" },
	{ "{ \"status\" : \"400\", \"schemes\": \"Bearer\" }", "Google could not" },
	{ "re-authorization needed (token endpoint said invalid_grant: Token has "
	  "been expired or revoked.)", "Testing" },
	{ "invalid_grant: AADSTS50173: The provided grant has expired due to it "
	  "being revoked, a fresh auth token is needed. The user might have "
	  "changed or reset their password.", "password" },
	{ "AADSTS50011: The redirect URI specified in the request does not "
	  "match", "redirect URI" },
	/* near misses */
	{ "535 5.7.30 something else", NULL },
	{ "535 5.7.8 Username and Password not accepted", NULL },
	{ "{\"status\":\"4010\"}", NULL },
	{ "invalid_grant without a known description", NULL },
	{ "", NULL },
};

int
main(void)
{
	size_t i;

	ok(explain_error(NULL) == NULL, "NULL text: no advice");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *a = explain_error(cases[i].text);

		if (cases[i].advice_has == NULL) {
			ok(a == NULL, "no advice for '%.40s'", cases[i].text);
		} else {
			contains(a, cases[i].advice_has, "advice for '%.40s'",
				cases[i].text);
		}
	}
	/* 5.7.139 must not be mistaken for 5.7.3 or the reverse */
	contains(explain_error("5.7.139"), "SMTP AUTH is disabled",
		"5.7.139 wins over 5.7.3");
	ok(strstr(explain_error("lower case aadsts700025 too"), "public") !=
		NULL, "matching ignores case");
	return tap_done();
}
