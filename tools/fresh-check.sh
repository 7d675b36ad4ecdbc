#!/usr/bin/env bash
# make fresh-check: the README's two commands on a fresh Debian 12 machine.
#
# Builds (once, then cached) a minimal Debian 12 root with debootstrap plus make,
# gcc and git, unpacks a new copy of it for every check, puts a clean git clone of
# the current commit into it (a clone on its own, as a user has it), and runs there, as root:
#   make run    until the home page serves, then register, log in, add to cart and
#               check out over curl until the order is `sent`, then a real SIGINT
#               to make run and a check that no process of the stack is left;
#   make test   the whole suite, on SQLite and then its database suites on PostgreSQL
#               (Debian's server in a temporary folder, run as the package's postgres user).
# The host's apt sources and configuration and the CA bundle that SSL_CERT_FILE /
# NODE_EXTRA_CA_CERTS name are carried in, so that apt and npm in the root reach
# the registries the host does. make run uses free ports (RUN_*_PORT): the root
# shares the host's network. /proc, /dev, /dev/shm and /sys are mounted and always
# unmounted, and every process left in the root is killed, also on failure or Ctrl-C.
#
# Settings: FRESH_CHECK_CACHE (default ~/.cache/shop-fresh-check) holds the
# pristine root; FRESH_CHECK_KEEP=1 keeps the used root for a look afterwards. The
# logs (make run, make test and its test-output) go to test-output/fresh-check/.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
CACHE=${FRESH_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shop-fresh-check}
SUITE=bookworm
TARBALL=$CACHE/$SUITE-minbase.tar

say() { printf '[fresh-check] %s\n' "$*"; }
# A signal's trap runs inside the command it interrupted, with that command's
# redirections (make test >test.log): cleanup reports through these instead.
exec {OUT_FD}>&1 {ERR_FD}>&2
die() {
    printf '[fresh-check] error: %s\n' "$*" >&2
    exit 1
}
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mounts)"
if ! command -v debootstrap >/dev/null; then
    # Like every other tool the project needs, installed when it is missing.
    say "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -q debootstrap || { apt-get update -q && apt-get install -y -q debootstrap; }; } >/dev/null ||
        die "could not install debootstrap: apt-get install debootstrap"
fi
git rev-parse --verify HEAD >/dev/null 2>&1 || die "not a git checkout"
[ -z "$(git status --porcelain --untracked-files=no)" ] ||
    say "note: uncommitted changes are not checked (a clone of HEAD is)"

t0=$SECONDS
step_start=$SECONDS
step() {
    say "$1 done in $((SECONDS - step_start)) s"
    step_start=$SECONDS
}

# --- the pristine root, cached -------------------------------------------------------
mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
    say "bootstrapping Debian $SUITE (minbase, make, gcc, git) into the cache $CACHE"
    tmp=$(mktemp -d "$CACHE/bootstrap.XXXXXX")
    if ! debootstrap --variant=minbase --include=make,gcc,libc6-dev,git "$SUITE" "$tmp/root" >"$tmp/log" 2>&1; then
        tail -n 20 "$tmp/log" >&2
        rm -rf "$tmp"
        die "debootstrap failed"
    fi
    tar -C "$tmp/root" -cf "$tmp/root.tar" .
    mv "$tmp/root.tar" "$TARBALL"
    rm -rf "$tmp"
    step "bootstrap"
fi

WORK=$(mktemp -d /var/tmp/shop-fresh-check.XXXXXX)
R=$WORK/root
mounted=()

# Every process whose root is R (make run's stack, a test's servers).
root_pids() {
    local d
    for d in /proc/[0-9]*; do
        [ "$(readlink "$d/root" 2>/dev/null)" = "$R" ] && echo "${d#/proc/}"
    done
    return 0
}

cleanup() {
    local rc=$? pids m i
    trap '' INT TERM HUP
    exec >&"$OUT_FD" 2>&"$ERR_FD"
    pids=$(root_pids)
    if [ -n "$pids" ]; then
        say "killing $(wc -w <<<"$pids") processes left in the root"
        kill -TERM $pids 2>/dev/null || true
        sleep 1
        pids=$(root_pids)
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
        sleep 0.5
    fi
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        m=${mounted[i]}
        umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null || say "could not unmount $m"
    done
    # What the tests mounted in the root themselves (ip netns bind-mounts /run/netns),
    # deepest first: otherwise the root could not be removed.
    awk -v root="$R/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
    done
    # The logs outlive the root: test-output/fresh-check/ of this checkout.
    mkdir -p "$SRC/test-output/fresh-check"
    cp "$WORK"/*.log "$SRC/test-output/fresh-check/" 2>/dev/null || true
    [ ! -d "$R/root/shop/test-output" ] || cp -r "$R/root/shop/test-output/." "$SRC/test-output/fresh-check/" 2>/dev/null || true
    if [ "${FRESH_CHECK_KEEP:-0}" = 1 ]; then
        say "root kept in $R"
    elif ! grep -q " $WORK/" /proc/mounts; then
        rm -rf "$WORK"
    fi
    say "total $((SECONDS - t0)) s, $([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit $rc)")"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mkdir -p "$R"
tar -C "$R" -xf "$TARBALL"
step "unpacking a fresh root"

# Package sources and trust of the host.
rm -rf "$R/etc/apt/sources.list.d" "$R/etc/apt/apt.conf.d" "$R/etc/apt/preferences.d"
rm -f "$R/etc/apt/sources.list"
cp -a /etc/apt/sources.list.d /etc/apt/apt.conf.d "$R/etc/apt/"
[ -d /etc/apt/preferences.d ] && cp -a /etc/apt/preferences.d "$R/etc/apt/"
[ -f /etc/apt/sources.list ] && cp -a /etc/apt/sources.list "$R/etc/apt/"
[ -d /etc/apt/trusted.gpg.d ] && cp -a /etc/apt/trusted.gpg.d/. "$R/etc/apt/trusted.gpg.d/"
[ -d /etc/apt/keyrings ] && mkdir -p "$R/etc/apt/keyrings" && cp -a /etc/apt/keyrings/. "$R/etc/apt/keyrings/"
[ -f /etc/apt/trusted.gpg ] && cp -a /etc/apt/trusted.gpg "$R/etc/apt/"
# Keyrings named by Signed-By lines that live outside /etc/apt.
keys=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -oE 'signed-by=[^] ]+|Signed-By: *[^ ]+' | sed -E 's/^(signed-by=|Signed-By: *)//' | sort -u || true)
for k in $keys; do
    if [ -f "$k" ] && [ ! -e "$R$k" ]; then mkdir -p "$R$(dirname "$k")" && cp -a "$k" "$R$k"; fi
done
cp -L /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
env_in=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb LANG=C.UTF-8 CI=true)
ca=${SSL_CERT_FILE:-${NODE_EXTRA_CA_CERTS:-}}
if [ -n "$ca" ] && [ -f "$ca" ]; then
    # Its own path: installing ca-certificates in the root rewrites /etc/ssl/certs.
    mkdir -p "$R/usr/local/share/host-ca"
    cp -L "$ca" "$R/usr/local/share/host-ca/ca-bundle.crt"
    env_in+=(SSL_CERT_FILE=/usr/local/share/host-ca/ca-bundle.crt NODE_EXTRA_CA_CERTS=/usr/local/share/host-ca/ca-bundle.crt)
fi

for m in proc sys dev; do mkdir -p "$R/$m"; done
mount -t proc proc "$R/proc" && mounted+=("$R/proc")
mount -t sysfs sysfs "$R/sys" && mounted+=("$R/sys")
mount --rbind /dev "$R/dev" && mount --make-rslave "$R/dev" && mounted+=("$R/dev")
mkdir -p "$R/dev/shm"
mount -t tmpfs -o mode=1777 shm "$R/dev/shm" && mounted+=("$R/dev/shm")

# A clean clone of this commit; nothing beside it.
git clone -q --no-hardlinks "$SRC" "$R/root/shop"
git -C "$R/root/shop" checkout -q "$(git rev-parse HEAD)"
say "checking commit $(git rev-parse --short HEAD)"

# Free ports for make run (the root shares the host's network).
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 12000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}
ports=() used=" "
for s in RUN_BALANCER_PORT RUN_TLS_PORT RUN_SHOPD1_PORT RUN_SHOPD2_PORT RUN_ADMIN_PORT RUN_DYNAMODB_PORT; do
    while p=$(free_port) && [[ $used == *" $p "* ]]; do :; done
    used+="$p "
    ports+=("$p")
    env_in+=("$s=$p")
done
B=http://127.0.0.1:${ports[0]}

in_root() { chroot "$R" /usr/bin/env -i "${env_in[@]}" /bin/bash -c "$1" {OUT_FD}>&- {ERR_FD}>&-; }

# --- make run ------------------------------------------------------------------------
say "make run (log: $WORK/run.log)"
# A job started with & from a script ignores SIGINT, and bash cannot trap a signal
# ignored at its start: --default-signal gives make run the SIGINT of a terminal.
chroot "$R" /usr/bin/env --default-signal=INT,QUIT -i "${env_in[@]}" setsid /bin/bash -c 'cd /root/shop && exec make run' {OUT_FD}>&- {ERR_FD}>&- \
    </dev/null >"$WORK/run.log" 2>&1 &
runpid=$!
for ((i = 0; i < 1800; i++)); do
    [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$B/" 2>/dev/null)" = 200 ] && break
    kill -0 "$runpid" 2>/dev/null || { tail -n 40 "$WORK/run.log" >&2; die "make run ended before the shop served"; }
    sleep 1
done
[ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$B/")" = 200 ] || die "the home page did not serve within 30 min"
step "make run until the home page serves"

J='Content-Type: application/json'
jar=$WORK/jar
curl -sf -X POST "$B/register" -H "$J" -d '{"email":"fresh@example.com","password":"fresh-check-1"}' >/dev/null ||
    die "register failed"
curl -sf -c "$jar" -X POST "$B/login" -H "$J" -d '{"email":"fresh@example.com","password":"fresh-check-1"}' \
    >/dev/null || die "login failed"
pid=$(curl -sf "$B/products" | grep -o '"id":[0-9]*' | head -n 1 | cut -d: -f2)
[ -n "$pid" ] || die "no product in the catalog"
curl -sf -b "$jar" -X POST "$B/cart/items" -H "$J" -d "{\"product_id\":$pid,\"quantity\":1}" >/dev/null ||
    die "add to cart failed"
curl -sf -b "$jar" -X POST "$B/checkout" -H 'Idempotency-Key: fresh-check' >/dev/null || die "checkout failed"
for ((i = 0; i < 60; i++)); do
    curl -sf -b "$jar" "$B/orders" | grep -q '"status":"sent"' && break
    sleep 1
done
curl -sf -b "$jar" "$B/orders" | grep -q '"status":"sent"' || die "the order did not reach the local DynamoDB (sent)"
step "register, login, add to cart, checkout, order sent"

# A real SIGINT, as Ctrl-C sends it, to make and everything in its group.
kill -INT -- "-$runpid"
for ((i = 0; i < 60; i++)); do kill -0 "$runpid" 2>/dev/null || break; sleep 1; done
kill -0 "$runpid" 2>/dev/null && die "make run did not end within 60 s of SIGINT"
sleep 1
left=""
for d in /proc/[0-9]*; do
    [ "$(readlink "$d/root" 2>/dev/null)" = "$R" ] || continue
    left+=" ${d#/proc/}($(tr '\0' ' ' <"$d/cmdline" | cut -c1-60))"
done
[ -z "$left" ] || die "processes left after make run stopped:$left"
for p in "${ports[@]}"; do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && die "port $p still taken after make run stopped"
done
grep -q 'stopped everything' "$WORK/run.log" || die "make run did not say it stopped everything"
step "SIGINT: make run stopped, no process left, ports free"

# --- make test -----------------------------------------------------------------------
say "make test (log: $WORK/test.log)"
if ! in_root 'cd /root/shop && make test' >"$WORK/test.log" 2>&1; then
    # The failing tests' own lines (what each suite printed after [FAIL]) go to
    # the output too: the root and its logs are gone when CI shows this.
    grep -a -A 16 '^\[FAIL\]' "$WORK/test.log" | head -n 150 >&2
    grep -E 'FAILED|Failed suites|^Tests:' "$WORK/test.log" >&2 || tail -n 40 "$WORK/test.log" >&2
    FRESH_CHECK_KEEP=${FRESH_CHECK_KEEP:-0}
    die "make test failed in the fresh root"
fi
grep '^Tests:' "$WORK/test.log" | sed 's/^/[fresh-check] make test: /'
# The PostgreSQL pass needs the server of the postgresql package, run as its postgres
# user: a root where the pass was left out has not proven that install step.
grep -q '^== PostgreSQL pass' "$WORK/test.log" || die "make test ran no PostgreSQL pass in the fresh root"
step "make test (SQLite and PostgreSQL)"
