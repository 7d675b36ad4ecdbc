#!/usr/bin/env bash
# Runs the test binaries given as arguments (Criterion), then the browser tests,
# and prints one closing line "Tests: N passed, N failed".
#   --no-e2e     skip the browser tests
#   --only-e2e   run only the browser tests
#   --fuzz       replay every fuzz target's corpus
#   --tools      run the shell suites tests/tools/test_*.sh (build, make run)
set -uo pipefail
cd "$(dirname "$0")/.."
e2e=1
fuzz=0
tools=0
only_e2e=0
bins=()
for a in "$@"; do
    case "$a" in
    --no-e2e) e2e=0 ;;
    --only-e2e) only_e2e=1 ;;
    --fuzz) fuzz=1 ;;
    --tools) tools=1 ;;
    *) bins+=("$a") ;;
    esac
done

out=${SHOP_TEST_OUTPUT:-$PWD/test-output}
mkdir -p "$out"
passed=0
failed=0
skipped=0
failed_suites=()

if [ "$only_e2e" -eq 0 ]; then
    for b in "${bins[@]}"; do
        name=${b#*/tests/}
        log="$out/${name//\//_}.log"
        echo "== $name"
        # Integration suites start servers: run their tests one after another to keep
        # the two cores from being oversubscribed (and timing-sensitive checks honest).
        jobs=()
        case "$name" in integration/*|api/*) jobs=(--jobs=1) ;; esac
        # --verbose: a skipped test says so ("[SKIP] suite::test: why").
        TERM=dumb timeout 900 "$b" "${jobs[@]}" --verbose >"$log" 2>&1
        rc=$?
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
            echo "   FAILED: $name (exit $rc, $t tested, $f failing, $c crashing; full log: $log)"
            failed_suites+=("$name")
            failed=$((failed + (f + c > 0 ? f + c : 1)))
        else
            echo "   $p passed"
        fi
        passed=$((passed + p))
    done
fi

# Shell suites: the build's configuration and make run, driven as a user would.
if [ "$tools" -eq 1 ] && [ "$only_e2e" -eq 0 ]; then
    for s in tests/tools/test_*.sh; do
        [ -f "$s" ] || continue
        name=tools/$(basename "$s" .sh)
        log="$out/${name//\//_}.log"
        echo "== $name"
        timeout 900 bash "$s" >"$log" 2>&1
        rc=$?
        synth=$(grep -a '^Synthesis: [0-9]* passed, [0-9]* failed$' "$log" | tail -n 1)
        p=$(sed -n 's/^Synthesis: \([0-9]*\) passed.*/\1/p' <<<"$synth")
        f=$(sed -n 's/.* \([0-9]*\) failed$/\1/p' <<<"$synth")
        p=${p:-0} f=${f:-0}
        if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] || [ "$p" -eq 0 ]; then
            grep -a -A 15 '^\[FAIL\]' "$log" | head -n 60
            echo "   FAILED: $name (exit $rc, $f failing; full log: $log)"
            failed_suites+=("$name")
            failed=$((failed + (f > 0 ? f : 1)))
        else
            echo "   $p passed"
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

if [ "$e2e" -eq 1 ] && compgen -G "tests/e2e/*.test.mjs" >/dev/null; then
    echo "== e2e (headless Chromium)"
    log="$out/e2e.log"
    NODE_PATH="$PWD/tools/node_modules" timeout 900 node --test --test-concurrency=1 tests/e2e/*.test.mjs >"$log" 2>&1
    rc=$?
    p=$(sed -n 's/^# pass \([0-9]*\)/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^# fail \([0-9]*\)/\1/p' "$log" | tail -n 1)
    p=${p:-0} f=${f:-0}
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] || [ "$p" -eq 0 ]; then
        grep -E 'not ok|Error|error|expected|actual' "$log" | head -n 60
        echo "   FAILED: e2e (exit $rc; full log: $log)"
        failed_suites+=(e2e)
        failed=$((failed + (f > 0 ? f : 1)))
    else
        echo "   $p passed"
    fi
    passed=$((passed + p))
fi

[ ${#failed_suites[@]} -eq 0 ] || echo "Failed suites: ${failed_suites[*]}"
echo "Tests: $passed passed, $failed failed$([ "$skipped" -gt 0 ] && echo ", $skipped skipped")"
[ "$failed" -eq 0 ]
