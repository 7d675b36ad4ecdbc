#!/usr/bin/env bash
# make install: puts the shop where a Debian host runs it under systemd.
#
#   tools/install.sh DESTDIR PREFIX BIN_DIR       (make install PREFIX=/usr/local DESTDIR=...)
#
#   PREFIX/bin/{shopd,balancer,ratelimitd}
#   PREFIX/share/shop/templates/               HTML templates, static/ inside (STATIC_DIR)
#   PREFIX/share/doc/shop/                     README.md, env_example (every setting)
#   /etc/systemd/system/                       shop.target, shop-ratelimitd.service,
#                                              shopd@.service, shop-balancer.service
#   /etc/sysusers.d/shop.conf                  the system user `shop`
#   /etc/shop/ratelimit.rules                  budgets (an edited one is kept)
#   /etc/shop/shop.env.example                 the production settings to copy to shop.env
#
# Everything lands under DESTDIR (empty for the real thing). Units and examples name
# /usr/local; they are rewritten to PREFIX. Units go to /etc/systemd/system whatever
# PREFIX is, because that is where systemd always looks. /etc/shop/shop.env is never
# written: it holds the site's secrets (see README, "Deployment on a Debian host").
# Without DESTDIR, as root on a systemd host, the user is created and systemd reloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 3 ]; then
    echo "usage: tools/install.sh DESTDIR PREFIX BIN_DIR" >&2
    exit 2
fi
destdir=${1%/}
prefix=${2%/}
bin=$3
case "$prefix" in
*[[:space:]]*)
    echo "install: PREFIX must not contain spaces (systemd's ExecStart= would split it): '$prefix'" >&2
    exit 2
    ;;
/*) ;;
*)
    echo "install: PREFIX must be an absolute path, not '$prefix'" >&2
    exit 2
    ;;
esac
for b in shopd balancer ratelimitd; do
    [ -x "$bin/$b" ] || {
        echo "install: $bin/$b is missing (run make first)" >&2
        exit 1
    }
done

# Rewrites /usr/local to PREFIX (sed replacement text escaped).
prefix_sed=$(printf '%s' "$prefix" | sed 's/[\\|&]/\\&/g')
rewrite() { sed "s|/usr/local|$prefix_sed|g" "$1"; }

# install_rewritten SRC DEST MODE: SRC with PREFIX substituted.
install_rewritten() {
    local tmp
    tmp=$(mktemp)
    rewrite "$1" >"$tmp"
    install -m "$3" "$tmp" "$2"
    rm -f "$tmp"
}

say() { echo "install: $*"; }

P=$destdir$prefix
E=$destdir/etc

install -d -m 755 "$P/bin" "$P/share/shop" "$P/share/doc/shop" "$E/systemd/system" "$E/sysusers.d" "$E/shop"
for b in shopd balancer ratelimitd; do
    install -m 755 "$bin/$b" "$P/bin/$b"
done
say "binaries in $P/bin"

# Templates and static files, tree as in the checkout (static/ inside templates/).
rm -rf "$P/share/shop/templates"
(cd templates && find . -type d) | while read -r d; do
    install -d -m 755 "$P/share/shop/templates/$d"
done
(cd templates && find . -type f) | while read -r f; do
    install -m 644 "templates/$f" "$P/share/shop/templates/$f"
done
say "templates and static files in $P/share/shop/templates"

install -m 644 README.md "$P/share/doc/shop/README.md"
install -m 644 .env_example "$P/share/doc/shop/env_example"

for u in shop.target shop-ratelimitd.service shopd@.service shop-balancer.service; do
    install_rewritten "deploy/$u" "$E/systemd/system/$u" 644
done
install -m 644 deploy/shop.sysusers "$E/sysusers.d/shop.conf"
say "systemd units in $E/systemd/system, user in $E/sysusers.d/shop.conf"

install_rewritten deploy/shop.env.example "$E/shop/shop.env.example" 644
if [ ! -e "$E/shop/ratelimit.rules" ]; then
    install -m 644 deploy/ratelimit.rules "$E/shop/ratelimit.rules"
elif ! cmp -s deploy/ratelimit.rules "$E/shop/ratelimit.rules"; then
    install -m 644 deploy/ratelimit.rules "$E/shop/ratelimit.rules.dist"
    say "kept your $E/shop/ratelimit.rules; this version's is ratelimit.rules.dist"
fi
if [ -e "$E/shop/shop.env" ]; then
    say "kept $E/shop/shop.env (compare with shop.env.example for new settings)"
else
    say "next: create $E/shop/shop.env from shop.env.example (README, \"Deployment on a Debian host\")"
fi

if [ -z "$destdir" ] && [ "$(id -u)" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemd-sysusers /etc/sysusers.d/shop.conf
    systemctl daemon-reload
    say "user shop present; systemd reloaded"
fi
