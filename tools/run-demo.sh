#!/bin/sh
# run-demo.sh - what `make run` shows: the storage pipeline running under
# supervisord (ingest, encrypt and store as long-lived processes joined by
# ZeroMQ), the sample events sent into it with `ctxvault-ingest FILE`, then
# what the store holds. The instance lives in ./var with the embedded
# default configuration; it is kept between runs (init keeps what exists,
# and store keeps each event id once). The sample events are dated to the
# hour it runs (below), so running it again within the hour adds nothing.
#
# supervisord is stopped at the end (SIGTERM: each program drains and exits
# 0). KEEP=1 leaves it running; then
#     CTXVAULT_HOME=$PWD/var tools/supervise.sh status    # or stop
#     CTXVAULT_HOME=$PWD/var bin/ctxvault-ingest more.ndjson
set -eu

BIN=bin
SAMPLE=tests/data/sample.ndjson
CTXVAULT_HOME=$(pwd)/var
CTXVAULT_BIN=$(pwd)/$BIN
export CTXVAULT_HOME CTXVAULT_BIN
unset CTXVAULT_SUPERVISORD_CONF

die() { printf 'run-demo: %s\n' "$*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

for p in ctxvault ctxvault-ingest ctxvault-encrypt ctxvault-store; do
    [ -x "$BIN/$p" ] || die "$BIN/$p is missing: build first (make)"
done
[ -f "$SAMPLE" ] || die "$SAMPLE is missing"
command -v supervisord > /dev/null || die "supervisord is missing: install supervisor (make deps)"
# a user in the sample whose data is neither anonymised on arrival nor
# ephemeral: the first with a public or private profile
user=$(sed -n 's/.*"user_id":"\([^"]*\)".*"privacy_level":"\(public\|private\)".*/\1/p' "$SAMPLE" | head -n 1)
[ -n "$user" ] || die "no user with a public or private profile in $SAMPLE"

step "1. the instance: $CTXVAULT_HOME (config, keys, database; kept if present)"
"$BIN/ctxvault" init

step "2. supervisord runs the pipeline (pipelines/storage.conf): store, encrypt, ingest"
echo "   tools/supervise.sh start   (supervisord -n -c etc/supervisord.conf; logs in var/run/)"
started=no
stop_supervisord() {
    [ "$started" = yes ] || return 0
    started=no
    if [ "${KEEP:-0}" = 1 ]; then
        step "supervisord keeps running (KEEP=1): CTXVAULT_HOME=$CTXVAULT_HOME tools/supervise.sh stop"
        return 0
    fi
    step "7. stop: SIGTERM to supervisord; each program drains and exits 0 (KEEP=1 keeps it running)"
    tools/supervise.sh stop
}
trap 'stop_supervisord' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if tools/supervise.sh status > /dev/null 2>&1; then
    echo "   (already running)"
else
    if ! tools/supervise.sh start 2> "$CTXVAULT_HOME/run/supervise.err"; then
        cat "$CTXVAULT_HOME/run/supervise.err" >&2
        # what it started goes too (supervise.sh leaves a failed start running)
        tools/supervise.sh stop > /dev/null 2>&1 || true
        cause=$(sed -n 's/^supervise: [^ ]* failed: //p' "$CTXVAULT_HOME/run/supervise.err" | head -n 1)
        die "supervisord did not start the pipeline, and is stopped: ${cause:-see above (logs in var/run/)}"
    fi
    started=yes
fi

# The sample's events span two minutes of one past day: dated to this hour
# (tools/dated-sample.sh), so that retention has not already run out for
# them. A rerun within the hour adds nothing; a later one adds again the
# events that carry no id (their derived ids cover the new ts).
dated=$CTXVAULT_HOME/sample.ndjson
sh tools/dated-sample.sh "$SAMPLE" > "$dated" || die "cannot date $SAMPLE into $dated"

step "3. $(wc -l < "$dated") sample events into the running pipeline, dated this hour"
echo "   ($SAMPLE with each ts moved to this hour by tools/dated-sample.sh: $dated)"
echo "   $BIN/ctxvault-ingest $dated   (returns once every event is committed)"
"$BIN/ctxvault-ingest" "$dated" || die "ctxvault-ingest exited $?"

step "4. what the store holds: ctxvault stats"
"$BIN/ctxvault" stats

step "5. $user's latest 5 events as stored (protected fields encrypted or hashed)"
"$BIN/ctxvault" query --user "$user" --limit 5
echo
echo "   decrypted with the instance's keys (each user's fields are under that user's data key; hashed fields stay hashed):"
"$BIN/ctxvault" query --user "$user" --limit 5 --decrypt

step "6. the pipeline's health, as ctxvault-metrics serves it (also /metrics on [metrics] listen)"
sleep 2.5 # a report interval, so every service has reported
"$BIN/ctxvault" status || echo "   (degraded: see the reasons above)"
