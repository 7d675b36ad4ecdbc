# Shared by the shell test suites tests/tools/test_*.sh (sourced, not run).
#
# A suite defines functions named test_<name> and ends with `t_main "$@"`. Each
# test runs in its own subshell with `set -e`, in a fresh temporary folder ($T,
# removed afterwards), with its output in SHOP_TEST_OUTPUT/tools-<suite>-<name>.log.
# A test registers cleanup with `t_cleanup CMD...` (run when it ends, also when it
# fails), and ends early with `t_skip REASON` when a tool it needs is missing.
# t_main prints one "[PASS]"/"[FAIL]"/"[SKIP]" line per test and closes with
# "Synthesis: N passed, N failed", which tests/run.sh reads.
#   tests/tools/test_x.sh [NAME...]     runs only the named tests
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# These suites run make themselves, on copies of the checkout: the settings of
# the make that runs them (make test SANITIZE=1 would move BUILD and BIN) are not theirs.
unset MAKEFLAGS MAKELEVEL MFLAGS SANITIZE
ROOT=$PWD
SHOP_BIN=${SHOP_BIN:-$ROOT/bin}
T_OUT=${SHOP_TEST_OUTPUT:-$ROOT/test-output}
T_SUITE=$(basename "$0" .sh)
T_SUITE=${T_SUITE#test_}
mkdir -p "$T_OUT"

t_cleanups=()
t_cleanup() { t_cleanups+=("$*"); }
t_run_cleanups() {
    local i
    for ((i = ${#t_cleanups[@]} - 1; i >= 0; i--)); do eval "${t_cleanups[i]}" || true; done
    t_cleanups=()
}

# fail MESSAGE: ends the current test as failed.
fail() {
    echo "FAILED: $*" >&2
    exit 1
}

# t_skip REASON: ends the current test as skipped (only for a tool that is not
# installed: the reason is printed with the test's name, it never counts as passed).
t_skip() {
    echo "SKIPPED: $*" >&2
    exit 77
}

# need TOOL...: skips the current test when one of the commands is not installed.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || t_skip "$tool is not installed"
    done
}

# wait_until SECONDS CMD...: true as soon as CMD succeeds, false after SECONDS.
wait_until() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now, from a range
# the kernel does not hand out to outgoing connections.
free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 12000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
        echo "$p"
        return 0
    done
    return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

t_main() {
    local names=("$@") passed=0 failed=0 name log rc
    if [ ${#names[@]} -eq 0 ]; then
        mapfile -t names < <(declare -F | awk '$3 ~ /^test_/ { print substr($3, 6) }')
    fi
    for name in "${names[@]}"; do
        log="$T_OUT/tools-$T_SUITE-$name.log"
        (
            T=$(mktemp -d "${TMPDIR:-/tmp}/shop-test.XXXXXX")
            trap 't_run_cleanups; rm -rf "$T"' EXIT
            set -e
            "test_$name"
        ) >"$log" 2>&1
        rc=$?
        if [ $rc -eq 0 ]; then
            echo "[PASS] $T_SUITE::$name"
            passed=$((passed + 1))
        elif [ $rc -eq 77 ]; then
            echo "[SKIP] $T_SUITE::$name: $(sed -n 's/^SKIPPED: //p' "$log" | tail -n 1)"
        else
            echo "[FAIL] $T_SUITE::$name (log: $log)"
            tail -n 15 "$log" | sed 's/^/    /'
            failed=$((failed + 1))
        fi
    done
    echo "Synthesis: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
