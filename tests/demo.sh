#!/bin/sh
# The main job, end to end, on loopback (README: ".ci/install-deps && tests/demo.sh"):
#
#   1. make a throw-away test CA and a server certificate for 127.0.0.1
#      (tests/servers/certs.py);
#   2. start a local demo provider, in two parts like Gmail or Microsoft 365:
#      - its OAuth2 authorization server: the npm package oidc-provider
#        (tests/oauth/oidc_server.mjs, HTTPS, refresh tokens rotated on
#        every use);
#      - its submission server: the aiosmtpd server of the integration rig
#        (tests/integration/aiosmtpd_server.py) requiring STARTTLS and
#        accepting XOAUTH2 with exactly the access tokens that provider
#        currently honours (its --tokens-file);
#   3. play the user once on the provider's login and consent pages
#      (authorization code + PKCE, tests/oauth/oidc_rig.py) and put the
#      refresh token it grants in a file token store;
#   4. write a config like a Gmail / Microsoft one (STARTTLS, CA pinned to
#      the test CA, auth xoauth2, oauth2_* keys pointing at the provider);
#   5. pipe a message into `oasmtp -C CONFIG -t` in a cron-like empty
#      environment: it refreshes the access token (the provider rotates the
#      refresh token, oasmtp saves the new one) and sends; a second message
#      reuses the cached access token.  Show where they arrived and how many
#      token requests the provider saw.
#
# OASMTP_BIN selects the binary (default: build it in build-demo/).
# OASMTP_BIN=/usr/bin/msmtp tests/demo.sh runs the same flow with msmtp,
# which cannot refresh: it gets the first access token from passwordeval.
# Needs node and `npm ci` in tests/oauth (.ci/install-deps does both).
# The demo directory is kept for inspection; its path is printed at the end.
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=/usr/bin/python3

fail() {
	echo "demo: FAILED: $*" >&2
	exit 1
}

# -- the binary ---------------------------------------------------------------
if [ -z "${OASMTP_BIN:-}" ]; then
	if [ ! -f build-demo/build.ninja ]; then
		echo "demo: configuring build-demo/"
		meson setup build-demo >/dev/null || fail "meson setup failed"
	fi
	echo "demo: building oasmtp"
	ninja -C build-demo >/dev/null || fail "build failed (ninja -C build-demo)"
	OASMTP_BIN=$ROOT/build-demo/src/oasmtp
fi
[ -x "$OASMTP_BIN" ] || fail "no executable at $OASMTP_BIN"
case $(basename "$OASMTP_BIN") in
msmtp*) MODE=msmtp ;;
*) MODE=oasmtp ;;
esac
[ -d "$ROOT/tests/oauth/node_modules/oidc-provider" ] ||
	fail "tests/oauth/node_modules is missing: run .ci/install-deps (npm ci in tests/oauth)"
NODE=$(command -v node) || fail "node is not installed: run .ci/install-deps"

DEMO=$(mktemp -d "${TMPDIR:-/tmp}/oasmtp-demo.XXXXXX")
mkdir -m 700 "$DEMO/home" "$DEMO/op"
SERVER_PID=
OP_PID=
cleanup() {
	for pid in $SERVER_PID $OP_PID; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_port FILE PID WHAT LOG: print the port a server wrote to FILE
wait_port() {
	i=0
	while [ ! -s "$1" ]; do
		kill -0 "$2" 2>/dev/null ||
			{ cat "$4" >&2; fail "$3 did not start"; }
		i=$((i + 1))
		[ $i -lt 150 ] || fail "$3 did not start within 15 s"
		sleep 0.1
	done
	cat "$1"
}

# refreshes: how many refresh-token requests the provider has answered
refreshes() {
	"$PY" -c 'import json, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = json.load(urllib.request.urlopen(sys.argv[1], context=ctx, timeout=10))
print(s["by_grant_type"].get("refresh_token", 0))' "$ISSUER/stats" "$CA"
}

# fingerprint FILE: a short digest of a secret, never the secret itself
fingerprint() {
	sha256sum <"$1" | cut -c1-12
}

USER_ADDR=demo.user@example.org
CLIENT_ID=oasmtp-demo
umask 077
od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$DEMO/op/client_secret"

# -- 1. test CA ---------------------------------------------------------------
echo "demo: making a test CA in $DEMO/certs"
paths=$("$PY" - "$DEMO/certs" "$ROOT/tests/servers" <<'EOF'
import shlex, sys
sys.path.insert(0, sys.argv[2])
from certs import make_certs
p = make_certs(sys.argv[1])
print("CA=%s CERT=%s KEY=%s" % tuple(shlex.quote(p[k]) for k in ("ca", "cert", "key")))
EOF
) || fail "could not make certificates"
eval "$paths"

# -- 2. the demo provider -----------------------------------------------------
echo "demo: starting the provider's OAuth2 server (oidc-provider)"
(cd "$ROOT/tests/oauth" && exec "$NODE" oidc_server.mjs \
	--cert "$CERT" --key "$KEY" --port-file "$DEMO/op/port" \
	--tokens-file "$DEMO/op/valid_access_tokens" \
	--client-id "$CLIENT_ID" --client-secret-file "$DEMO/op/client_secret" \
	--at-ttl 3600 --max-seconds 300) \
	>"$DEMO/op/oidc.log" 2>&1 </dev/null &
OP_PID=$!
OP_PORT=$(wait_port "$DEMO/op/port" "$OP_PID" "oidc-provider" "$DEMO/op/oidc.log")
ISSUER=https://127.0.0.1:$OP_PORT
echo "demo:   issuer $ISSUER, token endpoint $ISSUER/token"

echo "demo: starting the provider's submission server (aiosmtpd, STARTTLS + XOAUTH2)"
"$PY" "$ROOT/tests/integration/aiosmtpd_server.py" \
	--spool "$DEMO/spool" --port-file "$DEMO/port" \
	--cert "$CERT" --key "$KEY" --require-starttls \
	--user "$USER_ADDR" --token-file "$DEMO/op/valid_access_tokens" \
	--mechanisms XOAUTH2,OAUTHBEARER \
	>"$DEMO/server.log" 2>&1 </dev/null &
SERVER_PID=$!
PORT=$(wait_port "$DEMO/port" "$SERVER_PID" "the submission server" "$DEMO/server.log")
echo "demo:   127.0.0.1:$PORT, accepts only access tokens issued by $ISSUER"

# -- 3. the user authorizes once ----------------------------------------------
echo "demo: authorizing once as $USER_ADDR (login + consent pages, code + PKCE)"
STORE=$DEMO/home/refresh-token
"$PY" "$ROOT/tests/oauth/oidc_rig.py" authorize "$ISSUER" "$CA" "$CLIENT_ID" \
	"$DEMO/op/client_secret" "$STORE" "$DEMO/op/first_access_token" ||
	fail "could not obtain a refresh token from the provider"
RT_BEFORE=$(fingerprint "$STORE")
echo "demo:   refresh token in file store $STORE (sha256 $RT_BEFORE...)"

# -- 4. the config ------------------------------------------------------------
CONFIG=$DEMO/home/oasmtprc
if [ "$MODE" = oasmtp ]; then
	CREDENTIALS="oauth2_provider custom
oauth2_client_id $CLIENT_ID
oauth2_client_secret $(cat "$DEMO/op/client_secret")
oauth2_token_endpoint $ISSUER/token
oauth2_scope smtp
oauth2_ca_file $CA
oauth2_token_store file:$STORE"
else
	CREDENTIALS="passwordeval cat $DEMO/op/first_access_token"
fi
cat >"$CONFIG" <<EOF
# Like a Gmail or Microsoft 365 account, pointed at the local demo provider.
account demo
host 127.0.0.1
port $PORT
tls on
tls_starttls on
tls_trust_file $CA
timeout 20
auth xoauth2
user $USER_ADDR
from $USER_ADDR
$CREDENTIALS

account default : demo
EOF
chmod 600 "$CONFIG"

# -- 5. send ------------------------------------------------------------------
# send N: one message in a cron-like empty environment
send() {
	before=$(refreshes)
	status=0
	env -i PATH=/usr/bin:/bin HOME="$DEMO/home" LC_ALL=C.UTF-8 \
		"$OASMTP_BIN" -C "$CONFIG" -t <<EOF >"$DEMO/oasmtp$1.out" 2>&1 || status=$?
From: Demo User <$USER_ADDR>
To: Friend <friend@example.net>
Bcc: hidden@example.net
Subject: Hello from oasmtp ($1)

This message went through STARTTLS and AUTH XOAUTH2 to the local
demo provider, with an access token from its OAuth2 server.
EOF
	echo "demo: message $1: exit status $status," \
		"token requests at the provider: $(($(refreshes) - before))"
	if [ -s "$DEMO/oasmtp$1.out" ]; then
		echo "demo: oasmtp said:"
		sed 's/^/    /' "$DEMO/oasmtp$1.out"
	fi
	if [ "$status" -ne 0 ]; then
		echo "demo: submission server log:" >&2
		sed 's/^/    /' "$DEMO/server.log" >&2
		fail "oasmtp exited with status $status (see above; files in $DEMO)"
	fi
}

echo "demo: sending with: $OASMTP_BIN -C $CONFIG -t"
send 1
if [ "$MODE" = oasmtp ]; then
	RT_AFTER=$(fingerprint "$STORE")
	[ "$RT_AFTER" != "$RT_BEFORE" ] ||
		fail "the provider rotated the refresh token but the store still has the old one"
	echo "demo:   refresh token rotated and saved: sha256 $RT_BEFORE... -> $RT_AFTER..."
fi
send 2

for meta in "$DEMO"/spool/[0-9]*.json; do
	[ -f "$meta" ] || fail "oasmtp exited 0 but nothing arrived in $DEMO/spool"
	eml=${meta%.json}.eml
	echo "demo: delivered: $eml"
	"$PY" -c 'import json, sys
m = json.load(open(sys.argv[1]))
print("    MAIL FROM:<%s>  RCPT TO:%s  tls=%s  authenticated=%s" % (
    m["mail_from"], ",".join("<%s>" % r for r in m["rcpt_tos"]),
    m["tls"], m["authenticated"]))' "$meta"
done
echo "demo: the first message as received:"
tr -d '\r' <"$DEMO/spool/$(ls "$DEMO/spool" | grep -m1 '\.eml$')" | sed 's/^/    | /'
echo "demo: OK (demo files kept in $DEMO; remove with: rm -rf $DEMO)"
