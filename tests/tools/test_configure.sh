#!/usr/bin/env bash
# The build's library flags: tools/configure.sh and build/config.mk.
source "$(dirname "$0")/lib.sh"

# Every library of the list is found and linked (the flags were empty when they
# were computed before the packages were installed).
test_writes_the_flags() {
    tools/configure.sh "$T/config.mk"
    cat "$T/config.mk"
    grep -q '^PKG_LIBS := .*-levent' "$T/config.mk" || fail "no libevent in PKG_LIBS"
    grep -q '^PKG_LIBS := .*-lcrypto' "$T/config.mk" || fail "no OpenSSL in PKG_LIBS"
    grep -q '^PKG_LIBS := .*-lhttp_parser' "$T/config.mk" || fail "no http_parser in PKG_LIBS"
    grep -q '^TEST_LIBS := .*-lcriterion' "$T/config.mk" || fail "no Criterion in TEST_LIBS"
}

# A pkg-config module that is not installed stops with one line naming the package.
test_missing_module_names_the_package() {
    mkdir "$T/empty"
    if PKG_CONFIG_LIBDIR=$T/empty PKG_CONFIG_PATH= tools/configure.sh "$T/config.mk" 2>"$T/err"; then
        fail "configure succeeded without any pkg-config module"
    fi
    cat "$T/err"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "expected one line"
    grep -q 'install the Debian package libevent-dev' "$T/err" || fail "the line does not name libevent-dev"
    [ ! -e "$T/config.mk" ] || fail "a config.mk was written anyway"
}

# A library without pkg-config module that does not link names its package too.
test_missing_library_names_the_package() {
    printf '# name package scope\n-lshop_no_such_library  libshop-nothing-dev  all\n' >"$T/list"
    if CONFIGURE_LIST=$T/list tools/configure.sh "$T/config.mk" 2>"$T/err"; then
        fail "configure succeeded with a library that does not exist"
    fi
    cat "$T/err"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "expected one line"
    grep -q 'library shop_no_such_library is missing: install the Debian package libshop-nothing-dev' "$T/err" ||
        fail "the line does not name the package"
}

# make itself stops with that line, before compiling or linking anything.
test_make_stops_before_linking() {
    mkdir -p "$T/empty" "$T/b"
    # deps already ran for this build folder: the stamp is newer than its inputs.
    touch "$T/b/deps-build.stamp"
    if PKG_CONFIG_LIBDIR=$T/empty PKG_CONFIG_PATH= make --no-print-directory BUILD="$T/b" BIN="$T/bin" all \
        >"$T/out" 2>&1; then
        fail "make succeeded without any pkg-config module"
    fi
    cat "$T/out"
    grep -q 'pkg-config module libevent is missing: install the Debian package libevent-dev' "$T/out" ||
        fail "make does not name the package"
    [ "$(wc -l <"$T/out")" -eq 1 ] || fail "make said more than one line"
    ! grep -q 'undefined reference' "$T/out" || fail "make went on to link"
    [ ! -e "$T/b/shopd/main.o" ] || fail "make compiled before it had the flags"
    # Once the module is there, the next make finds it without being told.
    make --no-print-directory BUILD="$T/b" BIN="$T/bin" "$T/b/config.mk" >/dev/null
    grep -q '^PKG_LIBS := .*-levent' "$T/b/config.mk" || fail "config.mk was not made again"
}

# config.mk is made again when the list of libraries changes.
test_config_follows_the_list() {
    mkdir -p "$T/b"
    make --no-print-directory BUILD="$T/b" BIN="$T/bin" "$T/b/config.mk" >/dev/null
    [ -s "$T/b/config.mk" ] || fail "no config.mk"
    touch -d '2000-01-01' "$T/b/config.mk"
    make --no-print-directory BUILD="$T/b" BIN="$T/bin" "$T/b/config.mk" >/dev/null
    [ "$T/b/config.mk" -nt tools/libraries.list ] || fail "config.mk older than tools/libraries.list was kept"
}

t_main "$@"
