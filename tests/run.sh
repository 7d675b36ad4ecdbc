#!/usr/bin/env bash
# Runs the test binaries given as arguments (Criterion), then the browser tests,
# and prints one closing line "Tests: N passed, N failed in S s"; each suite its seconds.
#   --no-e2e     skip the browser tests
#   --only-e2e   run only the browser tests
#   --fuzz       replay every fuzz target's corpus
#   --tools      run the shell suites tests/tools/test_*.sh (build, make run)
#   --postgres   the test binaries after it run (again) with SHOP_TEST_DATABASE=postgres
#                against one PostgreSQL server for the whole run (tools/pg-test-server.sh),
#                and so do the browser tests; their logs end in .postgres.log
set -uo pipefail
cd "$(dirname "$0")/.."
e2e=1
fuzz=0
tools=0
only_e2e=0
bins=()
pg_bins=()
pg_pass=0
for a in "$@"; do
    case "$a" in
    --no-e2e) e2e=0 ;;
    --only-e2e) only_e2e=1 ;;
    --fuzz) fuzz=1 ;;
    --tools) tools=1 ;;
    --postgres) pg_pass=1 ;;
    *) if [ "$pg_pass" -eq 1 ]; then pg_bins+=("$a"); else bins+=("$a"); fi ;;
    esac
done

out=${SHOP_TEST_OUTPUT:-$PWD/test-output}
mkdir -p "$out"
passed=0
failed=0
skipped=0
failed_suites=()

# Runs Criterion binaries: run_suites ENGINE BINARY...; ENGINE (sqlite or postgres)
# names the log and the heading of the second pass.
run_suites() {
    local engine=$1 b name log suffix= label= rc synth t p f c s jobs start took
    shift
    if [ "$engine" = postgres ]; then
        suffix=.postgres
        label=" (postgres)"
    fi
    for b in "$@"; do
        name=${b#*/tests/}
        log="$out/${name//\//_}$suffix.log"
        echo "== $name$label"
        # Integration and API suites start servers: their tests run one after another
        # (the other lane has the other core).
        jobs=()
        case "$name" in integration/*|api/*) jobs=(--jobs=1) ;; esac
        # --verbose: a skipped test says so ("[SKIP] suite::test: why").
        start=$SECONDS
        TERM=dumb timeout 900 "$b" "${jobs[@]}" --verbose >"$log" 2>&1
        rc=$?
        took="$((SECONDS - start)) s"
        synth=$(grep -a 'Synthesis:' "$log" | tail -n 1)
        t=$(sed -n 's/.*Tested: \([0-9]*\).*/\1/p' <<<"$synth")
        p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$synth")
        f=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$synth")
        c=$(sed -n 's/.*Crashing: \([0-9]*\).*/\1/p' <<<"$synth")
        t=${t:-0} p=${p:-0} f=${f:-0} c=${c:-0}
        s=$(grep -a -c '^\[SKIP\]' "$log" || true)
        if [ "$rc" -eq 0 ] && [ "$f" -eq 0 ] && [ "$c" -eq 0 ] && [ "$t" -eq 0 ] && [ "$s" -gt 0 ]; then
            # Every test of the suite skipped itself, saying why: not a pass, not a failure.
            grep -a '^\[SKIP\]' "$log" | sed 's/^/   /'
            echo "   $s skipped"
            skipped=$((skipped + s))
            continue
        fi
        if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] || [ "$c" -ne 0 ] || [ "$t" -eq 0 ]; then
            grep -a -E '\[(FAIL|----)\]|Assertion|Warning|CRASH|ERROR|Error|error' "$log" | head -n 60
            echo "   FAILED: $name$label (exit $rc, $t tested, $f failing, $c crashing, $took; full log: $log)"
            failed_suites+=("$name$label")
            failed=$((failed + (f + c > 0 ? f + c : 1)))
        else
            echo "   $p passed ($took)"
        fi
        passed=$((passed + p))
    done
}

# The browser tests: run_e2e ENGINE (sqlite, or postgres with the pass's server).
run_e2e() {
    local engine=$1 suffix= label= log start rc p f
    if [ "$engine" = postgres ]; then
        suffix=.postgres
        label=" (postgres)"
    fi
    compgen -G "tests/e2e/*.test.mjs" >/dev/null || return 0
    echo "== e2e (headless Chromium)$label"
    log="$out/e2e$suffix.log"
    start=$SECONDS
    SHOP_TEST_DATABASE=$engine NODE_PATH="$PWD/tools/node_modules" timeout 900 \
        node --test --test-concurrency=1 tests/e2e/*.test.mjs >"$log" 2>&1
    rc=$?
    p=$(sed -n 's/^# pass \([0-9]*\)/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^# fail \([0-9]*\)/\1/p' "$log" | tail -n 1)
    p=${p:-0} f=${f:-0}
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] || [ "$p" -eq 0 ]; then
        grep -E 'not ok|Error|error|expected|actual' "$log" | head -n 60
        echo "   FAILED: e2e$label (exit $rc, $((SECONDS - start)) s; full log: $log)"
        failed_suites+=("e2e$label")
        failed=$((failed + (f > 0 ? f : 1)))
    else
        echo "   $p passed ($((SECONDS - start)) s)"
    fi
    passed=$((passed + p))
}

# Shell suites: the build's configuration and make run, driven as a user would.
run_tools() {
    local s name log start rc synth p f sk took
    for s in tests/tools/test_*.sh; do
        [ -f "$s" ] || continue
        name=tools/$(basename "$s" .sh)
        log="$out/${name//\//_}.log"
        echo "== $name"
        start=$SECONDS
        timeout 900 bash "$s" >"$log" 2>&1
        rc=$?
        took="$((SECONDS - start)) s"
        synth=$(grep -a '^Synthesis: [0-9]* passed, [0-9]* failed$' "$log" | tail -n 1)
        p=$(sed -n 's/^Synthesis: \([0-9]*\) passed.*/\1/p' <<<"$synth")
        f=$(sed -n 's/.* \([0-9]*\) failed$/\1/p' <<<"$synth")
        p=${p:-0} f=${f:-0}
        sk=$(grep -a -c '^\[SKIP\]' "$log" || true)
        if [ "$rc" -eq 0 ] && [ "$f" -eq 0 ] && [ "$p" -eq 0 ] && [ "$sk" -gt 0 ]; then
            # Every test skipped itself, saying why (a machine without network
            # namespaces, say): not a pass, not a failure.
            grep -a '^\[SKIP\]' "$log" | sed 's/^/   /'
            echo "   $sk skipped"
            skipped=$((skipped + sk))
            continue
        fi
        if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] || [ "$p" -eq 0 ]; then
            grep -a -A 15 '^\[FAIL\]' "$log" | head -n 60
            echo "   FAILED: $name (exit $rc, $f failing, $took; full log: $log)"
            failed_suites+=("$name")
            failed=$((failed + (f > 0 ? f : 1)))
        else
            echo "   $p passed ($took)"
        fi
        passed=$((passed + p))
    done
}

# Every fuzz target replays its committed corpus (crashes found before stay fixed).
run_fuzz() {
    local f t corpus log
    for f in build/fuzz/fuzz-bin/fuzz_*; do
        [ -x "$f" ] || continue
        t=$(basename "$f")
        corpus="tests/fuzz/corpus/${t#fuzz_}"
        echo "== fuzz corpus $t"
        log="$out/$t.log"
        if [ -d "$corpus" ] && timeout 300 "$f" -runs=0 -timeout=30 "$corpus" >"$log" 2>&1; then
            echo "   1 passed"
            passed=$((passed + 1))
        else
            tail -n 20 "$log"
            echo "   FAILED: $t (full log: $log)"
            failed_suites+=("$t")
            failed=$((failed + 1))
        fi
    done
}

# The second pass: the suites that touch the database, and the browser tests, on
# PostgreSQL. One server for all of them (one initdb per run); each test makes its
# own database in it.
run_postgres_pass() {
    local pg_root pg_env
    echo "== PostgreSQL pass: one server for ${#pg_bins[@]} suites"
    pg_root=$(mktemp -d /tmp/shop-pg-pass-XXXXXX)
    # The server runs as the postgres user when we are root: it must enter the folder.
    chmod 711 "$pg_root"
    pg_cleanup() {
        tools/pg-test-server.sh stop "$pg_root/server" >/dev/null 2>&1
        rm -rf "$pg_root"
    }
    # Stopped whatever happens: a failed suite, a timeout, ^C.
    trap pg_cleanup EXIT
    trap 'pg_cleanup; exit 130' INT TERM
    if pg_env=$(tools/pg-test-server.sh start "$pg_root/server" 2>"$out/pg-test-server.log"); then
        export $pg_env
        SHOP_TEST_DATABASE=postgres run_suites postgres "${pg_bins[@]}"
        [ "$e2e" -eq 0 ] || run_e2e postgres
        unset SHOP_TEST_PG_HOST SHOP_TEST_PG_PORT
    else
        sed 's/^/   /' "$out/pg-test-server.log"
        echo "   FAILED: the PostgreSQL test server did not start (log: $out/pg-test-server.log)"
        failed_suites+=("postgres server")
        failed=$((failed + 1))
    fi
    pg_cleanup
    trap - EXIT INT TERM
}

# A lane runs in a subshell of its own: it leaves its counts in a file for the
# main run to add up (line 1: passed failed skipped; then one failed suite a line).
save_tally() {
    { echo "$passed $failed $skipped"; [ ${#failed_suites[@]} -eq 0 ] || printf '%s\n' "${failed_suites[@]}"; } >"$1"
}
add_tally() {
    local p f s line
    read -r p f s <"$1" || { failed=$((failed + 1)); failed_suites+=("lane $1"); return; }
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    while IFS= read -r line; do failed_suites+=("$line"); done < <(tail -n +2 "$1")
}

# The SQLite lane: the suites on SQLite, then the browser tests on SQLite (unless
# this run is only the PostgreSQL pass: make test-postgres).
sqlite_lane() {
    if [ "$only_e2e" -eq 0 ] && [ ${#bins[@]} -gt 0 ]; then
        SHOP_TEST_DATABASE=sqlite run_suites sqlite "${bins[@]}"
    fi
    if [ "$e2e" -eq 1 ] && { [ ${#bins[@]} -gt 0 ] || [ ${#pg_bins[@]} -eq 0 ]; }; then
        run_e2e sqlite
    fi
}

# The other lane: the PostgreSQL pass, then the shell suites.
other_lane() {
    if [ "$only_e2e" -eq 0 ] && [ ${#pg_bins[@]} -gt 0 ]; then
        run_postgres_pass
    fi
    if [ "$tools" -eq 1 ] && [ "$only_e2e" -eq 0 ]; then
        run_tools
    fi
}

# make test has work for both lanes: they run side by side, one per core, which
# keeps the whole run within its ten minutes. The SQLite lane prints as it goes,
# the other lane's report follows it. Each suite still runs its own tests one
# after another, and the timing-sensitive checks allow for a busy machine.
lanes=0
if [ ${#bins[@]} -gt 0 ] && { [ ${#pg_bins[@]} -gt 0 ] || [ "$tools" -eq 1 ]; } && [ "$only_e2e" -eq 0 ]; then
    lanes=1
fi
if [ "$lanes" -eq 1 ]; then
    lane_dir=$(mktemp -d /tmp/shop-test-lanes-XXXXXX)
    (
        passed=0 failed=0 skipped=0 failed_suites=()
        other_lane
        save_tally "$lane_dir/other.tally"
    ) >"$lane_dir/other.out" 2>&1 &
    other_pid=$!
    # ^C reaches the lane too (one process group); a TERM to this script is passed on.
    kill_tree() {
        local child
        for child in $(pgrep -P "$1"); do kill_tree "$child"; done
        kill -TERM "$1" 2>/dev/null
    }
    trap 'kill_tree "$other_pid"; wait "$other_pid"; rm -rf "$lane_dir"; exit 130' INT TERM
    sqlite_lane
    wait "$other_pid"
    trap - INT TERM
    cat "$lane_dir/other.out"
    add_tally "$lane_dir/other.tally"
    rm -rf "$lane_dir"
else
    sqlite_lane
    other_lane
fi

if [ "$fuzz" -eq 1 ] && [ "$only_e2e" -eq 0 ]; then
    run_fuzz
fi

[ ${#failed_suites[@]} -eq 0 ] || echo "Failed suites: ${failed_suites[*]}"
echo "Tests: $passed passed, $failed failed$([ "$skipped" -gt 0 ] && echo ", $skipped skipped") in $SECONDS s"
[ "$failed" -eq 0 ]
