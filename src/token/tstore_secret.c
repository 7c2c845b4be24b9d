/*
 * tstore_secret.c - the secret-service token store (libsecret); built only
 * when libsecret was found.
 *
 * Item: schema "org.oasmtp.RefreshToken" (matched loosely), with fixed,
 * non-secret attributes service=oasmtp, grant=<grant id> (token_cache.h:
 * token endpoint, client id, user and store, never the account name, so
 * `account default : gmail` and `-a gmail` find one item), user=<account
 * user or "">, and account=<name of the account that stored it>, for
 * people browsing the keyring only: it is not searched for.  Everything
 * that changes lives in the secret, as JSON: {"refresh_token": "..."},
 * with "previous_refresh_token": "..." added while a previous token is
 * kept (tstore.h), so that a rotation is one atomic update of one item; a
 * secret that does not start with '{' is taken as a bare refresh token
 * (with no previous one).  Saving updates the existing item in place (and
 * removes duplicates) rather than adding one.  Changing data never goes
 * into attributes (that would create duplicate items).
 *
 * Items without a grant attribute (oasmtp 0.1.0: service, account, user;
 * or made with `secret-tool store service oasmtp account A user U`) are
 * still found when the grant has no item: first by the account's name and
 * user, else the one such item of the user (the name may be an alias of
 * the one that stored it).  Such an item is migrated in place: it gets the
 * grant's attributes, so it is never found twice.
 *
 * Failure modes are told apart (doc/design.md, Tokens):
 *   no session bus / no Secret Service  -> ERR_TOKEN_TEMP
 *   item found but its collection locked -> ERR_TOKEN_TEMP (never unlocked
 *                                           here: that could prompt)
 *   no item                              -> ERR_REAUTH
 * GLib and libsecret are entered only from load/save/erase, never when the
 * store is merely opened, so the cached-token path does not touch them.
 */
#include "tstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libsecret/secret.h>

#include "account.h"
#include "buf.h"
#include "token_cache.h"
#include "util.h"

#define SECRET_MAX (64 * 1024)

static const SecretSchema schema = {
	"org.oasmtp.RefreshToken", SECRET_SCHEMA_DONT_MATCH_NAME,
	{
		{ "service", SECRET_SCHEMA_ATTRIBUTE_STRING },
		{ "grant", SECRET_SCHEMA_ATTRIBUTE_STRING },
		{ "account", SECRET_SCHEMA_ATTRIBUTE_STRING },
		{ "user", SECRET_SCHEMA_ATTRIBUTE_STRING },
		{ NULL, 0 },
	},
	0, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
};

/* The attributes a search needs: names point into acc or into id. */
enum attrs_kind {
	ATTRS_GRANT,		/* search for the grant's item */
	ATTRS_STORE,		/* store: the grant's, plus user and account */
	ATTRS_LEGACY_NAME,	/* 0.1.0: account name and user */
	ATTRS_LEGACY_USER,	/* 0.1.0 under another name: the user */
};

static GHashTable *
attributes(const struct account *acc, const char *id, enum attrs_kind kind)
{
	GHashTable *h = g_hash_table_new(g_str_hash, g_str_equal);
	const char *user = acc->user != NULL ? acc->user : "";
	const char *name = acc->name != NULL ? acc->name : "";

	g_hash_table_insert(h, (gpointer)"service", (gpointer)"oasmtp");
	if (kind == ATTRS_GRANT || kind == ATTRS_STORE) {
		g_hash_table_insert(h, (gpointer)"grant", (gpointer)id);
	}
	if (kind != ATTRS_GRANT) {
		g_hash_table_insert(h, (gpointer)"user", (gpointer)user);
	}
	if (kind == ATTRS_STORE || kind == ATTRS_LEGACY_NAME) {
		g_hash_table_insert(h, (gpointer)"account", (gpointer)name);
	}
	return h;
}

/* 1 when the item has no grant attribute (written by 0.1.0 or by hand). */
static int
is_legacy(SecretItem *it)
{
	GHashTable *a = secret_item_get_attributes(it);
	int legacy = a == NULL || g_hash_table_lookup(a, "grant") == NULL;

	if (a != NULL) {
		g_hash_table_unref(a);
	}
	return legacy;
}

static MUST_CHECK enum err
no_service(const struct account *acc, GError *gerr, struct errinfo *reterr)
{
	enum err e = errinfo_set(reterr, ERR_TOKEN_TEMP,
		"no Secret Service reachable for account '%s' (no D-Bus session, "
		"e.g. cron without a user session?): %s", acc->name,
		gerr != NULL ? gerr->message : "unknown error");

	g_clear_error(&gerr);
	return e;
}

/*
 * Search with attrs; with legacy, only items without a grant attribute
 * count.  Returns the matches (a new list) and their number in *ret_n.
 */
static GList *
search(SecretService *service, GHashTable *attrs, int legacy, size_t *ret_n,
	GError **gerr)
{
	GList *items, *l, *keep = NULL;

	*ret_n = 0;
	items = secret_service_search_sync(service, &schema, attrs,
		SECRET_SEARCH_ALL | SECRET_SEARCH_LOAD_SECRETS, NULL, gerr);
	g_hash_table_unref(attrs);
	for (l = items; l != NULL; l = l->next) {
		if (!legacy || is_legacy(l->data)) {
			keep = g_list_prepend(keep, g_object_ref(l->data));
			(*ret_n)++;
		}
	}
	g_list_free_full(items, g_object_unref);
	return g_list_reverse(keep);
}

/*
 * Find the item.  *ret_item is the first unlocked match (a new reference)
 * or NULL; *ret_locked is set when only locked matches exist.  The grant's
 * own item first; else a 0.1.0 item (see the top), migrated in place.
 */
static MUST_CHECK enum err
find(const struct account *acc, SecretService **ret_service,
	SecretItem **ret_item, int *ret_locked, struct errinfo *reterr)
{
	SecretService *service;
	GError *gerr = NULL;
	GList *items, *l;
	char id[33];
	size_t n = 0;
	int legacy = 0;

	*ret_item = NULL;
	*ret_locked = 0;
	token_grant_id(acc, id);
	service = secret_service_get_sync(SECRET_SERVICE_OPEN_SESSION, NULL,
		&gerr);
	if (service == NULL) {
		secret_service_disconnect();
		return no_service(acc, gerr, reterr);
	}
	items = search(service, attributes(acc, id, ATTRS_GRANT), 0, &n,
		&gerr);
	if (gerr == NULL && n == 0) {
		legacy = 1;
		items = search(service, attributes(acc, id, ATTRS_LEGACY_NAME),
			1, &n, &gerr);
	}
	if (gerr == NULL && n == 0) {
		items = search(service, attributes(acc, id, ATTRS_LEGACY_USER),
			1, &n, &gerr);
		if (n > 1) {
			/* several accounts' items: not ours to pick */
			g_list_free_full(items, g_object_unref);
			items = NULL;
		}
	}
	if (gerr != NULL) {
		g_list_free_full(items, g_object_unref);
		g_object_unref(service);
		secret_service_disconnect();
		return no_service(acc, gerr, reterr);
	}
	for (l = items; l != NULL; l = l->next) {
		SecretItem *it = l->data;

		if (secret_item_get_locked(it)) {
			*ret_locked = 1;
		} else if (*ret_item == NULL) {
			*ret_item = g_object_ref(it);
		}
	}
	g_list_free_full(items, g_object_unref);
	if (legacy && *ret_item != NULL) {
		GHashTable *attrs = attributes(acc, id, ATTRS_STORE);

		/* best effort: unmigrated, it is found the same way next time */
		(void)secret_item_set_attributes_sync(*ret_item, &schema, attrs,
			NULL, NULL);
		g_hash_table_unref(attrs);
	}
	*ret_service = service;
	return ERR_OK;
}

/* Append the non-empty string member key of root to ret (absent is ERR_OK). */
static MUST_CHECK enum err
json_member(struct json_object *root, const char *key, int required,
	struct buf *ret)
{
	struct json_object *v = NULL;
	enum err e;

	if (!json_object_object_get_ex(root, key, &v)) {
		return required ? ERR_DATA : ERR_OK;
	}
	if (!json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) <= 0) {
		return ERR_DATA;
	}
	e = buf_append(ret, json_object_get_string(v),
		(size_t)json_object_get_string_len(v));
	util_wipe((void *)json_object_get_string(v),
		(size_t)json_object_get_string_len(v));
	return e;
}

/*
 * The secret is our JSON object, or a bare refresh token as `secret-tool
 * store` users write it.  Only a secret that starts with '{' is JSON: a
 * bare token such as "6oFH..." or "-x..." must not be taken for a JSON
 * number.  ret_prev (may be NULL) gets the previous refresh token, if any.
 */
static MUST_CHECK enum err
parse_secret(const char *p, size_t n, struct buf *ret_token,
	struct buf *ret_prev)
{
	struct json_tokener *tok;
	struct json_object *root = NULL;
	enum err e = ERR_DATA;

	while (n > 0 && strchr(" \t\r\n", p[n - 1]) != NULL) {
		n--;
	}
	while (n > 0 && strchr(" \t\r\n", p[0]) != NULL) {
		p++;
		n--;
	}
	if (n == 0 || memchr(p, '\0', n) != NULL) {
		return ERR_DATA;
	}
	if (p[0] != '{') {
		return buf_append(ret_token, p, n);
	}
	tok = json_tokener_new_ex(4);
	if (tok != NULL) {
		root = json_tokener_parse_ex(tok, p, (int)n);
		json_tokener_free(tok);
	}
	if (root != NULL && json_object_is_type(root, json_type_object)) {
		e = json_member(root, "refresh_token", 1, ret_token);
		if (e == ERR_OK && ret_prev != NULL) {
			e = json_member(root, "previous_refresh_token", 0,
				ret_prev);
		}
	}
	if (root != NULL) {
		json_object_put(root);
	}
	return e;
}

/* Read the item: the refresh token and (ret_prev may be NULL) the previous. */
static MUST_CHECK enum err
read_item(struct tstore *ts, struct buf *ret_token, struct buf *ret_prev,
	struct errinfo *reterr)
{
	SecretService *service = NULL;
	SecretItem *item = NULL;
	SecretValue *value = NULL;
	const char *p;
	gsize n = 0;
	int locked = 0;
	enum err e;

	e = find(ts->acc, &service, &item, &locked, reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (item == NULL && locked) {
		e = errinfo_set(reterr, ERR_TOKEN_TEMP,
			"the keyring holding the refresh token of account '%s' is "
			"locked: unlock it (log in to the desktop, or run "
			"`oasmtp-token print %s` in a session) and retry",
			ts->acc->name, ts->acc->name);
		goto out;
	}
	if (item == NULL) {
		e = errinfo_set(reterr, ERR_REAUTH,
			"re-authorization needed: run `oasmtp-token authorize %s` "
			"(no refresh token in the Secret Service)", ts->acc->name);
		goto out;
	}
	value = secret_item_get_secret(item);
	if (value == NULL) {
		e = errinfo_set(reterr, ERR_TOKEN_TEMP,
			"cannot read the refresh token of account '%s' from the "
			"Secret Service", ts->acc->name);
		goto out;
	}
	p = secret_value_get(value, &n);
	if (n > SECRET_MAX ||
	    parse_secret(p, n, ret_token, ret_prev) != ERR_OK) {
		buf_reset(ret_token);
		if (ret_prev != NULL) {
			buf_reset(ret_prev);
		}
		e = errinfo_set(reterr, ERR_CONFIG,
			"the Secret Service item of account '%s' does not hold a "
			"refresh token: run `oasmtp-token authorize %s`",
			ts->acc->name, ts->acc->name);
	}
out:
	if (value != NULL) {
		secret_value_unref(value);
	}
	if (item != NULL) {
		g_object_unref(item);
	}
	g_object_unref(service);
	/* do not keep a proxy to a daemon that may be replaced before next use */
	secret_service_disconnect();
	return e;
}

/* A JSON string with escaping, appended to out. */
static MUST_CHECK enum err
encode_string(struct buf *out, const char *s)
{
	enum err e = buf_putc(out, '"');

	for (; *s != '\0' && e == ERR_OK; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			e = buf_putc(out, '\\');
			if (e == ERR_OK) {
				e = buf_putc(out, (char)c);
			}
		} else if (c < 0x20) {
			e = buf_printf(out, "\\u%04x", c);
		} else {
			e = buf_putc(out, (char)c);
		}
	}
	if (e == ERR_OK) {
		e = buf_putc(out, '"');
	}
	return e;
}

/*
 * {"refresh_token":"..."} into a secret buf, with "previous_refresh_token"
 * when prev is not NULL.
 */
static MUST_CHECK enum err
encode_secret(struct buf *out, const char *token)
{
	enum err e = buf_append_str(out, "{\"refresh_token\":");

	if (e == ERR_OK) {
		e = encode_string(out, token);
	}
	if (e == ERR_OK) {
		e = buf_putc(out, '}');
	}
	return e;
}

/*
 * Replace the secret of the account's unlocked items: the first one gets
 * data, the others (duplicates left by older versions or other tools) are
 * deleted, so a later load cannot pick a consumed token.  *ret_done is 0
 * when there was no unlocked item to update.
 */
static MUST_CHECK enum err
update_items(const struct account *acc, SecretService *service,
	const struct buf *data, int *ret_done, struct errinfo *reterr)
{
	char id[33];
	GHashTable *attrs;
	GError *gerr = NULL;
	GList *items, *l;
	enum err e = ERR_OK;

	*ret_done = 0;
	token_grant_id(acc, id);
	attrs = attributes(acc, id, ATTRS_GRANT);
	items = secret_service_search_sync(service, &schema, attrs,
		SECRET_SEARCH_ALL, NULL, &gerr);
	g_hash_table_unref(attrs);
	if (gerr != NULL) {
		return no_service(acc, gerr, reterr);
	}
	for (l = items; l != NULL && e == ERR_OK; l = l->next) {
		SecretItem *it = l->data;
		SecretValue *value;

		if (secret_item_get_locked(it)) {
			continue;
		}
		if (*ret_done) {
			(void)secret_item_delete_sync(it, NULL, NULL);
			continue;
		}
		value = secret_value_new(data->data, (gssize)data->len,
			"text/plain");
		if (!secret_item_set_secret_sync(it, value, NULL, &gerr)) {
			e = errinfo_set(reterr, ERR_TOKEN_TEMP, "cannot update the "
				"refresh token of account '%s' in the Secret "
				"Service: %s", acc->name,
				gerr != NULL ? gerr->message : "unknown error");
			g_clear_error(&gerr);
		} else {
			*ret_done = 1;
		}
		secret_value_unref(value);
	}
	g_list_free_full(items, g_object_unref);
	return e;
}

/* Store token (alone: a 0.1.0 previous token goes): one update. */
static MUST_CHECK enum err
write_item(struct tstore *ts, const char *token, struct errinfo *reterr)
{
	SecretService *service = NULL;
	SecretItem *item = NULL;
	GHashTable *attrs;
	GError *gerr = NULL;
	struct buf data;
	char label[256], id[33];
	int locked = 0, done = 0;
	enum err e;

	/* refuse early on a locked keyring rather than risk a prompt */
	e = find(ts->acc, &service, &item, &locked, reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (item == NULL && locked) {
		g_object_unref(service);
		secret_service_disconnect();
		return errinfo_set(reterr, ERR_TOKEN_TEMP,
			"the keyring for account '%s' is locked: unlock it (log "
			"in to the desktop) and try again",
			ts->acc->name);
	}
	buf_init_secret(&data, SECRET_MAX);
	e = encode_secret(&data, token);
	if (e != ERR_OK) {
		e = errinfo_set(reterr, e, "refresh token too large");
		goto out;
	}
	if (item != NULL) {
		e = update_items(ts->acc, service, &data, &done, reterr);
	}
	if (e != ERR_OK || done) {
		goto out;
	}
	snprintf(label, sizeof(label), "oasmtp OAuth2 refresh token (%s)",
		ts->acc->name);
	token_grant_id(ts->acc, id);
	attrs = attributes(ts->acc, id, ATTRS_STORE);
	if (!secret_password_storev_sync(&schema, attrs, SECRET_COLLECTION_DEFAULT,
		    label, buf_cstr(&data), NULL, &gerr)) {
		e = errinfo_set(reterr, ERR_TOKEN_TEMP,
			"cannot store the refresh token of account '%s' in the "
			"Secret Service: %s", ts->acc->name,
			gerr != NULL ? gerr->message : "unknown error");
		g_clear_error(&gerr);
	}
	g_hash_table_unref(attrs);
out:
	if (item != NULL) {
		g_object_unref(item);
	}
	g_object_unref(service);
	buf_release(&data);
	secret_service_disconnect();
	return e;
}

static MUST_CHECK enum err
secret_load(struct tstore *ts, struct buf *ret_token, struct errinfo *reterr)
{
	return read_item(ts, ret_token, NULL, reterr);
}

static MUST_CHECK enum err
secret_save(struct tstore *ts, const char *token, struct errinfo *reterr)
{
	return write_item(ts, token, reterr);
}

static MUST_CHECK enum err
secret_drop_previous(struct tstore *ts, struct errinfo *reterr)
{
	struct buf cur, prev;
	enum err e;

	buf_init_secret(&cur, SECRET_MAX);
	buf_init_secret(&prev, SECRET_MAX);
	e = read_item(ts, &cur, &prev, reterr);
	if (e == ERR_REAUTH) {
		errinfo_release(reterr);
		e = ERR_OK;
	} else if (e == ERR_OK && prev.len > 0) {
		/* rewrite the item with the current token alone */
		e = write_item(ts, cur.data, reterr);
	}
	buf_release(&cur);
	buf_release(&prev);
	return e;
}

static MUST_CHECK enum err
secret_erase(struct tstore *ts, struct errinfo *reterr)
{
	SecretService *service = NULL;
	SecretItem *item = NULL;
	GHashTable *attrs;
	GError *gerr = NULL;
	char id[33];
	int locked = 0;
	enum err e;

	/* find() migrates a 0.1.0 item first, so it goes too */
	e = find(ts->acc, &service, &item, &locked, reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (item != NULL) {
		g_object_unref(item);
	}
	g_object_unref(service);
	token_grant_id(ts->acc, id);
	attrs = attributes(ts->acc, id, ATTRS_GRANT);
	secret_password_clearv_sync(&schema, attrs, NULL, &gerr);
	if (gerr != NULL) {
		e = no_service(ts->acc, gerr, reterr);
	}
	g_hash_table_unref(attrs);
	secret_service_disconnect();
	return e;
}

static const struct tstore_ops secret_ops = {
	.name = "secret-service",
	.load = secret_load,
	.save = secret_save,
	.erase = secret_erase,
	.drop_previous = secret_drop_previous,
	.close = NULL,
};

enum err
tstore_secret_new(const struct account *acc, struct tstore **ret_store,
	struct errinfo *reterr)
{
	struct tstore *ts = calloc(1, sizeof(*ts));

	if (ts == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	ts->ops = &secret_ops;
	ts->acc = acc;
	ts->arg = NULL;
	*ret_store = ts;
	return ERR_OK;
}

/*
 * msmtp's Secret Service entries (tstore.h: tstore_msmtp_password): its
 * schema first, then the old network-password schema, as msmtp reads them.
 * Only unlocked items are read: nothing here unlocks (that could prompt).
 */
static const SecretSchema msmtp_schema = {
	"de.marlam.msmtp.password", SECRET_SCHEMA_DONT_MATCH_NAME,
	{
		{ "host", SECRET_SCHEMA_ATTRIBUTE_STRING },
		{ "service", SECRET_SCHEMA_ATTRIBUTE_STRING },
		{ "user", SECRET_SCHEMA_ATTRIBUTE_STRING },
		{ NULL, 0 },
	},
	0, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
};

/* The first unlocked item of schema with attrs, its secret into out. */
static MUST_CHECK enum err
msmtp_search(SecretService *service, const SecretSchema *sch,
	GHashTable *attrs, struct buf *out, int *ret_found, int *ret_locked,
	GError **gerr)
{
	GList *items, *l;
	enum err e = ERR_OK;

	items = secret_service_search_sync(service, sch, attrs,
		SECRET_SEARCH_ALL | SECRET_SEARCH_LOAD_SECRETS, NULL, gerr);
	for (l = items; l != NULL && !*ret_found && e == ERR_OK; l = l->next) {
		SecretItem *it = l->data;
		SecretValue *v;
		const gchar *text;
		gsize n = 0;

		if (secret_item_get_locked(it)) {
			*ret_locked = 1;
			continue;
		}
		v = secret_item_get_secret(it);
		if (v == NULL) {
			continue;
		}
		text = secret_value_get(v, &n);
		if (text != NULL && n > 0) {
			e = buf_append(out, text, n);
			*ret_found = e == ERR_OK;
		}
		secret_value_unref(v);
	}
	g_list_free_full(items, g_object_unref);
	return e;
}

enum err
tstore_msmtp_password(const char *host, const char *user, struct buf *out,
	int *ret_found, struct errinfo *reterr)
{
	SecretService *service;
	GHashTable *attrs;
	GError *gerr = NULL;
	int locked = 0;
	enum err e;

	*ret_found = 0;
	service = secret_service_get_sync(SECRET_SERVICE_OPEN_SESSION, NULL,
		&gerr);
	if (service == NULL) {
		secret_service_disconnect();
		e = errinfo_set(reterr, ERR_TOKEN_TEMP, "no Secret Service "
			"reachable (no D-Bus session?): %s", gerr != NULL ?
			gerr->message : "unknown error");
		g_clear_error(&gerr);
		return e;
	}
	attrs = g_hash_table_new(g_str_hash, g_str_equal);
	g_hash_table_insert(attrs, (gpointer)"host", (gpointer)host);
	g_hash_table_insert(attrs, (gpointer)"service", (gpointer)"smtp");
	g_hash_table_insert(attrs, (gpointer)"user", (gpointer)user);
	e = msmtp_search(service, &msmtp_schema, attrs, out, ret_found,
		&locked, &gerr);
	g_hash_table_unref(attrs);
	if (e == ERR_OK && !*ret_found && gerr == NULL) {
		attrs = g_hash_table_new(g_str_hash, g_str_equal);
		g_hash_table_insert(attrs, (gpointer)"user", (gpointer)user);
		g_hash_table_insert(attrs, (gpointer)"server", (gpointer)host);
		g_hash_table_insert(attrs, (gpointer)"protocol",
			(gpointer)"smtp");
		e = msmtp_search(service, SECRET_SCHEMA_COMPAT_NETWORK, attrs,
			out, ret_found, &locked, &gerr);
		g_hash_table_unref(attrs);
	}
	g_object_unref(service);
	secret_service_disconnect();
	if (e != ERR_OK) {
		g_clear_error(&gerr);
		return errinfo_set(reterr, e, "out of memory");
	}
	if (gerr != NULL) {
		e = errinfo_set(reterr, ERR_TOKEN_TEMP, "the Secret Service "
			"failed: %s", gerr->message);
		g_clear_error(&gerr);
		return e;
	}
	if (!*ret_found && locked) {
		return errinfo_set(reterr, ERR_TOKEN_TEMP, "the password for "
			"%s at %s is in a locked keyring; unlock it (log in to "
			"the desktop session) and try again", user, host);
	}
	return ERR_OK;
}
