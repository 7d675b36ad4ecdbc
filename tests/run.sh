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
        # Integration suites start servers: run their tests one after another to keep
        # the two cores from being oversubscribed (and timing-sensitive checks honest).
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

if [ "$only_e2e" -eq 0 ] && [ ${#bins[@]} -gt 0 ]; then
    SHOP_TEST_DATABASE=sqlite run_suites sqlite "${bins[@]}"
fi

# The second pass: the suites that touch the database, on PostgreSQL. One server for
# all of them (one initdb per run); each test makes its own database in it.
if [ "$only_e2e" -eq 0 ] && [ ${#pg_bins[@]} -gt 0 ]; then
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
fi

# Shell suites: the build's configuration and make run, driven as a user would.
if [ "$tools" -eq 1 ] && [ "$only_e2e" -eq 0 ]; then
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
fi

# Every fuzz target replays its committed corpus (crashes found before stay fixed).
if [ "$fuzz" -eq 1 ] && [ "$only_e2e" -eq 0 ]; then
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
fi

# On SQLite unless this run is only the PostgreSQL pass (make test-postgres).
if [ "$e2e" -eq 1 ] && { [ ${#bins[@]} -gt 0 ] || [ ${#pg_bins[@]} -eq 0 ]; }; then
    run_e2e sqlite
fi

[ ${#failed_suites[@]} -eq 0 ] || echo "Failed suites: ${failed_suites[*]}"
echo "Tests: $passed passed, $failed failed$([ "$skipped" -gt 0 ] && echo ", $skipped skipped") in $SECONDS s"
[ "$failed" -eq 0 ]
