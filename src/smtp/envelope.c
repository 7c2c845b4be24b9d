/* envelope.c - the SMTP envelope: release and recipient subsets; see envelope.h. */
#include "envelope.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
envelope_release(struct envelope *env)
{
	size_t i;

	if (env == NULL) {
		return;
	}
	free(env->from);
	for (i = 0; i < env->n_rcpts; i++) {
		free(env->rcpts[i]);
	}
	free(env->rcpts);
	free(env->dsn_notify);
	free(env->dsn_return);
	free(env->dsn_envid);
	memset(env, 0, sizeof(*env));
}

/* Whether recipient i is in the subset: its flag equals want. */
static int
selected(const unsigned char *delivered, size_t i, int want)
{
	return (delivered != NULL && delivered[i]) == (want != 0);
}

size_t
envelope_rcpt_count(const struct envelope *env,
	const unsigned char *delivered, int want)
{
	size_t i, n = 0;

	for (i = 0; i < env->n_rcpts; i++) {
		n += selected(delivered, i, want);
	}
	return n;
}

enum err
envelope_rcpt_list(const struct envelope *env,
	const unsigned char *delivered, int want, struct buf *out)
{
	size_t i, shown = 0, n = envelope_rcpt_count(env, delivered, want);
	enum err e = ERR_OK;

	for (i = 0; i < env->n_rcpts && shown < ENVELOPE_LIST_MAX &&
	    e == ERR_OK; i++) {
		if (!selected(delivered, i, want)) {
			continue;
		}
		e = buf_printf(out, "%s<%s>", shown > 0 ? ", " : "",
			env->rcpts[i]);
		shown++;
	}
	if (e == ERR_OK && n > shown) {
		e = buf_printf(out, " and %zu more", n - shown);
	}
	return e;
}

enum err
envelope_part(const struct envelope *env, const unsigned char *delivered,
	int want, struct envelope *ret, struct errinfo *reterr)
{
	size_t i;

	*ret = *env;
	ret->n_rcpts = 0;
	ret->rcpts = calloc(env->n_rcpts + 1, sizeof(*ret->rcpts));
	if (ret->rcpts == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	for (i = 0; i < env->n_rcpts; i++) {
		if (selected(delivered, i, want)) {
			ret->rcpts[ret->n_rcpts++] = env->rcpts[i];
		}
	}
	return ERR_OK;
}
