#!/bin/sh
# run-demo.sh - what `make run` shows: the sample events piped through the
# three filters into an instance under build/demo-home, then what the store
# holds. The instance is kept between runs (init keeps what exists, and the
# store keeps each event id once), so running it again adds nothing.
set -eu

BIN=bin
SAMPLE=tests/data/sample.ndjson
CTXVAULT_HOME=$(pwd)/build/demo-home
export CTXVAULT_HOME

die() { printf 'run-demo: %s\n' "$*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

for p in ctxvault ctxvault-ingest ctxvault-encrypt ctxvault-store; do
    [ -x "$BIN/$p" ] || die "$BIN/$p is missing: build first (make)"
done
[ -f "$SAMPLE" ] || die "$SAMPLE is missing"
# a user in the sample whose data is neither anonymised on arrival nor
# ephemeral: the first with a public or private profile
user=$(sed -n 's/.*"user_id":"\([^"]*\)".*"privacy_level":"\(public\|private\)".*/\1/p' "$SAMPLE" | head -n 1)
[ -n "$user" ] || die "no user with a public or private profile in $SAMPLE"

step "1. the instance: $CTXVAULT_HOME (config, keys, database; kept if present)"
"$BIN/ctxvault" init

step "2. $(wc -l <"$SAMPLE") sample events: validate, encrypt fields, commit"
echo "   $BIN/ctxvault-ingest --stdout $SAMPLE | $BIN/ctxvault-encrypt | $BIN/ctxvault-store"
# no pipefail in sh: collect each stage's status by hand
st=$( { { { "$BIN/ctxvault-ingest" --stdout "$SAMPLE"; echo "ingest=$?" >&3; } \
    | { "$BIN/ctxvault-encrypt"; echo "encrypt=$?" >&3; } \
    | { "$BIN/ctxvault-store"; echo "store=$?" >&3; }; } 3>&1 >&4; } 4>&1 )
for s in $st; do
    case $s in *=0) ;; *) die "the pipeline failed: $st" ;; esac
done

step "3. what the store holds: ctxvault stats"
"$BIN/ctxvault" stats

step "4. $user's latest 5 events as stored (protected fields encrypted or hashed)"
"$BIN/ctxvault" query --user "$user" --limit 5

step "5. the same, decrypted with the instance's keys (hashed fields stay hashed)"
"$BIN/ctxvault" query --user "$user" --limit 5 --decrypt
