#!/bin/sh
# The main job, end to end, on loopback (README: ".ci/install-deps && tests/demo.sh"):
#
#   1. make a throw-away test CA and a server certificate for 127.0.0.1
#      (tests/servers/certs.py);
#   2. start a local demo provider: the aiosmtpd server of the integration
#      rig (tests/integration/aiosmtpd_server.py) requiring STARTTLS and
#      accepting XOAUTH2 with one demo access token;
#   3. write a config like a Gmail / Microsoft one (STARTTLS, CA pinned to
#      the test CA, auth xoauth2, the token from passwordeval);
#   4. pipe a message into `oasmtp -C CONFIG -t` in a cron-like empty
#      environment and show where it arrived.
#
# OASMTP_BIN selects the binary (default: build it in build-demo/).
# OASMTP_BIN=/usr/bin/msmtp tests/demo.sh runs the same flow with msmtp.
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

DEMO=$(mktemp -d "${TMPDIR:-/tmp}/oasmtp-demo.XXXXXX")
mkdir -m 700 "$DEMO/home"
SERVER_PID=
cleanup() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

USER_ADDR=demo.user@example.org
TOKEN="ya29.demo-access-token-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
umask 077
printf '%s\n' "$TOKEN" >"$DEMO/token"

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
echo "demo: starting the demo provider (aiosmtpd, STARTTLS + XOAUTH2)"
"$PY" "$ROOT/tests/integration/aiosmtpd_server.py" \
	--spool "$DEMO/spool" --port-file "$DEMO/port" \
	--cert "$CERT" --key "$KEY" --require-starttls \
	--user "$USER_ADDR" --token-file "$DEMO/token" \
	--mechanisms XOAUTH2,OAUTHBEARER \
	>"$DEMO/server.log" 2>&1 </dev/null &
SERVER_PID=$!
i=0
while [ ! -s "$DEMO/port" ]; do
	kill -0 "$SERVER_PID" 2>/dev/null ||
		{ cat "$DEMO/server.log" >&2; fail "demo provider did not start"; }
	i=$((i + 1))
	[ $i -lt 100 ] || fail "demo provider did not start within 10 s"
	sleep 0.1
done
PORT=$(cat "$DEMO/port")
echo "demo: provider listening on 127.0.0.1:$PORT"

# -- 3. the config ------------------------------------------------------------
CONFIG=$DEMO/home/oasmtprc
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
passwordeval cat $DEMO/token

account default : demo
EOF
chmod 600 "$CONFIG"

# -- 4. send ------------------------------------------------------------------
echo "demo: sending with: $OASMTP_BIN -C $CONFIG -t"
status=0
env -i PATH=/usr/bin:/bin HOME="$DEMO/home" LC_ALL=C.UTF-8 \
	"$OASMTP_BIN" -C "$CONFIG" -t <<EOF >"$DEMO/oasmtp.out" 2>&1 || status=$?
From: Demo User <$USER_ADDR>
To: Friend <friend@example.net>
Bcc: hidden@example.net
Subject: Hello from oasmtp

This message went through STARTTLS and AUTH XOAUTH2
to the local demo provider.
EOF

echo "demo: oasmtp exit status $status"
if [ -s "$DEMO/oasmtp.out" ]; then
	echo "demo: oasmtp said:"
	sed 's/^/    /' "$DEMO/oasmtp.out"
fi
if [ "$status" -ne 0 ]; then
	echo "demo: provider log:" >&2
	sed 's/^/    /' "$DEMO/server.log" >&2
	fail "oasmtp exited with status $status (see above; files in $DEMO)"
fi

for meta in "$DEMO"/spool/[0-9]*.json; do
	[ -f "$meta" ] || fail "oasmtp exited 0 but nothing arrived in $DEMO/spool"
	eml=${meta%.json}.eml
	echo "demo: delivered: $eml"
	echo "demo: envelope ($meta):"
	"$PY" -c 'import json, sys
m = json.load(open(sys.argv[1]))
print("    MAIL FROM:<%s>  RCPT TO:%s  tls=%s  authenticated=%s" % (
    m["mail_from"], ",".join("<%s>" % r for r in m["rcpt_tos"]),
    m["tls"], m["authenticated"]))' "$meta"
	echo "demo: message as received:"
	tr -d '\r' <"$eml" | sed 's/^/    | /'
done
echo "demo: OK (demo files kept in $DEMO; remove with: rm -rf $DEMO)"
