#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) and explores with each for
# FUZZ_SECONDS (default 60), starting from a copy of its committed corpus in
# tests/fuzz/corpus/<name>/. New crashes are written to build/fuzz/findings/.
#   tools/fuzz.sh [target ...]      e.g. tools/fuzz.sh fuzz_mustache
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory fuzz-build
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in build/fuzz/fuzz-bin/fuzz_*; do targets+=("$(basename "$f")"); done
fi
mkdir -p build/fuzz/findings
for t in "${targets[@]}"; do
    name=${t#fuzz_}
    work=$(mktemp -d)
    cp -r "tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
    echo "== $t for ${seconds}s"
    build/fuzz/fuzz-bin/"$t" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 \
        -artifact_prefix=build/fuzz/findings/"$t"- "$work" 2>&1 | tail -n 3
    rm -rf "$work"
done
