/*
 * explain.c - the error explainer table (explain.h).
 *
 * Each entry names up to two fragments that must all occur in the text
 * (case-insensitively), or a JSON "status" value as Google's XOAUTH2 /
 * OAUTHBEARER error challenge carries it.  Entries are tried in order, so a
 * specific code (AADSTS700082) must come before a general one
 * (invalid_grant).  The advice says what to change, where.
 */
#include "explain.h"

#include <stddef.h>
#include <string.h>

#include "util.h"

enum match {
	M_TEXT,		/* every non-NULL needle occurs */
	M_JSON_STATUS,	/* "status" : "<needle>" in a JSON object */
};

struct explanation {
	enum match how;
	const char *needle;
	const char *needle2;	/* NULL or a second required fragment */
	const char *advice;
};

static const struct explanation table[] = {
	/* Microsoft Entra ID (token endpoint) */
	{ M_TEXT, "AADSTS7000218", NULL,
	  "the app registration does not allow public client flows: in the "
	  "Entra admin center open App registrations > your app > "
	  "Authentication and set 'Allow public client flows' to Yes (or give "
	  "the account the client's oauth2_client_secret)" },
	{ M_TEXT, "AADSTS700025", NULL,
	  "the app registration is a public client, which must not send a "
	  "secret: remove oauth2_client_secret / oauth2_client_secret_eval "
	  "from the account" },
	{ M_TEXT, "AADSTS7000112", NULL,
	  "the application is disabled in its tenant: register your own app "
	  "and put its id in oauth2_client_id (doc/microsoft365.md), or ask "
	  "the tenant administrator to enable it" },
	{ M_TEXT, "AADSTS700082", NULL,
	  "the refresh token expired after 90 days without use: run "
	  "`oasmtp-token authorize ACCOUNT`, and enable the "
	  "oasmtp-token-refresh@ACCOUNT.timer so it is used regularly" },
	{ M_TEXT, "AADSTS50173", NULL,
	  "the grant ended because the password was changed or reset: run "
	  "`oasmtp-token authorize ACCOUNT` again" },
	{ M_TEXT, "AADSTS50011", NULL,
	  "the redirect URI is not registered: add http://127.0.0.1 under "
	  "'Mobile and desktop applications' in the app registration (the "
	  "port is ignored there), or use --flow device" },
	{ M_TEXT, "AADSTS50020", NULL,
	  "this account does not belong to the tenant: set oauth2_tenant to "
	  "the tenant of the mailbox, or 'consumers' / 'common' for personal "
	  "Microsoft accounts" },
	{ M_TEXT, "personal account", NULL,
	  "the app registration accepts only work or school accounts: "
	  "register it for personal accounts too and set oauth2_tenant "
	  "common or consumers" },
	{ M_TEXT, "AADSTS70000", NULL,
	  "the grant is invalid or malformed: run "
	  "`oasmtp-token authorize ACCOUNT` again" },
	/* Microsoft Exchange Online (SMTP replies) */
	{ M_TEXT, "5.7.139", NULL,
	  "SMTP AUTH is disabled for this mailbox or tenant: an Exchange "
	  "administrator must enable 'Authenticated SMTP' for the mailbox "
	  "(Microsoft 365 admin center > Users > Mail > Manage email apps, or "
	  "Set-CASMailbox -SmtpClientAuthenticationDisabled $false)" },
	{ M_TEXT, "5.2.252", NULL,
	  "the mailbox may not send with this From address (SendAsDenied): "
	  "grant the signed-in user 'Send As' on that address, or send with a "
	  "From that matches the account (from, from_rewrite)" },
	{ M_TEXT, "SendAsDenied", NULL,
	  "the mailbox may not send with this From address: grant the "
	  "signed-in user 'Send As' on that address, or send with a From "
	  "that matches the account (from, from_rewrite)" },
	{ M_TEXT, "5.5.127", NULL,
	  "the server refuses tokens that expire soon: raise "
	  "oauth2_refresh_margin (for example to 15m)" },
	{ M_TEXT, "5.7.3", NULL,
	  "the server refused the token: it was probably issued for another "
	  "account or scope.  Check that 'user' is the mailbox you sign in as "
	  "(or a shared mailbox you may use), that the scope is "
	  "https://outlook.office.com/SMTP.Send, then run "
	  "`oasmtp-token authorize ACCOUNT` and sign in as that user" },
	/* Google's error challenge (decoded JSON) */
	{ M_JSON_STATUS, "401", NULL,
	  "Google rejected the access token (expired, revoked, or for another "
	  "account): run `oasmtp-token refresh ACCOUNT`; if it persists run "
	  "`oasmtp-token authorize ACCOUNT` and sign in as the account's user" },
	{ M_JSON_STATUS, "400", NULL,
	  "Google could not use the token for this user: 'user' must be the "
	  "Google account that authorized, and the scope must include "
	  "https://mail.google.com/" },
	/* invalid_grant descriptions */
	{ M_TEXT, "invalid_grant", "expired or revoked",
	  "the provider ended the grant.  With Google the usual causes are an "
	  "OAuth app left in 'Testing' (refresh tokens die after 7 days: "
	  "publish the app), a password change, or access removed in the "
	  "Google account.  Run `oasmtp-token authorize ACCOUNT`" },
	{ M_TEXT, "invalid_grant", "password",
	  "the grant ended because the password changed: run "
	  "`oasmtp-token authorize ACCOUNT`" },
	{ M_TEXT, "invalid_client", "secret",
	  "the client secret is wrong or expired: copy a current one into "
	  "oauth2_client_secret (or _eval)" },
	{ M_TEXT, "invalid_scope", "device",
	  "this provider does not allow the device flow for the mail scope: "
	  "use --flow loopback (or paste)" },
};

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Case-insensitive strstr for ASCII.  A needle that starts or ends with a
 * digit does not match inside a longer number ("5.7.3" is not "5.7.30").
 */
static const char *
find(const char *hay, const char *needle)
{
	const char *start = hay;
	size_t n = strlen(needle);

	for (; *hay != '\0'; hay++) {
		if (util_strncasecmp(hay, needle, n) != 0) {
			continue;
		}
		if (is_digit(needle[n - 1]) && is_digit(hay[n])) {
			continue;
		}
		if (is_digit(needle[0]) && hay > start && is_digit(hay[-1])) {
			continue;
		}
		return hay;
	}
	return NULL;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* "status" <ws> : <ws> "value" (or a bare number) anywhere in text. */
static int
json_status(const char *text, const char *value)
{
	const char *p = text;
	size_t n = strlen(value);

	while ((p = find(p, "\"status\"")) != NULL) {
		const char *q = p + strlen("\"status\"");

		p++;
		while (is_space(*q)) {
			q++;
		}
		if (*q != ':') {
			continue;
		}
		q++;
		while (is_space(*q)) {
			q++;
		}
		if (*q == '"') {
			q++;
			if (strncmp(q, value, n) == 0 && q[n] == '"') {
				return 1;
			}
		} else if (strncmp(q, value, n) == 0 && !is_digit(q[n])) {
			return 1;
		}
	}
	return 0;
}

const char *
explain_error(const char *text)
{
	size_t i;

	if (text == NULL) {
		return NULL;
	}
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const struct explanation *x = &table[i];

		if (x->how == M_JSON_STATUS) {
			if (json_status(text, x->needle)) {
				return x->advice;
			}
		} else if (find(text, x->needle) != NULL &&
		    (x->needle2 == NULL || find(text, x->needle2) != NULL)) {
			return x->advice;
		}
	}
	return NULL;
}
