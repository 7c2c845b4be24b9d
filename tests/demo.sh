#!/bin/sh
# The main job, end to end, on loopback (README: ".ci/install-deps && tests/demo.sh"):
#
#   1. make a throw-away test CA and a server certificate for 127.0.0.1
#      (tests/servers/certs.py);
#   2. start a local demo provider (tests/demo-provider.sh, shared with
#      tests/debian-test.sh), in two parts like Gmail or Microsoft 365:
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
umask 077
DEMO=$(mktemp -d "${TMPDIR:-/tmp}/oasmtp-demo.XXXXXX")
mkdir -m 700 "$DEMO/home" "$DEMO/op"
say() {
	echo "demo: $*"
}
. "$ROOT/tests/demo-provider.sh"
cleanup() {
	provider_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# fingerprint FILE: a short digest of a secret, never the secret itself
fingerprint() {
	sha256sum <"$1" | cut -c1-12
}

# -- 1. test CA, 2. the demo provider -----------------------------------------
provider_start "$DEMO"

# -- 3. the user authorizes once ----------------------------------------------
STORE=$DEMO/home/refresh-token
provider_authorize "$STORE" "$DEMO/op/first_access_token"
RT_BEFORE=$(fingerprint "$STORE")
echo "demo:   refresh token in file store $STORE (sha256 $RT_BEFORE...)"

# -- 4. the config ------------------------------------------------------------
CONFIG=$DEMO/home/oasmtprc
if [ "$MODE" = oasmtp ]; then
	CREDENTIALS="oauth2_provider custom
oauth2_client_id $CLIENT_ID
oauth2_client_secret $(cat "$CLIENT_SECRET")
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
	before=$(provider_refreshes)
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
		"token requests at the provider: $(($(provider_refreshes) - before))"
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
