#!/usr/bin/env bash
# The benchmark tools run end to end on a tiny load: they build their helpers,
# start what they measure, check their own results and print them. Figures are
# not judged here (that is make bench's job on a quiet machine); that the tools
# still work is, since make bench is not part of make test.
source "$(dirname "$0")/lib.sh"

need_dynalite() {
    [ -d "$ROOT/tools/node_modules/dynalite" ] || t_skip "dynalite is not installed (make deps)"
}

# A backlog through the 10 ms proxy to dynalite: every order arrives once.
test_dispatcher_bench_delivers_every_order_once() {
    need node sqlite3 cc pkg-config curl
    need_dynalite
    SHOP_BIN=$SHOP_BIN tools/bench-dispatcher.sh 120 1 10 >"$T/out" 2>&1 || { cat "$T/out"; fail "the dispatcher bench failed"; }
    cat "$T/out"
    grep -q "run 1: 120 orders, [0-9]* orders/s delivered, all 120 in the table once" "$T/out" ||
        fail "no run delivered all 120 orders once"
    grep -q "^dispatcher throughput: median [0-9]* orders/s" "$T/out" || fail "no median printed"
}

# Checks on against off: both shopd answer, the checked one with RateLimit fields.
test_ratelimit_cost_bench_compares_checks_on_and_off() {
    need wrk redis-server
    BIN=$SHOP_BIN tools/bench-ratelimit-cost.sh 1s 1 >"$T/out" 2>&1 || { cat "$T/out"; fail "the budget-check bench failed"; }
    cat "$T/out"
    grep -Eq "^ratio on/off: [0-9]+\.[0-9]+" "$T/out" || fail "no ratio printed"
    grep -Eq "^checks on +[1-9][0-9]* " "$T/out" || fail "no rate with checks"
}

# make bench itself, one short scenario and the logins: the table, the worker
# memory after the logins and latest.json.
test_make_bench_writes_its_table_and_results() {
    need wrk redis-server node gnuplot
    need_dynalite
    BIN=$SHOP_BIN BENCH_RESULTS="$T/results" BENCH_SCENARIOS="products login" BENCH_TARGETS=direct \
        BENCH_CONNECTIONS=16 BENCH_RUNS=1 BENCH_DURATION=1s BENCH_LOGIN_DURATION=1s BENCH_LOGIN_CONNECTIONS=2 \
        BENCH_WARMUP=1s BENCH_BALANCER=0 BENCH_RATELIMITD=0 BENCH_TLS=0 BENCH_STATIC_PEER=0 BENCH_FLASK=0 \
        BENCH_DATABASE=0 BENCH_DISPATCHER=0 tools/bench.sh >"$T/out" 2>&1 || { cat "$T/out"; fail "make bench failed"; }
    cat "$T/out"
    if grep -Ei "syntax error|command not found|unbound variable" "$T/out"; then
        fail "the bench script has an error"
    fi
    grep -Eq "^products +direct +16 \| +[1-9]" "$T/out" || fail "no products row in the table"
    grep -Eq "worker RSS 10 s after the logins: [0-9.]+ MiB \(peak" "$T/out" || fail "no worker memory after the logins"
    grep -q "HAProxy" "$T/out" && fail "a balancer table was printed though that part was off"
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["results"], "no results"' \
        "$T/results/latest.json" || fail "latest.json has no results"
}

t_main "$@"
