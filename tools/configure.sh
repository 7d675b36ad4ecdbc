#!/usr/bin/env bash
# Writes the link and compile flags of the libraries in tools/libraries.list to a
# make fragment (the Makefile includes build/config.mk and makes it with this),
# once tools/deps.sh has installed the packages: flags computed before the
# packages exist would be empty, and every link would fail.
#
#   tools/configure.sh [--make] OUT     (CONFIGURE_CC: the compiler for link checks,
#                                        default cc; CONFIGURE_LIST: another list, for tests)
#
# A library that cannot be found stops here with one line naming the Debian
# package to install, instead of a wall of undefined references at link time.
# With --make that line goes into OUT as an $(error ...) that fires once make has
# remade OUT and read it again (MAKE_RESTARTS is set then), and OUT is dated 1970
# so that the next make tries again: make stops with just that line.
set -euo pipefail
cd "$(dirname "$0")/.."
for_make=0
if [ "${1:-}" = --make ]; then
    for_make=1
    shift
fi
out=${1:?usage: tools/configure.sh [--make] OUT}
cc=${CONFIGURE_CC:-cc}

fail() {
    if [ "$for_make" -eq 1 ]; then
        mkdir -p "$(dirname "$out")"
        printf '$(if $(MAKE_RESTARTS),$(error %s))\n' "$*" >"$out"
        touch -d @0 "$out"
        exit 0
    fi
    printf 'configure: %s\n' "$*" >&2
    exit 1
}

command -v pkg-config >/dev/null 2>&1 || fail "pkg-config is missing: install the Debian package pkg-config (make deps)"
command -v "$cc" >/dev/null 2>&1 || fail "the C compiler $cc is missing: install the Debian package ${cc##*/} (make deps)"

modules_all=() modules_tests=() libs_all=() libs_tests=()
while read -r name package scope _; do
    case $name in '' | '#'*) continue ;; esac
    [ -n "${package:-}" ] && [ -n "${scope:-}" ] || fail "tools/libraries.list: line '$name' needs a package and a scope"
    if [[ $name == -l* ]]; then
        # No pkg-config module: the library must link.
        echo 'int main(void) { return 0; }' | "$cc" -x c - -o /dev/null "$name" >/dev/null 2>&1 ||
            fail "library ${name#-l} is missing: install the Debian package $package (make deps)"
        [ "$scope" = tests ] && libs_tests+=("$name") || libs_all+=("$name")
    else
        pkg-config --exists "$name" 2>/dev/null ||
            fail "pkg-config module $name is missing: install the Debian package $package (make deps)"
        [ "$scope" = tests ] && modules_tests+=("$name") || modules_all+=("$name")
    fi
done <"${CONFIGURE_LIST:-tools/libraries.list}"

tmp="$out.tmp.$$"
mkdir -p "$(dirname "$out")"
{
    echo "# Written by tools/configure.sh from tools/libraries.list; make remakes it."
    echo "PKG_CFLAGS := $(pkg-config --cflags "${modules_all[@]}")"
    echo "PKG_LIBS := $(pkg-config --libs "${modules_all[@]}") ${libs_all[*]-} -lm"
    if [ ${#modules_tests[@]} -gt 0 ]; then
        echo "TEST_CFLAGS := $(pkg-config --cflags "${modules_tests[@]}")"
        echo "TEST_LIBS := $(pkg-config --libs "${modules_tests[@]}") ${libs_tests[*]-}"
    else
        echo "TEST_CFLAGS :="
        echo "TEST_LIBS := ${libs_tests[*]-}"
    fi
} >"$tmp"
mv "$tmp" "$out"
