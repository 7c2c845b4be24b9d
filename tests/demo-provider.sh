# shellcheck shell=sh
# The local demo provider, for scripts that source this file
# (tests/demo.sh, tests/debian-test.sh).  Like Gmail or Microsoft 365 it
# has two parts, both on 127.0.0.1 with ephemeral ports:
#
#   - an OAuth2 authorization server: the npm package oidc-provider
#     (tests/oauth/oidc_server.mjs, HTTPS, refresh tokens rotated on every
#     use);
#   - a submission server: the aiosmtpd server of the integration rig
#     (tests/integration/aiosmtpd_server.py) requiring STARTTLS and
#     accepting XOAUTH2 with exactly the access tokens that provider
#     currently honours (its --tokens-file).
#
# The caller sets ROOT (the source tree) and PY (/usr/bin/python3) and
# defines two functions: say MESSAGE (one progress line) and fail MESSAGE
# (print it and exit).  POSIX sh; works under `set -eu`.
#
#   provider_start DIR    make a throw-away CA and a certificate for
#                         127.0.0.1 in DIR/certs, start both servers
#                         (files in DIR/op, the spool in DIR/spool, logs in
#                         DIR/op/oidc.log and DIR/server.log); sets CA,
#                         CERT, KEY, ISSUER, PORT, CLIENT_ID, CLIENT_SECRET
#                         (the file holding it), USER_ADDR, OP_PID, SERVER_PID
#   provider_authorize STORE [AT_FILE]
#                         play the user once on the login and consent pages
#                         (authorization code + PKCE, tests/oauth/oidc_rig.py)
#                         and write the refresh token granted to STORE
#                         (0600), the access token to AT_FILE
#   provider_refreshes    print how many refresh-token requests the OAuth2
#                         server has answered
#   provider_stop         stop both servers (by PID); safe to call twice
#
# PROVIDER_MAX_SECONDS (default 300) bounds the OAuth2 server's life; the
# submission server lives until provider_stop, which the caller's EXIT trap
# must run.

USER_ADDR=demo.user@example.org
CLIENT_ID=oasmtp-demo
OP_PID=
SERVER_PID=

# provider_wait_port FILE PID LOG: print the port a server wrote to FILE;
# prints LOG and returns 1 when the server died or took over 15 s
provider_wait_port() {
	_i=0
	while [ ! -s "$1" ]; do
		if ! kill -0 "$2" 2>/dev/null || [ $_i -ge 150 ]; then
			cat "$3" >&2
			return 1
		fi
		_i=$((_i + 1))
		sleep 0.1
	done
	cat "$1"
}

provider_start() {
	_dir=$1
	[ -d "$ROOT/tests/oauth/node_modules/oidc-provider" ] ||
		fail "tests/oauth/node_modules is missing: run .ci/install-deps (npm ci in tests/oauth)"
	_node=$(command -v node) || fail "node is not installed: run .ci/install-deps"
	mkdir -p "$_dir/op"
	chmod 700 "$_dir/op"
	CLIENT_SECRET=$_dir/op/client_secret
	(umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' \
		>"$CLIENT_SECRET") || fail "cannot write $CLIENT_SECRET"

	say "making a test CA in $_dir/certs"
	_paths=$("$PY" - "$_dir/certs" "$ROOT/tests/servers" <<'EOF'
import shlex, sys
sys.path.insert(0, sys.argv[2])
from certs import make_certs
p = make_certs(sys.argv[1])
print("CA=%s CERT=%s KEY=%s" % tuple(shlex.quote(p[k]) for k in ("ca", "cert", "key")))
EOF
) || fail "could not make certificates"
	eval "$_paths"

	say "starting the provider's OAuth2 server (oidc-provider)"
	(cd "$ROOT/tests/oauth" && exec "$_node" oidc_server.mjs \
		--cert "$CERT" --key "$KEY" --port-file "$_dir/op/port" \
		--tokens-file "$_dir/op/valid_access_tokens" \
		--client-id "$CLIENT_ID" --client-secret-file "$CLIENT_SECRET" \
		--at-ttl 3600 --max-seconds "${PROVIDER_MAX_SECONDS:-300}") \
		>"$_dir/op/oidc.log" 2>&1 </dev/null &
	OP_PID=$!
	_port=$(provider_wait_port "$_dir/op/port" "$OP_PID" \
		"$_dir/op/oidc.log") || fail "oidc-provider did not start within 15 s"
	ISSUER=https://127.0.0.1:$_port
	say "  issuer $ISSUER, token endpoint $ISSUER/token"

	say "starting the provider's submission server (aiosmtpd, STARTTLS + XOAUTH2)"
	"$PY" "$ROOT/tests/integration/aiosmtpd_server.py" \
		--spool "$_dir/spool" --port-file "$_dir/port" \
		--cert "$CERT" --key "$KEY" --require-starttls \
		--user "$USER_ADDR" --token-file "$_dir/op/valid_access_tokens" \
		--mechanisms XOAUTH2,OAUTHBEARER \
		>"$_dir/server.log" 2>&1 </dev/null &
	SERVER_PID=$!
	PORT=$(provider_wait_port "$_dir/port" "$SERVER_PID" \
		"$_dir/server.log") ||
		fail "the submission server did not start within 15 s"
	say "  127.0.0.1:$PORT, accepts only access tokens issued by $ISSUER"
}

provider_authorize() {
	say "authorizing once as $USER_ADDR (login + consent pages, code + PKCE)"
	"$PY" "$ROOT/tests/oauth/oidc_rig.py" authorize "$ISSUER" "$CA" \
		"$CLIENT_ID" "$CLIENT_SECRET" "$1" ${2:+"$2"} ||
		fail "could not obtain a refresh token from the provider"
}

provider_refreshes() {
	"$PY" -c 'import json, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = json.load(urllib.request.urlopen(sys.argv[1], context=ctx, timeout=10))
print(s["by_grant_type"].get("refresh_token", 0))' "$ISSUER/stats" "$CA"
}

provider_stop() {
	for _pid in $SERVER_PID $OP_PID; do
		kill "$_pid" 2>/dev/null || true
		wait "$_pid" 2>/dev/null || true
	done
	SERVER_PID=
	OP_PID=
}
