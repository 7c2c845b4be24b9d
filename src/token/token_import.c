/* token_import.c - the input of `oasmtp-token import`; see token_import.h. */
#include "token_import.h"

#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "util.h"

static const char expected[] = "expected one refresh token, or a JSON "
	"token file with a \"refresh_token\" member (mutt_oauth2.py, oama, "
	"sasl-xoauth2); nothing was stored";

/* 1 when s (n bytes) can be a refresh token: visible ASCII, no quotes. */
static int
token_shaped(const char *s, size_t n)
{
	size_t i;

	if (n == 0) {
		return 0;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\'' ||
		    c == '{' || c == '}' || c == '\\') {
			return 0;
		}
	}
	return 1;
}

static MUST_CHECK enum err
from_json(const char *p, size_t n, struct buf *ret_rt, struct errinfo *reterr)
{
	struct json_tokener *tok = json_tokener_new_ex(16);
	struct json_object *root = NULL, *v = NULL;
	enum err e;

	if (tok != NULL) {
		root = json_tokener_parse_ex(tok, p, (int)n);
		if (root != NULL && json_tokener_get_parse_end(tok) != n) {
			json_object_put(root);
			root = NULL;
		}
		json_tokener_free(tok);
	}
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		e = errinfo_set(reterr, ERR_DATA, "import: the input starts "
			"with '{' but is not a JSON object; %s", expected);
	} else if (!json_object_object_get_ex(root, "refresh_token", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		e = errinfo_set(reterr, ERR_DATA, "import: the JSON object has "
			"no \"refresh_token\" string; %s", expected);
	} else if (!token_shaped(json_object_get_string(v),
	    (size_t)json_object_get_string_len(v))) {
		e = errinfo_set(reterr, ERR_DATA, "import: the JSON "
			"\"refresh_token\" is empty or holds blanks, quotes or "
			"control characters; %s", expected);
	} else {
		e = buf_append(ret_rt, json_object_get_string(v),
			(size_t)json_object_get_string_len(v));
		if (e != ERR_OK) {
			e = errinfo_set(reterr, e, "import: refresh token too "
				"large");
		}
	}
	if (v != NULL && json_object_is_type(v, json_type_string)) {
		util_wipe((void *)json_object_get_string(v),
			(size_t)json_object_get_string_len(v));
	}
	if (root != NULL) {
		json_object_put(root);
	}
	return e;
}

enum err
token_import_parse(const char *text, size_t len, struct buf *ret_rt,
	const char **ret_form, struct errinfo *reterr)
{
	const char *p = text;
	size_t n = len;
	enum err e;

	buf_reset(ret_rt);
	if (n > TOKEN_IMPORT_MAX) {
		return errinfo_set(reterr, ERR_DATA, "import: the input is "
			"larger than %d bytes; %s", TOKEN_IMPORT_MAX, expected);
	}
	while (n > 0 && strchr(" \t\r\n", p[n - 1]) != NULL) {
		n--;
	}
	while (n > 0 && strchr(" \t\r\n", p[0]) != NULL) {
		p++;
		n--;
	}
	if (n == 0) {
		return errinfo_set(reterr, ERR_DATA, "import: the input is "
			"empty; %s", expected);
	}
	if (memchr(p, '\0', n) != NULL) {
		return errinfo_set(reterr, ERR_DATA, "import: the input holds "
			"a NUL byte; %s", expected);
	}
	if (p[0] == '{') {
		e = from_json(p, n, ret_rt, reterr);
		if (e == ERR_OK && ret_form != NULL) {
			*ret_form = "JSON";
		}
		return e;
	}
	if (!token_shaped(p, n)) {
		return errinfo_set(reterr, ERR_DATA, "import: the input is not "
			"one word of printable ASCII; %s", expected);
	}
	e = buf_append(ret_rt, p, n);
	if (e != ERR_OK) {
		return errinfo_set(reterr, e, "import: refresh token too large");
	}
	if (ret_form != NULL) {
		*ret_form = "bare";
	}
	return ERR_OK;
}
