#!/bin/bash
# Build the Debian packages from a temporary copy of the tree, check them
# with lintian, unpack them with `dpkg -x` (no installation on this system)
# and send one message through the unpacked /usr/sbin/sendmail to the
# scripted server tests/servers/smtpd.py on 127.0.0.1.
#
#   tests/debian-test.sh          (needs dpkg-dev, debhelper, lintian,
#                                  fakeroot and the build dependencies of
#                                  debian/control: .ci/install-deps)
#
# Prints "deb: N passed, N failed" and exits 1 on any failure.  Set
# KEEP=1 to keep the temporary directory for inspection.
set -u

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
PY=/usr/bin/python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/oasmtp-deb.XXXXXX") || exit 2
SERVER_PID=
pass=0
fail=0

cleanup() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
	fi
	if [ "${KEEP:-0}" = 1 ]; then
		echo "deb: kept $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
finish() {
	echo "deb: $pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit $?
}

# 1. a clean copy: no build directories, node modules or VCS data
mkdir "$WORK/src" "$WORK/root" "$WORK/home"
tar -C "$ROOT" --exclude='./build*' --exclude='./.git' \
	--exclude='node_modules' --exclude='__pycache__' -cf - . |
	tar -C "$WORK/src" -xf - || { not_ok "copy the tree"; finish; }

# 2. dpkg-buildpackage (binary packages, unsigned)
if (cd "$WORK/src" && dpkg-buildpackage -b -us -uc) >"$WORK/build.log" 2>&1
then
	ok "dpkg-buildpackage -b"
else
	tail -n 40 "$WORK/build.log"
	not_ok "dpkg-buildpackage -b (log: $WORK/build.log)"
	KEEP=1
	finish
fi
deb=$(ls "$WORK"/oasmtp_*.deb 2>/dev/null | head -n 1)
mta=$(ls "$WORK"/oasmtp-mta_*.deb 2>/dev/null | head -n 1)
if [ -f "$deb" ] && [ -f "$mta" ]; then
	ok "both packages built"
else
	not_ok "both packages built (got: $(ls "$WORK"))"
	finish
fi

# 3. the contents
contents=$(dpkg-deb -c "$deb"; dpkg-deb -c "$mta")
for path in ./usr/bin/oasmtp ./usr/bin/oasmtp-token \
	./usr/share/man/man1/oasmtp.1.gz ./usr/share/man/man5/oasmtprc.5.gz \
	./usr/share/man/man1/oasmtp-token.1.gz \
	./usr/lib/systemd/user/oasmtp-queue.timer \
	./usr/lib/systemd/user/oasmtp-token-refresh@.timer \
	./usr/share/bash-completion/completions/oasmtp \
	./usr/share/bash-completion/completions/oasmtp-token \
	./usr/share/zsh/site-functions/_oasmtp \
	"./usr/sbin/sendmail -> ../bin/oasmtp" \
	"./usr/lib/sendmail -> ../bin/oasmtp" \
	"./usr/bin/mailq -> oasmtp" \
	"./usr/sbin/newaliases -> ../bin/oasmtp"; do
	if grep -qF -- " $path" <<<"$contents"; then
		ok "contains $path"
	else
		not_ok "contains $path"
	fi
done
fields=$(dpkg-deb -f "$mta" Provides Conflicts Replaces)
if [ "$(grep -c 'mail-transport-agent' <<<"$fields")" -eq 3 ]; then
	ok "oasmtp-mta provides, conflicts with and replaces mail-transport-agent"
else
	not_ok "oasmtp-mta relations: $fields"
fi
depends=$(dpkg-deb -f "$deb" Depends)
if grep -q 'libcurl' <<<"$depends" && grep -q 'libssl' <<<"$depends" &&
	grep -q 'libsecret' <<<"$depends" && grep -q 'libjson-c' <<<"$depends"
then
	ok "oasmtp depends on its libraries (shlibs)"
else
	not_ok "oasmtp Depends: $(dpkg-deb -f "$deb" Depends)"
fi

# 4. lintian: no errors (its exit status; warnings are shown, not counted)
changes=$(ls "$WORK"/oasmtp_*.changes | head -n 1)
lintian --fail-on error --tag-display-limit 0 "$changes" \
	>"$WORK/lintian.log" 2>&1
lrc=$?
grep -v '^running with root privileges' "$WORK/lintian.log"
if [ "$lrc" -eq 0 ] && ! grep -q '^E: ' "$WORK/lintian.log"; then
	ok "lintian: no errors"
else
	not_ok "lintian: errors (exit $lrc)"
fi

# 5. unpack both and send one message through usr/sbin/sendmail
dpkg -x "$deb" "$WORK/root" && dpkg -x "$mta" "$WORK/root" ||
	{ not_ok "dpkg -x"; finish; }
"$PY" tests/servers/smtpd.py --port-file "$WORK/port" \
	--spool "$WORK/spool" --caps "PIPELINING 8BITMIME SIZE=1000000" \
	--max-seconds 60 --max-messages 1 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 150); do
	[ -s "$WORK/port" ] && break
	sleep 0.1
done
if [ ! -s "$WORK/port" ]; then
	not_ok "smtpd.py started"
	cat "$WORK/server.log"
	finish
fi
cat >"$WORK/home/oasmtprc" <<RC
account default
host 127.0.0.1
port $(cat "$WORK/port")
tls off
auth off
from packager@example.org
timeout 20
RC
chmod 600 "$WORK/home/oasmtprc"
printf 'Subject: from the package\n\nsent by the unpacked sendmail\n' |
	env -i PATH=/usr/bin:/bin HOME="$WORK/home" \
	"$WORK/root/usr/sbin/sendmail" -C "$WORK/home/oasmtprc" -i \
	rcpt@example.net >"$WORK/send.log" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && [ -f "$WORK/spool/1.json" ] &&
	grep -q 'sent by the unpacked sendmail' "$WORK/spool/1.eml" &&
	grep -q 'rcpt@example.net' "$WORK/spool/1.json"; then
	ok "usr/sbin/sendmail from the package delivered a message"
else
	cat "$WORK/send.log" "$WORK/server.log"
	not_ok "usr/sbin/sendmail from the package (exit $rc)"
fi
if out=$(env -i PATH=/usr/bin:/bin HOME="$WORK/home" \
	"$WORK/root/usr/bin/mailq" -C "$WORK/home/oasmtprc" 2>&1) &&
	grep -q 'queue is empty' <<<"$out"; then
	ok "usr/bin/mailq from the package lists the queue"
else
	not_ok "usr/bin/mailq: $out"
fi
if "$WORK/root/usr/bin/oasmtp" --version | grep -q '^oasmtp version'; then
	ok "oasmtp --version"
else
	not_ok "oasmtp --version"
fi
finish
