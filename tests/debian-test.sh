#!/bin/bash
# Build the Debian packages from a temporary copy of the tree, check their
# contents and relations, run lintian, then install them and send mail
# through the installed /usr/sbin/sendmail.
#
#   tests/debian-test.sh          (needs dpkg-dev, debhelper, lintian,
#                                  fakeroot, debootstrap and the build
#                                  dependencies of debian/control; node and
#                                  tests/oauth/node_modules for the demo
#                                  provider: .ci/install-deps)
#
# Installing (as root, with debootstrap): a clean Debian chroot
# (debootstrap --variant=minbase, from the mirror apt uses here) in the
# temporary directory, with /proc mounted in it.  apt-get installs oasmtp
# and oasmtp-mta from the .deb files (it fetches their libraries from the
# mirror, but not what they recommend: the smallest install, without the
# system's CA bundle), then oasmtp-system.  The demo provider of tests/demo.sh
# (tests/demo-provider.sh: oidc-provider over HTTPS, aiosmtpd with STARTTLS
# and XOAUTH2) runs on the host's 127.0.0.1, which the chroot shares:
#   - an ordinary user with a ~/.oasmtprc sends with /usr/sbin/sendmail -t
#     (the packaged oasmtp-token refreshes the token), before and after
#     oasmtp-system is installed, and mailq shows an empty queue;
#   - the system mode: /etc/oasmtprc, oasmtp-token --system import, the
#     user nobody sends to root, the message waits in the maildrop until
#     the service's command (ExecStart of the installed unit, as its user)
#     delivers it to root's alias with the sender rewritten;
#   - dpkg --purge: with mail waiting it keeps the spool and says so,
#     otherwise it removes the state; no dpkg-statoverride is left.
# Everything mounted is unmounted on exit, also on failure; every process
# started is stopped by PID.
#
# The debootstrap result is cached as a tar file in $OASMTP_DEB_CACHE
# (default ${TMPDIR:-/tmp}/oasmtp-deb-cache, this test's own directory;
# remove it to bootstrap afresh); each run unpacks its own copy.
#
# Fallback (not root, or no debootstrap): the packages are only unpacked
# with `dpkg -x` and one message goes through the unpacked sendmail to the
# scripted server tests/servers/smtpd.py.  The script says so on a line
# starting with "# FALLBACK".  DEB_INSTALL=chroot or DEB_INSTALL=unpack
# chooses a path (a chroot that cannot be made then fails).
#
# Every check prints "ok - ..." or "not ok - ..."; the script ends with
# "deb: N passed, N failed" and exits 1 on any failure.  KEEP=1 keeps the
# temporary directory for inspection (unmounted all the same).
set -u

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
PY=/usr/bin/python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/oasmtp-deb.XXXXXX") || exit 2
CACHE=${OASMTP_DEB_CACHE:-${TMPDIR:-/tmp}/oasmtp-deb-cache}
SUITE=bookworm
CH=$WORK/chroot
MOUNTS=()
SMTPD_PID=
TORN_DOWN=0
STARTED=$(date +%s)
pass=0
fail=0

ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
finish() {
	teardown
	echo "deb: $(($(date +%s) - STARTED)) s in all"
	echo "deb: $pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit $?
}

# mirror: the URI apt uses here for Debian's main archive
mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk -v s="$SUITE" '$1 == "deb" && $3 == s { print $2; exit }' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v s="$SUITE" '
			/^[ \t]*$/ { if (u != "" && ok) { print u; exit } u = ""; ok = 0 }
			/^URIs:/ { u = $2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
			END { if (u != "" && ok) print u }' "$f"
	done
}

tarball=$CACHE/$SUITE-minbase.tar

# ensure_tarball: make the cached debootstrap tarball unless it exists;
# prints where the chroot comes from.  Holds a lock on the cache, so a run
# waits for a --prepare-chroot still at work instead of bootstrapping twice.
ensure_tarball() {
	local t rc=0
	mkdir -p "$CACHE" || return 1
	exec 8>"$CACHE/.lock"
	flock 8
	if [ -s "$tarball" ]; then
		echo "the cached debootstrap $tarball"
	else
		MIRROR=${DEB_MIRROR:-$(mirror | grep -v security | head -n 1)}
		if [ -z "$MIRROR" ]; then
			echo "no apt source for $SUITE in /etc/apt (set DEB_MIRROR)" \
				>"$WORK/debootstrap.log"
			rc=1
		else
			t=$(date +%s)
			if timeout 900 debootstrap --variant=minbase "$SUITE" \
				"$WORK/bootstrap" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 &&
				tar -C "$WORK/bootstrap" --numeric-owner \
					-cpf "$tarball.$$" . &&
				mv "$tarball.$$" "$tarball"; then
				echo "debootstrap --variant=minbase $SUITE from $MIRROR ($(($(date +%s) - t)) s)"
			else
				rm -f "$tarball.$$"
				rc=1
			fi
			rm -rf "$WORK/bootstrap"
		fi
	fi
	exec 8>&-
	return $rc
}

# --prepare-chroot: only make that tarball, and say so in one line.
# tests/run-all.sh starts this in the background when it begins, so that
# the download and unpacking overlap the builds.
if [ "${1:-}" = "--prepare-chroot" ]; then
	if [ "$(id -u)" -ne 0 ] || ! command -v debootstrap >/dev/null; then
		echo "deb: --prepare-chroot: nothing to do (needs root and debootstrap)"
		rm -rf "$WORK"
		exit 0
	fi
	if how=$(ensure_tarball); then
		echo "deb: --prepare-chroot: $how"
		rc=0
	else
		tail -n 20 "$WORK/debootstrap.log"
		echo "deb: --prepare-chroot: FAILED (the deb part will say why)"
		rc=1
	fi
	rm -rf "$WORK"
	exit $rc
fi

# For tests/demo-provider.sh: progress lines and fatal errors.
say() { echo "# provider: $*"; }
fail() {
	not_ok "$*"
	finish
}
. "$ROOT/tests/demo-provider.sh"

# chroot_pids: processes whose root directory is the chroot
chroot_pids() {
	local p
	for p in /proc/[0-9]*; do
		if [ "$(readlink "$p/root" 2>/dev/null)" = "$CH" ]; then
			echo "${p#/proc/}"
		fi
	done
}

# mounted_under DIR: the mount points at or below DIR, deepest first
mounted_under() {
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' \
		/proc/self/mountinfo | sort -r
}

# teardown: stop the servers and whatever still runs in the chroot, then
# unmount everything mounted below WORK.  Runs once.
teardown() {
	local pid m left
	[ "$TORN_DOWN" = 0 ] || return 0
	TORN_DOWN=1
	provider_stop
	if [ -n "$SMTPD_PID" ]; then
		kill "$SMTPD_PID" 2>/dev/null
		wait "$SMTPD_PID" 2>/dev/null
		SMTPD_PID=
	fi
	[ -d "$CH" ] || return 0
	for pid in $(chroot_pids); do
		echo "# stopping pid $pid, still running in the chroot"
		kill "$pid" 2>/dev/null
	done
	sleep 0.2
	for pid in $(chroot_pids); do
		kill -KILL "$pid" 2>/dev/null
	done
	for m in $(mounted_under "$WORK"); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	left=$(mounted_under "$WORK")
	if [ ${#MOUNTS[@]} -gt 0 ] || [ -n "$left" ]; then
		if [ -z "$left" ]; then
			ok "nothing left mounted under $WORK"
		else
			not_ok "still mounted: $left"
		fi
	fi
}

cleanup() {
	teardown
	if [ -n "$(mounted_under "$WORK")" ]; then
		echo "deb: $WORK still has mounts; not removed"
	elif [ "${KEEP:-0}" = 1 ]; then
		echo "deb: kept $WORK"
	else
		rm -rf "$WORK"
	fi
}
# The script's own output, for the EXIT trap: a signal can arrive while a
# command's output goes to a log file, and the trap runs under that
# redirection.
exec 3>&1 4>&2
trap 'cleanup >&3 2>&4' EXIT
trap 'echo "not ok - interrupted by a signal" >&3; exit 130' INT TERM

# 1. a clean copy: no build directories, node modules or VCS data
mkdir "$WORK/src" "$WORK/root" "$WORK/home"
tar -C "$ROOT" --exclude='./build*' --exclude='./.git' \
	--exclude='node_modules' --exclude='__pycache__' -cf - . |
	tar -C "$WORK/src" -xf - || { not_ok "copy the tree"; finish; }

# 2. dpkg-buildpackage (binary packages, unsigned)
t=$(date +%s)
if (cd "$WORK/src" && dpkg-buildpackage -b -us -uc) >"$WORK/build.log" 2>&1
then
	ok "dpkg-buildpackage -b ($(($(date +%s) - t)) s)"
else
	tail -n 40 "$WORK/build.log"
	not_ok "dpkg-buildpackage -b (log: $WORK/build.log)"
	KEEP=1
	finish
fi
deb=$(ls "$WORK"/oasmtp_*.deb 2>/dev/null | head -n 1)
mta=$(ls "$WORK"/oasmtp-mta_*.deb 2>/dev/null | head -n 1)
sys=$(ls "$WORK"/oasmtp-system_*.deb 2>/dev/null | head -n 1)
if [ -f "$deb" ] && [ -f "$mta" ] && [ -f "$sys" ]; then
	ok "the three packages built"
else
	not_ok "the three packages built (got: $(ls "$WORK"))"
	finish
fi
version=$(dpkg-deb -f "$deb" Version)

# 3. the contents
contents=$(dpkg-deb -c "$deb"; dpkg-deb -c "$mta"; dpkg-deb -c "$sys")
for path in ./usr/bin/oasmtp ./usr/bin/oasmtp-token \
	./usr/share/man/man1/oasmtp.1.gz ./usr/share/man/man5/oasmtprc.5.gz \
	./usr/share/man/man1/oasmtp-token.1.gz \
	./usr/lib/systemd/user/oasmtp-queue.timer \
	./usr/lib/systemd/user/oasmtp-token-refresh@.timer \
	./usr/share/bash-completion/completions/oasmtp \
	./usr/share/bash-completion/completions/oasmtp-token \
	./usr/share/zsh/site-functions/_oasmtp \
	./usr/share/doc/oasmtp/system-wide.md \
	"./usr/sbin/sendmail -> ../bin/oasmtp" \
	"./usr/lib/sendmail -> ../bin/oasmtp" \
	"./usr/bin/mailq -> oasmtp" \
	"./usr/sbin/newaliases -> ../bin/oasmtp" \
	./usr/libexec/oasmtp-drop \
	./lib/systemd/system/oasmtp-system.service \
	./lib/systemd/system/oasmtp-system.path \
	./lib/systemd/system/oasmtp-system.timer \
	./usr/lib/sysusers.d/oasmtp.conf \
	./usr/lib/tmpfiles.d/oasmtp.conf \
	./usr/share/doc/oasmtp-system/README.Debian; do
	if grep -qF -- " $path" <<<"$contents"; then
		ok "contains $path"
	else
		not_ok "contains $path"
	fi
done
if dpkg-deb -c "$sys" | grep -q '^-rwxr-xr-x root/root .* \./usr/libexec/oasmtp-drop$'
then
	ok "oasmtp-drop is a plain root:root 0755 file in the package"
else
	not_ok "oasmtp-drop in the package: $(dpkg-deb -c "$sys" | grep drop)"
fi
if grep -q '^[^ ]*[sStT]' <<<"$contents"; then
	not_ok "setuid, setgid or sticky files: $(grep '^[^ ]*[sStT]' <<<"$contents")"
else
	ok "no setuid, setgid or sticky file in any package"
fi
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
	not_ok "oasmtp Depends: $depends"
fi
depends=$(dpkg-deb -f "$sys" Depends)
if grep -qF "oasmtp (= $version)" <<<"$depends" &&
	grep -qF "oasmtp-mta (= $version)" <<<"$depends" &&
	grep -qw 'adduser' <<<"$depends"; then
	ok "oasmtp-system depends on oasmtp, oasmtp-mta (= $version) and adduser"
else
	not_ok "oasmtp-system Depends: $depends"
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

# 5. install: in a chroot, or (fallback) unpacked
mode=${DEB_INSTALL:-auto}
if [ "$mode" = auto ]; then
	if [ "$(id -u)" -eq 0 ] && command -v debootstrap >/dev/null; then
		mode=chroot
	else
		mode=unpack
	fi
fi

# -- the fallback: unpack with dpkg -x ----------------------------------------
if [ "$mode" = unpack ]; then
	why=${DEB_INSTALL:+DEB_INSTALL=$DEB_INSTALL; }
	[ "$(id -u)" -eq 0 ] || why="${why}not root; "
	command -v debootstrap >/dev/null || why="${why}no debootstrap; "
	echo "# FALLBACK (${why%; }): the packages are unpacked with dpkg -x," \
		"not installed: no chroot, no demo provider, no system mode"
	dpkg -x "$deb" "$WORK/root" && dpkg -x "$mta" "$WORK/root" ||
		{ not_ok "dpkg -x"; finish; }
	"$PY" tests/servers/smtpd.py --port-file "$WORK/port" \
		--spool "$WORK/spool" --caps "PIPELINING 8BITMIME SIZE=1000000" \
		--max-seconds 60 --max-messages 1 >"$WORK/server.log" 2>&1 &
	SMTPD_PID=$!
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
	if "$WORK/root/usr/bin/oasmtp" --version | grep -q '^oasmtp version'
	then
		ok "oasmtp --version"
	else
		not_ok "oasmtp --version"
	fi
	finish
fi

# -- a clean chroot -----------------------------------------------------------
[ "$(id -u)" -eq 0 ] || fail "DEB_INSTALL=chroot needs root"
command -v debootstrap >/dev/null ||
	fail "DEB_INSTALL=chroot needs debootstrap (.ci/install-deps)"
CHROOT_STARTED=$(date +%s)

MIRROR=${DEB_MIRROR:-$(mirror | grep -v security | head -n 1)}
[ -n "$MIRROR" ] || fail "no apt source for $SUITE in /etc/apt (set DEB_MIRROR)"

mkdir -p "$CH"
t=$(date +%s)
if ! how=$(ensure_tarball); then
	tail -n 20 "$WORK/debootstrap.log"
	not_ok "debootstrap --variant=minbase $SUITE $MIRROR"
	finish
fi
if tar -C "$CH" --numeric-owner -xpf "$tarball"; then
	ok "chroot from $how ($(($(date +%s) - t)) s)"
else
	not_ok "unpack $tarball (remove it to bootstrap afresh)"
	finish
fi

# what apt and the maintainer scripts need: /proc, device nodes (debootstrap
# makes them; bind /dev where it could not), DNS for the mirror, no daemon
# started (policy-rc.d), the host's tolerance of an old Release file
mount -t proc proc "$CH/proc" && MOUNTS+=("$CH/proc") ||
	fail "mount proc in the chroot"
if [ ! -c "$CH/dev/null" ]; then
	mount --bind /dev "$CH/dev" && MOUNTS+=("$CH/dev") ||
		fail "bind /dev into the chroot"
fi
cp -L /etc/resolv.conf "$CH/etc/resolv.conf" 2>/dev/null
printf '#!/bin/sh\nexit 101\n' >"$CH/usr/sbin/policy-rc.d"
chmod 755 "$CH/usr/sbin/policy-rc.d"
apt-config dump | grep -E '^Acquire::Check-(Valid-Until|Date) "false";' \
	>"$CH/etc/apt/apt.conf.d/99oasmtp-test"

# inch CMD...: run CMD in the chroot with a clean environment, bounded
inch() {
	timeout "${LIMIT:-120}" chroot "$CH" /usr/bin/env -i \
		PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"
}
# as USER CMD...: run CMD in the chroot as USER, with a cron-like
# environment (HOME, LOGNAME, PATH)
as() {
	local user=$1 home
	shift
	home=$(inch getent passwd "$user" | cut -d: -f6)
	inch runuser -u "$user" -- /usr/bin/env -i PATH=/usr/bin:/bin \
		HOME="$home" LOGNAME="$user" LC_ALL=C.UTF-8 "$@"
}
# check WHAT EXPECTED ACTUAL
check() {
	if [ "$2" = "$3" ]; then
		ok "$1: ${3:-(none)}"
	else
		not_ok "$1: expected '${2:-(none)}', got '$3'"
	fi
}
installed() {
	inch dpkg-query -W -f '${Status}' "$1" 2>/dev/null
}
mode_of() {
	inch stat -c '%U:%G %a' "$1" 2>&1
}

mkdir "$CH/tmp/debs"
cp "$deb" "$mta" "$sys" "$CH/tmp/debs/"
d_deb=/tmp/debs/$(basename "$deb")
d_mta=/tmp/debs/$(basename "$mta")
d_sys=/tmp/debs/$(basename "$sys")

t=$(date +%s)
if LIMIT=600 inch apt-get -q update >"$WORK/apt.log" 2>&1 &&
	LIMIT=600 inch env DEBIAN_FRONTEND=noninteractive apt-get -q -y \
		--no-install-recommends \
		install "$d_deb" "$d_mta" >>"$WORK/apt.log" 2>&1; then
	ok "apt-get install --no-install-recommends oasmtp oasmtp-mta in the chroot ($(($(date +%s) - t)) s)"
else
	tail -n 30 "$WORK/apt.log"
	not_ok "apt-get install oasmtp oasmtp-mta in the chroot"
	finish
fi
for p in oasmtp oasmtp-mta; do
	check "dpkg: $p" "install ok installed" "$(installed "$p")"
done
# The smallest install: no system CA bundle.  The token refresh below
# must still work with the account's oauth2_ca_file alone.
check "ca-certificates is not installed" "" \
	"$(installed ca-certificates | grep 'install ok installed')"
check "/usr/sbin/sendmail" "/usr/bin/oasmtp" \
	"$(inch readlink -f /usr/sbin/sendmail)"
if inch ldd /usr/bin/oasmtp-token | grep -q 'libcurl.*=> /'; then
	ok "oasmtp-token links the chroot's libcurl ($(inch ldd \
		/usr/bin/oasmtp-token | awk '/libcurl/ { print $3 }'))"
else
	not_ok "oasmtp-token libraries: $(inch ldd /usr/bin/oasmtp-token 2>&1)"
fi

# Without oasmtp-system there is no oasmtp-drop: a caller without a
# configuration is not handed to any maildrop, oasmtp itself looks for a
# configuration (there is none yet) and says so.
out=$(printf 'Subject: x\n\nx\n' | as nobody /usr/sbin/sendmail root 2>&1)
rc=$?
if [ "$rc" -eq 78 ] && grep -q 'no configuration file found' <<<"$out" &&
	! inch test -e /usr/libexec/oasmtp-drop &&
	! inch test -e /var/spool/oasmtp; then
	ok "without oasmtp-system, sendmail sends directly (no config: exit 78, $out)"
else
	not_ok "without oasmtp-system: exit $rc: $out"
fi

# -- the demo provider, on the host's 127.0.0.1 --------------------------------
mkdir -m 700 "$WORK/provider"
provider_start "$WORK/provider"
SPOOL=$WORK/provider/spool
mkdir -p "$CH/etc/oasmtp-test"
install -m 644 "$CA" "$CH/etc/oasmtp-test/ca.pem"
CHCA=/etc/oasmtp-test/ca.pem

# account_lines: the account's keys for the demo provider
account_lines() {
	cat <<EOF
host 127.0.0.1
port $PORT
tls on
tls_starttls on
tls_trust_file $CHCA
timeout 20
auth xoauth2
user $USER_ADDR
from $USER_ADDR
oauth2_provider custom
oauth2_client_id $CLIENT_ID
oauth2_client_secret $(cat "$CLIENT_SECRET")
oauth2_token_endpoint $ISSUER/token
oauth2_scope smtp
oauth2_ca_file $CHCA
EOF
}

# check_message MARKER RCPT [FROM [X-ORIGINAL-FROM]]: the message holding
# MARKER arrived once, over TLS, authenticated, for RCPT alone, with these
# headers; prints what it found
check_message() {
	"$PY" - "$SPOOL" "$@" <<'EOF'
import email, glob, json, sys
spool, marker, rcpt = sys.argv[1:4]
want = dict(zip(("From", "X-Original-From"), sys.argv[4:6]))
found = []
for meta_path in sorted(glob.glob(spool + "/[0-9]*.json")):
    with open(meta_path[:-5] + ".eml", "rb") as f:
        data = f.read()
    if marker.encode() in data:
        with open(meta_path) as f:
            found.append((json.load(f), email.message_from_bytes(data)))
if len(found) != 1:
    print("%d messages with %r arrived" % (len(found), marker))
    sys.exit(1)
meta, msg = found[0]
bad = []
if meta["rcpt_tos"] != [rcpt]:
    bad.append("RCPT TO %s" % meta["rcpt_tos"])
if not (meta["tls"] and meta["authenticated"]):
    bad.append("tls=%s authenticated=%s" % (meta["tls"], meta["authenticated"]))
for k, v in want.items():
    got = (msg.get(k) or "").strip()
    if got != v:
        bad.append("%s: %r, not %r" % (k, got, v))
print("; ".join(bad) if bad else "RCPT TO <%s>, From: %s%s" % (
    rcpt, (msg.get("From") or "").strip(),
    ", X-Original-From: " + msg.get("X-Original-From").strip()
    if msg.get("X-Original-From") else ""))
sys.exit(1 if bad else 0)
EOF
}

# -- (a) an ordinary user with a ~/.oasmtprc ------------------------------------
inch useradd --create-home --shell /bin/sh alice ||
	fail "useradd alice in the chroot"
provider_authorize "$WORK/alice-token"
install -m 600 "$WORK/alice-token" "$CH/home/alice/refresh-token"
{
	echo "account demo"
	account_lines
	echo "oauth2_token_store file:/home/alice/refresh-token"
	echo
	echo "account default : demo"
} >"$CH/home/alice/.oasmtprc"
chmod 600 "$CH/home/alice/.oasmtprc"
inch chown alice:alice /home/alice/.oasmtprc /home/alice/refresh-token

# user_send N: alice sends message N with /usr/sbin/sendmail -t
user_send() {
	local before rc out
	before=$(provider_refreshes)
	out=$(printf 'From: Alice <%s>\nTo: Friend <friend@example.net>\nSubject: package test %s\n\nuser message %s from the installed sendmail\n' \
		"$USER_ADDR" "$1" "$1" | as alice /usr/sbin/sendmail -t 2>&1)
	rc=$?
	if [ "$rc" -eq 0 ] && out=$(check_message "user message $1 " \
		friend@example.net); then
		ok "alice: /usr/sbin/sendmail -t delivered message $1 ($out)"
	else
		not_ok "alice: sendmail -t message $1: exit $rc: $out"
		sed 's/^/#   /' "$WORK/provider/server.log" | tail -n 20
	fi
	REFRESHED=$(($(provider_refreshes) - before))
}

rt_before=$(sha256sum <"$CH/home/alice/refresh-token")
user_send 1
if [ "$REFRESHED" -eq 1 ] &&
	[ "$(sha256sum <"$CH/home/alice/refresh-token")" != "$rt_before" ]; then
	ok "the packaged oasmtp-token refreshed the token once; the rotated refresh token was saved"
else
	not_ok "token refresh: $REFRESHED requests at the provider, store changed: $(
		[ "$(sha256sum <"$CH/home/alice/refresh-token")" != "$rt_before" ] &&
		echo yes || echo no)"
fi
out=$(as alice mailq 2>&1)
if grep -q 'queue is empty' <<<"$out"; then
	ok "alice: mailq says the queue is empty"
else
	not_ok "alice: mailq: $out"
fi

# Without a system CA bundle the oauth2_ca_file is the only one: a broken
# file is named as the problem (not the missing system bundle).
printf 'not a certificate\n' >"$CH/etc/oasmtp-test/bad.pem"
sed -e 's|^oauth2_ca_file .*|oauth2_ca_file /etc/oasmtp-test/bad.pem|' \
	-e '/^account default/i oauth2_token_cache off' \
	"$CH/home/alice/.oasmtprc" >"$CH/home/alice/badca.rc"
chmod 600 "$CH/home/alice/badca.rc"
inch chown alice:alice /home/alice/badca.rc
out=$(as alice oasmtp-token -C /home/alice/badca.rc print demo 2>&1)
rc=$?
if [ "$rc" -eq 78 ] &&
	grep -q "cannot load oauth2_ca_file '/etc/oasmtp-test/bad.pem'" <<<"$out"
then
	ok "no system CA bundle, broken oauth2_ca_file: exit 78 naming the file"
else
	not_ok "broken oauth2_ca_file without a system bundle: exit $rc: $out"
fi

# man-example: mail -- the mail(1) example of the EXAMPLES section of
# oasmtp(1), as written there, run by alice with bsd-mailx, which runs the
# installed /usr/sbin/sendmail (tests/integration/test_man_examples.py runs
# the other examples and checks that this one is run here).
example=$(awk '/^# EXAMPLES/ { on = 1; next } on && /^# / { on = 0 }
	on && /^echo .*\| *mail / { print }' "$ROOT/doc/oasmtp.1.scd")
if [ -z "$example" ]; then
	not_ok "the mail(1) example in doc/oasmtp.1.scd (EXAMPLES) not found"
elif ! LIMIT=300 inch env DEBIAN_FRONTEND=noninteractive apt-get -q -y \
		--no-install-recommends install bsd-mailx >>"$WORK/apt.log" 2>&1; then
	tail -n 20 "$WORK/apt.log"
	not_ok "apt-get install bsd-mailx in the chroot"
else
	rcpt=$(sed -n 's/.* \([^ ]*@[^ ]*\)$/\1/p' <<<"$example")
	body=$(sed -n 's/^echo \([^ |]*\) *|.*/\1/p' <<<"$example")
	out=$(as alice sh -c "$example" 2>&1)
	rc=$?
	if [ "$rc" -eq 0 ] && [ -n "$rcpt" ] && [ -n "$body" ] &&
		found=$(check_message "$body" "$rcpt"); then
		ok "oasmtp(1) example '$example' delivered ($found)"
	else
		not_ok "oasmtp(1) example '$example': exit $rc: $out ${found:-}"
	fi
	# it depends on a mail-transport-agent: out of the way of the purge
	inch dpkg --purge bsd-mailx >>"$WORK/apt.log" 2>&1 ||
		not_ok "dpkg --purge bsd-mailx"
fi

# -- oasmtp-system -------------------------------------------------------------
t=$(date +%s)
if LIMIT=600 inch env DEBIAN_FRONTEND=noninteractive apt-get -q -y \
	install "$d_sys" >>"$WORK/apt.log" 2>&1; then
	ok "apt-get install oasmtp-system in the chroot ($(($(date +%s) - t)) s)"
else
	tail -n 30 "$WORK/apt.log"
	not_ok "apt-get install oasmtp-system in the chroot"
	finish
fi
check "dpkg: oasmtp-system" "install ok installed" \
	"$(installed oasmtp-system)"

# system_state: users, groups, override, modes and enabled units, one per line
system_state() {
	local pw
	pw=$(inch getent passwd oasmtp)
	echo "user oasmtp: home $(cut -d: -f6 <<<"$pw"), shell $(cut -d: -f7 <<<"$pw"), system uid $(
		[ -n "$pw" ] && [ "$(cut -d: -f3 <<<"$pw")" -lt 1000 ] && echo yes || echo no)"
	echo "groups of oasmtp: $(inch id -nG oasmtp 2>&1)"
	echo "group oasmtp-queue: system gid $(
		g=$(inch getent group oasmtp-queue | cut -d: -f3)
		[ -n "$g" ] && [ "$g" -lt 1000 ] && echo yes || echo no)"
	echo "statoverride: $(inch dpkg-statoverride --list /usr/libexec/oasmtp-drop)"
	echo "/usr/libexec/oasmtp-drop: $(mode_of /usr/libexec/oasmtp-drop)"
	echo "/var/spool/oasmtp: $(mode_of /var/spool/oasmtp)"
	echo "/var/spool/oasmtp/maildrop: $(mode_of /var/spool/oasmtp/maildrop)"
	echo "/var/lib/oasmtp: $(mode_of /var/lib/oasmtp)"
	echo "oasmtp-system.path enabled: $(inch test -L \
		/etc/systemd/system/paths.target.wants/oasmtp-system.path &&
		echo yes || echo no)"
	echo "oasmtp-system.timer enabled: $(inch test -L \
		/etc/systemd/system/timers.target.wants/oasmtp-system.timer &&
		echo yes || echo no)"
}
expected_state="user oasmtp: home /var/lib/oasmtp, shell /usr/sbin/nologin, system uid yes
groups of oasmtp: oasmtp oasmtp-queue
group oasmtp-queue: system gid yes
statoverride: root oasmtp-queue 2755 /usr/libexec/oasmtp-drop
/usr/libexec/oasmtp-drop: root:oasmtp-queue 2755
/var/spool/oasmtp: root:root 755
/var/spool/oasmtp/maildrop: oasmtp:oasmtp-queue 1770
/var/lib/oasmtp: oasmtp:oasmtp 700
oasmtp-system.path enabled: yes
oasmtp-system.timer enabled: yes"

# compare_state WHEN: each line of system_state against expected_state
compare_state() {
	local got line
	got=$(system_state)
	while IFS= read -r line; do
		if grep -qxF -- "$line" <<<"$got"; then
			ok "$1: $line"
		else
			not_ok "$1: expected '$line'; got: $(grep -F -- "${line%%:*}:" <<<"$got")"
		fi
	done <<<"$expected_state"
}
compare_state "postinst"
# the postinst again (as dpkg-reconfigure would): the same state
if LIMIT=60 inch /var/lib/dpkg/info/oasmtp-system.postinst configure \
	"$version" >"$WORK/postinst2.log" 2>&1 &&
	[ "$(system_state)" = "$expected_state" ]; then
	ok "postinst configure run again: exit 0, the same users, override and modes"
else
	not_ok "postinst configure again: $(cat "$WORK/postinst2.log"; system_state)"
fi

# a personal configuration still sends directly, the maildrop stays empty
user_send 2
check "the token cached by message 1 served message 2: refresh requests" 0 \
	"$REFRESHED"
check "alice's message did not go through the maildrop: entries" 0 \
	"$(inch find /var/spool/oasmtp/maildrop -type f | wc -l)"

# -- (b) the system mode ---------------------------------------------------------
{
	echo "# the system account, for the local demo provider"
	echo "defaults"
	echo "timeout 20"
	echo
	echo "account default"
	account_lines
} >"$CH/etc/oasmtprc"
inch chown root:oasmtp /etc/oasmtprc
inch chmod 0640 /etc/oasmtprc
echo "root: admin@example.org" >"$CH/etc/aliases"
provider_authorize "$WORK/system-token"
# the import verifies the grant by one refresh and caches that token
before=$(provider_refreshes)
out=$(inch oasmtp-token --system import default <"$WORK/system-token" 2>&1)
rc=$?
store=$(mode_of /var/lib/oasmtp/default.refresh)
if [ "$rc" -eq 0 ] && [ "$store" = "oasmtp:oasmtp 600" ]; then
	ok "oasmtp-token --system import default: the grant is oasmtp's, mode 0600"
else
	not_ok "oasmtp-token --system import: exit $rc: $out; store: $store"
fi

out=$(printf 'From: Cron Daemon <root>\nTo: root\nSubject: system mode\n\nsystem message from nobody\n' |
	as nobody /usr/sbin/sendmail -i root 2>&1)
rc=$?
entries=$(inch find /var/spool/oasmtp/maildrop -type f ! -name '*.tmp' \
	-printf '%u:%g %m\n')
if [ "$rc" -eq 0 ] && [ -z "$out" ] &&
	[ "$entries" = "nobody:oasmtp-queue 640" ]; then
	ok "nobody: sendmail root exit 0, one entry in the maildrop ($entries)"
else
	not_ok "nobody: sendmail root: exit $rc: $out; maildrop: $entries"
fi
check "nothing delivered before the service ran: messages with the marker" \
	"0 messages with 'system message from nobody' arrived" \
	"$(check_message 'system message from nobody' admin@example.org)"

# The service as systemd would run it (no systemd in the chroot): the
# installed unit's ExecStart, User, Environment and UMask.
unit=$CH/lib/systemd/system/oasmtp-system.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
svc_user=$(sed -n 's/^User=//p' "$unit")
svc_env=$(sed -n 's/^Environment=//p' "$unit")
svc_umask=$(sed -n 's/^UMask=//p' "$unit")
msg=
# shellcheck disable=SC2086 # the unit's words, split as systemd would
out=$(inch runuser -u "$svc_user" -- /usr/bin/env -i PATH=/usr/bin:/bin \
	$svc_env /bin/sh -c 'umask "$0"; exec "$@"' "${svc_umask:-0022}" \
	$exec_start 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && msg=$(check_message 'system message from nobody' \
	admin@example.org "Cron Daemon <$USER_ADDR>" "Cron Daemon <root>"); then
	ok "service ($svc_user: $exec_start) delivered: $msg"
else
	not_ok "service ($svc_user: $exec_start): exit $rc: $out: $msg"
fi
check "refresh requests by the import and the service (one: the import's check; the service used its token)" 1 \
	"$(($(provider_refreshes) - before))"
check "maildrop entries after the service ran" 0 \
	"$(inch find /var/spool/oasmtp/maildrop -type f | wc -l)"
# shellcheck disable=SC2086
out=$(inch runuser -u "$svc_user" -- /usr/bin/env -i PATH=/usr/bin:/bin \
	$svc_env mailq --system 2>&1)
if grep -q 'queue is empty' <<<"$out"; then
	ok "mailq --system says the system queue is empty"
else
	not_ok "mailq --system: $out"
fi

# -- (c) purge -------------------------------------------------------------------
# With mail waiting in the maildrop: the state is kept, the purge says so.
printf 'Subject: waiting\n\nstill waiting\n' |
	as nobody /usr/sbin/sendmail root >/dev/null 2>&1
out=$(LIMIT=120 inch dpkg --purge oasmtp-system 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && grep -q 'undelivered mail' <<<"$out" &&
	[ "$(inch find /var/spool/oasmtp/maildrop -type f | wc -l)" -eq 1 ] &&
	inch test -f /var/lib/oasmtp/default.refresh; then
	ok "dpkg --purge oasmtp-system with mail waiting: kept the maildrop and /var/lib/oasmtp and said so"
else
	not_ok "purge with mail waiting: exit $rc: $out"
fi
check "statoverride after purging oasmtp-system" "" \
	"$(inch dpkg-statoverride --list /usr/libexec/oasmtp-drop)"
# Reinstall over the existing user, group and directories, then purge all.
inch find /var/spool/oasmtp/maildrop -type f -delete
out=$(LIMIT=120 inch dpkg -i "$d_sys" 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && [ "$(system_state)" = "$expected_state" ]; then
	ok "dpkg -i oasmtp-system again over the kept user and directories: the same state"
else
	not_ok "reinstall oasmtp-system: exit $rc: $out; $(system_state)"
fi
out=$(LIMIT=120 inch dpkg --purge oasmtp-system oasmtp-mta oasmtp 2>&1)
rc=$?
check "dpkg --purge oasmtp-system oasmtp-mta oasmtp: exit status" 0 "$rc"
[ "$rc" -eq 0 ] || echo "$out" | sed 's/^/#   /'
for p in oasmtp oasmtp-system oasmtp-mta; do
	status=$(installed "$p")
	case $status in
	"" | *" not-installed")
		ok "dpkg after the purge: $p is not installed" ;;
	*)
		not_ok "dpkg after the purge: $p: $status" ;;
	esac
done
check "statoverrides left" "" "$(inch dpkg-statoverride --list)"
for p in /var/lib/oasmtp /var/spool/oasmtp /usr/sbin/sendmail \
	/usr/libexec/oasmtp-drop; do
	check "after the purge, $p exists" no \
		"$(inch test -e "$p" && echo yes || echo no)"
done

teardown
echo "deb: chroot, install, send and purge: $(($(date +%s) - CHROOT_STARTED)) s"
finish
