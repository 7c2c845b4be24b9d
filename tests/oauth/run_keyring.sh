#!/bin/sh
# run_keyring.sh TEST_BINARY - run the secret-service store test against a
# real gnome-keyring-daemon in a private D-Bus session with a throw-away
# HOME (recipe: reference/oauth-helpers.md section 5.3).  dbus-run-session
# tears the bus and the daemon down when the test exits.
set -eu
bin=$1
T=$(mktemp -d /tmp/oasmtp-keyring.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/home" "$T/run"
chmod 700 "$T/run"
cat > "$T/inner.sh" <<'INNER'
set -eu
printf '%s' 'test-keyring-pw' |
	gnome-keyring-daemon --unlock --components=secrets >/dev/null
exec "$@" keyring
INNER
env -i PATH=/usr/bin:/bin ${ASAN_OPTIONS+ASAN_OPTIONS="$ASAN_OPTIONS"} \
	${LSAN_OPTIONS+LSAN_OPTIONS="$LSAN_OPTIONS"} HOME="$T/home" XDG_RUNTIME_DIR="$T/run" \
	timeout 60 dbus-run-session -- sh "$T/inner.sh" "$bin"
