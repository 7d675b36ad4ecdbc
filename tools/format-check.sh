#!/usr/bin/env bash
# make format-check: every C file of the repository as clang-format (with the
# project's .clang-format) would write it. Prints the files that differ and how,
# and exits 1 when any does; `make format` rewrites them.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "format-check: clang-format is missing (make deps)" >&2; exit 1; }
mapfile -t files < <(git ls-files '*.c' '*.h')
bad=()
for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
        bad+=("$f")
    fi
done
echo "== format-check ($(clang-format --version | sed 's/.*version //'))"
if [ ${#bad[@]} -gt 0 ]; then
    for f in "${bad[@]}"; do
        echo "   not formatted: $f"
        { diff -u "$f" <(clang-format "$f") || true; } | sed -n "3,12p" | sed "s/^/      /"
    done
    echo "   FAILED: ${#bad[@]} of ${#files[@]} files differ from clang-format; run make format"
    exit 1
fi
echo "   ${#files[@]} files formatted"
