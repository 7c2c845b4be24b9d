#!/bin/bash
# The whole test suite, as CI runs it (README: ".ci/install-deps && tests/run-all.sh").
#
#   1. build-ci    gcc, -Dwerror=true, debugoptimized, man pages required
#                  (scdoc must accept every page); meson test
#   2. build-asan  the same suite again under ASan + UBSan
#   3. build-fuzz  clang + libFuzzer; each fuzz_* target runs FUZZ_SECONDS
#                  (default 30) over a copy of tests/fuzz/corpus/<name>
#   4. deb         tests/debian-test.sh: dpkg-buildpackage of oasmtp,
#                  oasmtp-mta and oasmtp-system in a temp copy, lintian;
#                  as root: apt-get install in a debootstrap chroot, mail
#                  through the installed /usr/sbin/sendmail to the demo
#                  provider (user and system mode), dpkg --purge (about
#                  1 min; the debootstrap for the chroot starts in the
#                  background when this script starts, 1-3 min the first
#                  time, then cached in /tmp/oasmtp-deb-cache); else
#                  dpkg -x only
#
# Every meson test result (meson-logs/testlog.json) and every fuzz run counts
# as one test; a SKIP counts as a failure (the suite must not skip).  A part
# that cannot be configured or built counts as one failure.  Prints a summary
# per part and ends with the line "N passed, N failed"; exits 1 on any failure.
#
# Environment: FUZZ_SECONDS, JOBS (meson test --num-processes, default 2),
# PARTS (default "ci asan fuzz deb": run a subset).
set -u

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
PY=/usr/bin/python3
JOBS=${JOBS:-2}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
PARTS=${PARTS:-ci asan fuzz deb}

total_pass=0
total_fail=0
summaries=()

note() { printf '\n==== %s\n' "$*"; }

# count_testlog DIR -> prints "PASS FAIL failed-names..." from DIR's testlog.json
count_testlog() {
	"$PY" - "$1/meson-logs/testlog.json" <<'PYEOF'
import json, sys
path = sys.argv[1]
ok = bad = 0
names = []
try:
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            if r.get("result") in ("OK", "EXPECTEDFAIL"):
                ok += 1
            else:
                bad += 1
                names.append("%s(%s)" % (r.get("name", "?"), r.get("result")))
except FileNotFoundError:
    pass
print(ok, bad, " ".join(names))
PYEOF
}

# setup_dir DIR ARGS... : configure DIR fresh (or wiped) with ARGS.
setup_dir() {
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --wipe "$dir" "$@"
	else
		rm -rf "$dir"
		meson setup "$dir" "$@"
	fi
}

# run_meson_part NAME DIR SETUP-ARGS... : configure, build, meson test, count.
run_meson_part() {
	local name=$1 dir=$2
	shift 2
	local build_note=""
	note "$name: configure + build ($dir)"
	if ! setup_dir "$dir" "$@"; then
		summaries+=("$name: meson setup FAILED (counted as 1 failure)")
		total_fail=$((total_fail + 1))
		return
	fi
	# Keep going past a broken target (-k 0) so that every test that
	# can be built still runs; the failed build counts as one failure.
	if ! ninja -C "$dir" -k 0; then
		build_note=" (build FAILED, counted as 1 more failure)"
		total_fail=$((total_fail + 1))
	fi
	rm -f "$dir/meson-logs/testlog.json"
	note "$name: meson test"
	meson test -C "$dir" --no-rebuild --print-errorlogs \
		--num-processes "$JOBS"
	local counts p f names
	counts=$(count_testlog "$dir")
	read -r p f names <<<"$counts"
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		summaries+=("$name: no test results in $dir/meson-logs/testlog.json (counted as 1 failure)$build_note")
		total_fail=$((total_fail + 1))
		return
	fi
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	summaries+=("$name: $p passed, $f failed$build_note${names:+ - $names}")
}

run_fuzz_part() {
	local dir=build-fuzz
	note "fuzz: configure + build ($dir, clang, libFuzzer)"
	if ! CC=clang setup_dir "$dir" -Dfuzzing=true \
			-Db_sanitize=address,undefined -Db_lundef=false \
			--buildtype=debugoptimized ||
			! ninja -C "$dir"; then
		summaries+=("fuzz: build FAILED (counted as 1 failure)")
		total_fail=$((total_fail + 1))
		return
	fi
	local p=0 f=0 names="" exe name corpus work log
	local found=0
	for exe in "$dir"/tests/fuzz/fuzz_*; do
		if [ ! -f "$exe" ] || [ ! -x "$exe" ]; then continue; fi
		found=1
		name=${exe##*/fuzz_}
		corpus=$ROOT/tests/fuzz/corpus/$name
		work=$dir/fuzz-work/$name
		log=$dir/fuzz-work/$name.log
		rm -rf "$work" "$dir/fuzz-work/artifacts-$name"
		mkdir -p "$work" "$dir/fuzz-work/artifacts-$name"
		# New inputs go to the work copy, never into the source tree.
		set -- "$work"
		[ -d "$corpus" ] && set -- "$@" "$corpus"
		note "fuzz: fuzz_$name for ${FUZZ_SECONDS}s"
		if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
				UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
				"$exe" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
				-rss_limit_mb=2048 -print_final_stats=1 \
				-artifact_prefix="$dir/fuzz-work/artifacts-$name/" \
				"$@" >"$log" 2>&1; then
			p=$((p + 1))
			tail -n 3 "$log"
		else
			f=$((f + 1))
			names="$names fuzz_$name"
			tail -n 40 "$log"
			echo "fuzz_$name FAILED; artifacts in $dir/fuzz-work/artifacts-$name/"
		fi
	done
	if [ "$found" -eq 0 ]; then
		summaries+=("fuzz: no fuzz_* targets built (counted as 1 failure)")
		total_fail=$((total_fail + 1))
		return
	fi
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	summaries+=("fuzz: $p passed, $f failed${names:+ -$names}")
}

# The Debian packages: each "ok"/"not ok" line of tests/debian-test.sh
# counts as one test; a script that reports nothing counts as a failure.
run_deb_part() {
	local log=build-deb/debian-test.log p f
	note "deb: tests/debian-test.sh"
	mkdir -p build-deb
	if [ -n "$PREPARE_PID" ]; then
		wait "$PREPARE_PID"
		PREPARE_PID=
		cat build-deb/prepare.log
	fi
	tests/debian-test.sh 2>&1 | tee "$log"
	p=$(grep -c '^ok - ' "$log")
	f=$(grep -c '^not ok - ' "$log")
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		summaries+=("deb: no results (counted as 1 failure)")
		total_fail=$((total_fail + 1))
		return
	fi
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	summaries+=("deb: $p passed, $f failed")
}

start=$(date +%s)
# The deb part's clean chroot (debootstrap: mostly download and unpacking)
# is prepared in the background while the other parts build and test; the
# deb part waits for it (a lock on the cache) and prints its log.
PREPARE_PID=
case " $PARTS " in
*" deb "*)
	mkdir -p build-deb
	tests/debian-test.sh --prepare-chroot >build-deb/prepare.log 2>&1 &
	PREPARE_PID=$!
	trap '[ -z "$PREPARE_PID" ] || kill "$PREPARE_PID" 2>/dev/null' EXIT
	;;
esac
for part in $PARTS; do
	case $part in
	ci)
		# -Dman-pages=enabled: a missing scdoc or a page that scdoc
		# rejects fails this build.
		run_meson_part ci build-ci -Dwerror=true \
			--buildtype=debugoptimized -Dman-pages=enabled
		;;
	asan)
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
			run_meson_part asan build-asan -Dwerror=true \
			--buildtype=debugoptimized \
			-Db_sanitize=address,undefined -Db_lundef=false
		;;
	fuzz)
		run_fuzz_part
		;;
	deb)
		run_deb_part
		;;
	*)
		echo "run-all.sh: unknown part '$part' (ci, asan, fuzz, deb)" >&2
		exit 2
		;;
	esac
done

note "summary ($(($(date +%s) - start)) s)"
for s in "${summaries[@]}"; do
	echo "$s"
done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
