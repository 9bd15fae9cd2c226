#!/bin/sh
# sync-group.sh - make a group of ctxvault instances that sync with each
# other on this host (doc/SYNC.md, "Setting up"): what the tests, the bench
# and a curious operator use.
#
#   sh tools/sync-group.sh DIR PORT [--relay NAME] DEVICE...
#
# Each instance is DIR/NAME (`ctxvault init`). With --relay, NAME is a
# relay listening on tcp://127.0.0.1:PORT that every device connects to;
# without, the first device listens there and the others connect to it.
# The listening side pins every other instance's sync key (allow.NAME),
# each connecting side pins the listener's (peer.NAME). The devices share
# the first device's end-to-end key; the relay keeps none. ctxvault must
# be on PATH. Nothing is started.
set -eu

die() { printf 'sync-group: %s\n' "$*" >&2; exit 64; }
[ $# -ge 3 ] || die "usage: sync-group.sh DIR PORT [--relay NAME] DEVICE..."
dir=$1 port=$2
shift 2
relay=
if [ "$1" = --relay ]; then
    relay=$2
    shift 2
fi
[ $# -ge 1 ] || die "no device named"

init() {
    CTXVAULT_HOME=$dir/$1 ctxvault init > /dev/null
    # no HTTP port for ctxvault-metrics: instances side by side would share it
    sed -i 's|^listen .*|listen = 127.0.0.1:0|' "$dir/$1/ctxvault.conf"
}
key() { CTXVAULT_HOME=$dir/$1 ctxvault sync key; }
set_conf() { sed -i "s|^$2[[:space:]]*=.*|$2 = $3|" "$dir/$1/ctxvault.conf"; }
add_conf() { printf '%s\n' "$2" >> "$dir/$1/ctxvault.conf"; } # [sync] is last

mkdir -p "$dir"
first=$1
for d in "$@"; do
    init "$d"
    set_conf "$d" device "$d"
done
if [ -n "$relay" ]; then
    init "$relay"
    set_conf "$relay" relay yes
    rm -f "$dir/$relay/keys/sync.key" # a relay never holds the group's key
    listener=$relay
else
    listener=$first
fi
add_conf "$listener" "listen = tcp://127.0.0.1:$port"
lkey=$(key "$listener")
for d in "$@"; do
    [ "$d" = "$listener" ] && continue
    add_conf "$listener" "allow.$d = $(key "$d")"
    add_conf "$d" "peer.$listener = tcp://127.0.0.1:$port $lkey"
    [ "$d" = "$first" ] || cp "$dir/$first/keys/sync.key" "$dir/$d/keys/sync.key"
done
