#!/bin/sh
# bench.sh - ctxvault's figures: pipeline and per-filter throughput, peak
# memory of each program, query latency on a million rows, and syslog-ng
# writing the same events into SQLite as the peer to beat, and the
# supervised pipeline (throughput against the filters, peak RSS with a
# consumer stopped, durability overhead, store restart after SIGKILL), and the
# cost of deny by default (the shipped policy against default = keep, and
# application objects through ingest --kind). `make bench`
# runs it from the repository root after building.
#
# Environment (for quick runs): BENCH_EVENTS (200000), BENCH_USERS (4000),
# BENCH_QUERY_EVENTS (1000000), BENCH_QUERY_USERS (10000), BENCH_QUERIES
# (20), BENCH_SCRUB_EVENTS (1000000), BENCH_KEEP=1 keeps the temporary
# directory, BENCH_ONLY=scrub runs only the scrub and backup figures,
# BENCH_REWRAP_EVENTS (1000000), BENCH_ONLY=rewrap only the rewrap figure,
# BENCH_CTXAPI_EVENTS (1000000), BENCH_CTXAPI_REQUESTS (10000),
# BENCH_CTXAPI_INGEST (200000), BENCH_ONLY=ctxapi only the context API's,
# BENCH_SYNC_RECORDS (100000), BENCH_SYNC_PROBES (200), BENCH_ONLY=sync
# only ctxvault-sync's, BENCH_SEED_EVENTS (BENCH_EVENTS), BENCH_ONLY=deny
# only the deny-by-default figure, BENCH_DUR_ROUNDS (3), BENCH_ONLY=durability
# only the cost of the power-safe default ([store] synchronous),
# BENCH_ONLY=store only the write path: the pipelines, each filter alone and
# syslog-ng on the same events, against the targets of store's speed;
# BENCH_BASE_BIN=DIR also times an older build's ctxvault-store (DIR holds
# its programs) on the same events, for the figure before a change.
set -eu

EVENTS=${BENCH_EVENTS:-200000}
USERS=${BENCH_USERS:-4000}
QEVENTS=${BENCH_QUERY_EVENTS:-1000000}
QUSERS=${BENCH_QUERY_USERS:-10000}
QUERIES=${BENCH_QUERIES:-20}
QUSER=user-00042
RSS_TARGET_MIB=64
QUERY_TARGET_MS=20
STAGE_TIMEOUT=900           # seconds; a hung stage fails the run, loudly

BIN=bin
GEN=build/plain/genevents
PRODUCE=build/plain/cvproduce   # a test producer; its --ping probes store
GNUTIME=/usr/bin/time

die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
say() { printf '%s\n' "$*"; }
now_ms() { date +%s%3N; }

# ---- preconditions -------------------------------------------------------

[ -f tools/bench.sh ] || die "run me from the repository root (make bench)"
for p in ctxvault ctxvault-ingest ctxvault-encrypt ctxvault-store; do
    [ -x "$BIN/$p" ] || die "$BIN/$p is missing: build first (make)"
done
[ -x "$GEN" ] || die "$GEN is missing: build first (make)"
[ -x "$GNUTIME" ] || die "$GNUTIME is missing: install the 'time' package (make deps)"
command -v sqlite3 >/dev/null || die "sqlite3 is missing: install it (make deps)"
command -v timeout >/dev/null || die "timeout (coreutils) is missing"
case $(date +%3N) in *N*|'') die "date does not support %N (GNU date needed)" ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ctxvault-bench.XXXXXX")
sv_homes=
cleanup() {
    # any supervisord still running for an instance of this run
    for _h in $sv_homes; do
        [ -s "$_h/run/supervisord.pid" ] || continue
        _p=$(cat "$_h/run/supervisord.pid")
        kill -0 "$_p" 2>/dev/null || continue
        CTXVAULT_HOME=$_h sh tools/supervise.sh stop >/dev/null 2>&1 || kill -9 "$_p" 2>/dev/null
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        say "bench: kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers -------------------------------------------------------------

# rate COUNT MS: events per second
rate() { awk -v n="$1" -v ms="$2" 'BEGIN { if (ms < 1) ms = 1; printf "%d", n * 1000 / ms }'; }

# mib KIB
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# timed TAG CMD...: runs CMD under GNU time (and timeout, in the foreground
# so ^C reaches it); TAG.time gets "maxrss_kib exit_status", TAG.err the
# command's stderr. Use in pipelines.
timed() {
    _tag=$1; shift
    "$GNUTIME" -f '%M %x' -o "$tmp/$_tag.time" \
        timeout --foreground -k 10 "$STAGE_TIMEOUT" "$@" 2>"$tmp/$_tag.err"
}

# rss TAG / status TAG: from TAG.time (the last line; GNU time puts a
# "Command exited/terminated ..." line before it when the status is not 0)
rss() { tail -n 1 "$tmp/$1.time" | cut -d' ' -f1; }
status() {
    if [ ! -s "$tmp/$1.time" ]; then
        echo "unknown"
    elif grep -q 'terminated by signal' "$tmp/$1.time"; then
        sed -n 's/.*terminated by \(signal [0-9]*\).*/killed by \1/p' "$tmp/$1.time"
    else
        tail -n 1 "$tmp/$1.time" | cut -d' ' -f2
    fi
}

# failed TAG WHAT...: unless TAG exited 0, say so with its stderr; status 1
failed() {
    _tag=$1; shift
    _st=$(status "$_tag")
    case $_st in
    0) return 1 ;;
    124) _st="timed out after ${STAGE_TIMEOUT}s" ;;
    [0-9]*) _st="exit status $_st" ;;
    esac
    {
        printf 'bench: %s failed (%s); its stderr ends:\n' "$*" "$_st"
        tail -n 15 "$tmp/$_tag.err" | sed 's/^/    /'
    } >&2
}

# check TAG WHAT...: fail loudly unless TAG exited 0
check() { if failed "$@"; then exit 1; fi; }

# check3 TAG WHY: the three stages of a pipeline, all reported (a stage that
# dies makes the one before it fail on a broken pipe: show the cause too)
check3() {
    _bad=0
    for _s in ingest encrypt store; do
        if failed "$1.$_s" "ctxvault-$_s ($2)"; then _bad=1; fi
    done
    [ "$_bad" = 0 ] || exit 1
}

# new_home DIR: a fresh instance
new_home() {
    CTXVAULT_HOME=$1 "$BIN/ctxvault" init >"$tmp/init.log" 2>&1 || {
        sed 's/^/    /' "$tmp/init.log" >&2
        die "ctxvault init failed for $1"
    }
}

rows() {
    _db=$1/data/ctxvault.db
    [ -f "$_db" ] || { echo 0; return; }
    sqlite3 "$_db" 'select count(*) from events' 2>/dev/null || echo "?"
}

# pipeline TAG HOME INPUT: the three filters, each under GNU time; sets ms
pipeline() {
    _t=$1 _h=$2 _in=$3
    _t0=$(now_ms)
    { CTXVAULT_HOME=$_h timed "$_t.ingest" "$BIN/ctxvault-ingest" --stdout "$_in" \
        | CTXVAULT_HOME=$_h timed "$_t.encrypt" "$BIN/ctxvault-encrypt" \
        | CTXVAULT_HOME=$_h timed "$_t.store" "$BIN/ctxvault-store"; } || :
    ms=$(( $(now_ms) - _t0 ))
    check3 "$_t" "in the pipeline"
}

# sv HOME ARGS...: tools/supervise.sh for instance HOME
sv() {
    _svh=$1; shift
    CTXVAULT_HOME=$_svh CTXVAULT_BIN=$(pwd)/$BIN SUPERVISE_TIMEOUT=60 sh tools/supervise.sh "$@"
}
# sv_up HOME: start supervisord for HOME (stopped by cleanup if still up)
sv_up() {
    sv_homes="$sv_homes $1"
    sv "$1" start >"$tmp/sv-start.log" 2>&1 || {
        sed 's/^/    /' "$tmp/sv-start.log" >&2
        die "supervisord did not start the pipeline for $1"
    }
}
sv_down() {
    sv "$1" stop >"$tmp/sv-stop.log" 2>&1 || {
        sed 's/^/    /' "$tmp/sv-stop.log" >&2
        say "  WARNING: a program did not exit 0 on SIGTERM (above)"
    }
}
# sv_pid HOME STAGE: the pid of ctxvault-STAGE under supervisord (0: none)
sv_pid() { sv "$1" ctl pid "ctxvault:ctxvault-$2" 2>/dev/null || echo 0; }
# hwm PID / vmrss PID: peak and current resident set of a live process, KiB
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
vmrss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# wait_rows HOME N SECONDS: until HOME holds N rows (read-only connection)
wait_rows() {
    _wn=$(( $3 * 10 ))
    while [ "$_wn" -gt 0 ]; do
        # max(seq), not count(*): a probe must not steal the pipeline's CPU
        _wr=$(sqlite3 -readonly "$1/data/ctxvault.db" 'select coalesce(max(seq), 0) from events' 2>/dev/null || echo 0)
        [ "${_wr:-0}" -ge "$2" ] && return 0
        sleep 0.1
        _wn=$((_wn - 1))
    done
    return 1
}
# client TAG HOME FILE: `ctxvault-ingest FILE` into the running pipeline
client() {
    CTXVAULT_HOME=$2 timed "$1" "$BIN/ctxvault-ingest" "$3" >/dev/null </dev/null || :
}

# ---- scrub: a million due rows, with the pipeline running ------------------

# BENCH_SCRUB_EVENTS rows (1,000,000), all past their 90-day scrub age on
# the scrub's clock: the shipped policy with every kind kept a year, and
# the generated profiles made private with no retention of their own (so
# none expires first or is scrubbed on arrival). ctxvault-scrub --once runs
# through the supervised store while cvlatency sends 1,000 events/s through
# encrypt and store and times each acknowledgement; the same probe runs
# first without a scrub. Run alone with BENCH_ONLY=scrub.
bench_scrub() {
    SCRUB_EVENTS=${BENCH_SCRUB_EVENTS:-1000000}
    SCRUB_T0=2026-01-01T00:00:00Z
    SCRUB_NOW=2026-06-01T00:00:00Z
    say "== scrub: ctxvault-scrub on $SCRUB_EVENTS due rows, the pipeline running"
    chome=$tmp/chome
    new_home "$chome"
    sed -E '/^\[retention\]/,/^\[/ s/^([a-z]+ *= *)[0-9]+d$/\1365d/' etc/policy.conf >"$chome/policy.conf"
    t0=$(now_ms)
    { "$GEN" -n "$SCRUB_EVENTS" -u 1000 -s 21 --start "$SCRUB_T0" \
        | sed 's/"retention_days":[0-9][0-9]*/"retention_days":null/; s/"privacy_level":"[a-z]*"/"privacy_level":"private"/' \
        | CTXVAULT_NOW=$SCRUB_T0 CTXVAULT_HOME=$chome timed "c.ingest" "$BIN/ctxvault-ingest" --stdout \
        | CTXVAULT_HOME=$chome timed "c.encrypt" "$BIN/ctxvault-encrypt" \
        | CTXVAULT_NOW=$SCRUB_T0 CTXVAULT_HOME=$chome timed "c.store" "$BIN/ctxvault-store"; } || :
    check3 c "building the scrub database"
    c_now_ms=$(( $(date -d "$SCRUB_NOW" +%s) * 1000 ))
    c_due=$(sqlite3 "$chome/data/ctxvault.db" "select count(*) from events where scrubbed_at is null and scrub_after <= $c_now_ms")
    say "built in $(( $(now_ms) - t0 )) ms: $(rows "$chome") rows, $c_due due by $SCRUB_NOW"
    # the probe's users are new: a profile of a user holding 1,000 rows
    # would reschedule them all, which is not what is measured here
    "$GEN" -n 30000 -u 1000 -s 22 | sed 's/"user_id":"user-/"user_id":"probe-/' \
        | CTXVAULT_HOME=$chome "$BIN/ctxvault-ingest" --stdout >"$tmp/cprobe.ndjson" 2>/dev/null
    sed -n '15001,30000p' "$tmp/cprobe.ndjson" >"$tmp/cprobe2.ndjson"
    sed -i '15001,$d' "$tmp/cprobe.ndjson"
    sv_up "$chome"
    c_base=$("$LATENCY" --home "$chome" --rate 1000 --seconds 8 "$tmp/cprobe.ndjson" 2>"$tmp/clat.err") || :
    say "ack latency without a scrub (1,000 events/s for 8 s): ${c_base:-failed}"
    CTXVAULT_NOW=$SCRUB_NOW CTXVAULT_HOME=$chome "$BIN/ctxvault-scrub" --once \
        >"$tmp/scrub.out" 2>"$tmp/scrub.err" &
    sc_pid=$!
    c_scrub=$("$LATENCY" --home "$chome" --rate 1000 --seconds 10 "$tmp/cprobe2.ndjson" 2>>"$tmp/clat.err") || :
    wait "$sc_pid" || { sed 's/^/    /' "$tmp/scrub.err" >&2; die "ctxvault-scrub failed"; }
    sc_json=$(cat "$tmp/scrub.out")
    sc_rows=$(printf '%s' "$sc_json" | sed -n 's/.*"scrubbed":\([0-9]*\).*/\1/p')
    sc_ms=$(printf '%s' "$sc_json" | sed -n 's/.*"ms":\([0-9]*\).*/\1/p')
    sc_rate=$(rate "${sc_rows:-0}" "${sc_ms:-1}")
    say "scrub: $sc_rows rows scrubbed in $sc_ms ms through store: $sc_rate rows/s" \
        "(target >= 50000: $(awk -v r="$sc_rate" 'BEGIN { print (r >= 50000) ? "ok" : "UNDER" }'))"
    say "  fields per operator: $(printf '%s' "$sc_json" | sed -n 's/.*"fields_by_operator":\({[^}]*}\).*/\1/p');" \
        "backlog $(printf '%s' "$sc_json" | sed -n 's/.*"backlog":\([0-9]*\).*/\1/p')"
    say "ack latency during the scrub (1,000 events/s for 10 s): ${c_scrub:-failed}"
    c_p99_base=$(printf '%s' "$c_base" | sed -n 's/.* p99 \([0-9.]*\) .*/\1/p')
    c_p99=$(printf '%s' "$c_scrub" | sed -n 's/.* p99 \([0-9.]*\) .*/\1/p')
    say "  p99: ${c_p99_base:-?} ms without, ${c_p99:-?} ms with the scrub (target < 100 ms:" \
        "$(awk -v p="${c_p99:-1e9}" 'BEGIN { print (p < 100) ? "ok" : "OVER" }'))"
    t0=$(now_ms)
    CTXVAULT_NOW=$SCRUB_NOW CTXVAULT_HOME=$chome "$BIN/ctxvault" verify --scrub >"$tmp/cverify.out" 2>&1 ||
        say "  WARNING: ctxvault verify --scrub failed: $(tail -n 2 "$tmp/cverify.out")"
    say "  ctxvault verify --scrub: $(tail -n 1 "$tmp/cverify.out" | sed 's/^[^:]*: //') ($(( $(now_ms) - t0 )) ms)"
    sv_down "$chome"
    bench_backup "$chome"
    rm -rf "$chome"
    say ""
}

# ---- rewrap: a million rows under an old key version, the pipeline running --

# BENCH_REWRAP_EVENTS rows (1,000,000) stored under key version 1; then
# ctxvault keys rotate, the supervised pipeline started (so it writes under
# version 2), and ctxvault keys rewrap through the store while cvlatency
# sends 1,000 events/s through encrypt and store. Run alone with
# BENCH_ONLY=rewrap.
bench_rewrap() {
    RW_EVENTS=${BENCH_REWRAP_EVENTS:-1000000}
    say "== rewrap: ctxvault keys rewrap of $RW_EVENTS rows sealed under version 1 (data_keys = instance), the pipeline running"
    rhome=$tmp/rhome
    new_home "$rhome"
    # the worst case: every protected field under the keyring, so each is
    # re-sealed (with per-user keys a rewrap rewrites checksums and rewraps
    # one data key per user)
    sed -i 's/^data_keys .*/data_keys = instance/' "$rhome/ctxvault.conf"
    t0=$(now_ms)
    { "$GEN" -n "$RW_EVENTS" -u 1000 -s 31 \
        | CTXVAULT_HOME=$rhome timed "r.ingest" "$BIN/ctxvault-ingest" --stdout \
        | CTXVAULT_HOME=$rhome timed "r.encrypt" "$BIN/ctxvault-encrypt" \
        | CTXVAULT_HOME=$rhome timed "r.store" "$BIN/ctxvault-store"; } || :
    check3 r "building the rewrap database"
    say "built in $(( $(now_ms) - t0 )) ms: $(rows "$rhome") rows"
    "$GEN" -n 30000 -u 1000 -s 32 | sed 's/"user_id":"user-/"user_id":"probe-/' \
        | CTXVAULT_HOME=$rhome "$BIN/ctxvault-ingest" --stdout >"$tmp/rprobe.ndjson" 2>/dev/null
    CTXVAULT_HOME=$rhome "$BIN/ctxvault" keys rotate >/dev/null 2>&1 || die "ctxvault keys rotate failed"
    sv_up "$rhome"
    CTXVAULT_HOME=$rhome "$BIN/ctxvault" keys rewrap >"$tmp/rewrap.out" 2>"$tmp/rewrap.err" &
    rw_pid=$!
    r_lat=$("$LATENCY" --home "$rhome" --rate 1000 --seconds 10 "$tmp/rprobe.ndjson" 2>"$tmp/rlat.err") || :
    wait "$rw_pid" || { sed 's/^/    /' "$tmp/rewrap.err" >&2; die "ctxvault keys rewrap failed"; }
    rw_json=$(cat "$tmp/rewrap.out")
    rw_rows=$(printf '%s' "$rw_json" | sed -n 's/.*"rewrapped":\([0-9]*\).*/\1/p')
    rw_ms=$(printf '%s' "$rw_json" | sed -n 's/.*"ms":\([0-9]*\).*/\1/p')
    rw_rate=$(rate "${rw_rows:-0}" "${rw_ms:-1}")
    say "rewrap: $rw_rows rows rewrapped in $rw_ms ms through store: $rw_rate rows/s" \
        "(target >= 50000: $(awk -v r="$rw_rate" 'BEGIN { print (r >= 50000) ? "ok" : "UNDER" }'))"
    say "  $rw_json"
    say "ack latency during the rewrap (1,000 events/s for 10 s): ${r_lat:-failed}"
    sv_down "$rhome"
    rm -rf "$rhome"
    say ""
}

# bench_backup HOME: ctxvault-backup create (with its verification) of
# HOME's million rows, against sqlite3's .backup and zstd on the same file
bench_backup() {
    _db=$1/data/ctxvault.db
    _dbsize=$(stat -c %s "$_db")
    say "== backup: ctxvault-backup create, verified, of $(rows "$1") rows ($(mib $((_dbsize / 1024))) MiB)"
    t0=$(now_ms)
    CTXVAULT_HOME=$1 "$BIN/ctxvault-backup" create >"$tmp/backup.out" 2>"$tmp/backup.err" ||
        { sed 's/^/    /' "$tmp/backup.err" >&2; die "ctxvault-backup create failed"; }
    bk_ms=$(( $(now_ms) - t0 ))
    bk_bytes=$(sed -n 's/.*"bytes":\([0-9]*\),"ratio".*/\1/p' "$tmp/backup.out")
    t0=$(now_ms)
    sqlite3 "$_db" ".backup '$tmp/ref.db'" && zstd -q -3 --rm -f "$tmp/ref.db" -o "$tmp/ref.db.zst" ||
        die "sqlite3 .backup | zstd failed"
    ref_ms=$(( $(now_ms) - t0 ))
    ref_bytes=$(stat -c %s "$tmp/ref.db.zst")
    rm -f "$tmp/ref.db.zst"
    say "create + verify: $bk_ms ms, $bk_bytes bytes ($(awk -v a="$bk_bytes" -v b="$_dbsize" 'BEGIN { printf "%.3f", a / b }') of the database file)"
    say "sqlite3 .backup + zstd -3 (no encryption, no check): $ref_ms ms, $ref_bytes bytes;" \
        "ctxvault takes $(awk -v a="$bk_ms" -v b="$ref_ms" 'BEGIN { printf "%.2f", a / b }')x the time for checked, sealed backups"
    # 100,000 events committed after the backup, one transaction each: a
    # journal of 100,000 records for the restore to replay
    JR=${BENCH_JOURNAL_RECORDS:-100000}
    sed -i 's/^batch_size .*/batch_size = 1/' "$1/ctxvault.conf"
    t0=$(now_ms)
    "$GEN" -n "$JR" -u 1000 -s 24 --start "$(date -u +%Y-%m-%dT00:00:00Z)" \
        | sed 's/"user_id":"user-/"user_id":"late-/' \
        | CTXVAULT_HOME=$1 "$BIN/ctxvault-ingest" --stdout 2>/dev/null \
        | CTXVAULT_HOME=$1 "$BIN/ctxvault-encrypt" 2>/dev/null \
        | CTXVAULT_HOME=$1 "$BIN/ctxvault-store" 2>"$tmp/jstore.err" ||
        { sed 's/^/    /' "$tmp/jstore.err" >&2; die "storing the journal's events failed"; }
    jr_ms=$(( $(now_ms) - t0 ))
    jr_rows=$(rows "$1")
    say "then $JR events in $JR transactions ($jr_ms ms): journal $(du -sk "$1/journal" | cut -f1) KiB"
    rm -f "$_db" "$_db-wal" "$_db-shm"
    t0=$(now_ms)
    CTXVAULT_HOME=$1 "$BIN/ctxvault-backup" restore >"$tmp/restore.out" 2>"$tmp/restore.err" ||
        { sed 's/^/    /' "$tmp/restore.err" >&2; die "ctxvault-backup restore failed"; }
    rs_ms=$(( $(now_ms) - t0 ))
    rs_batches=$(sed -n 's/.*"batches":\([0-9]*\).*/\1/p' "$tmp/restore.out")
    say "restore of the deleted database: the verified backup + $rs_batches journal records replayed, $(rows "$1") rows" \
        "(expected $jr_rows): $rs_ms ms (target < 10000 ms: $(awk -v m="$rs_ms" 'BEGIN { print (m < 10000) ? "ok" : "OVER" }'))"
    t0=$(now_ms)
    CTXVAULT_HOME=$1 "$BIN/ctxvault-backup" restore --check >/dev/null 2>"$tmp/restore.err" ||
        { sed 's/^/    /' "$tmp/restore.err" >&2; die "ctxvault-backup restore --check failed"; }
    say "  the same with the backup checked in full again (--check): $(( $(now_ms) - t0 )) ms"
}

# ---- sync: ctxvault-sync between instances on loopback ---------------------

# cpu PID: user+system CPU time of a live process, ms
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# sync_start DIR NAME...: store --serve and ctxvault-sync of each instance
# DIR/NAME in the background; their pids in DIR/NAME.pids
sync_start() {
    _sd=$1; shift
    for _n in "$@"; do
        CTXVAULT_HOME=$_sd/$_n "$BIN/ctxvault-store" --serve -q 2>"$_sd/$_n.store.err" &
        echo $! > "$_sd/$_n.pids"
    done
    for _n in "$@"; do
        _w=100
        while [ ! -S "$_sd/$_n/run/control.sock" ] && [ "$_w" -gt 0 ]; do sleep 0.1; _w=$((_w - 1)); done
        CTXVAULT_HOME=$_sd/$_n "$BIN/ctxvault-sync" -q 2>"$_sd/$_n.sync.err" &
        echo $! >> "$_sd/$_n.pids"
    done
}
sync_stop() {
    _sd=$1; shift
    for _n in "$@"; do
        for _p in $(cat "$_sd/$_n.pids"); do kill "$_p" 2>/dev/null || :; done
    done
    wait 2>/dev/null || :
}
# versions DIR/NAME: the sync versions an instance holds
versions() { sqlite3 -readonly "$1/data/ctxvault.db" 'select count(*) from sync_versions' 2>/dev/null || echo 0; }

# BENCH_SYNC_RECORDS (100,000) contexts changed on device a (cvsynctool
# seed, in one transaction, before the programs start), then device b,
# connected straight to a, pulls them until it holds every one: the time
# from b's ctxvault-sync start, and each program's CPU. Then the latency
# of one change through a relay: cvsynctool latency saves a context on a
# (context.save) and polls b (context.load) each millisecond until it
# has it, BENCH_SYNC_PROBES (200) times, 50 ms apart. Targets: >= 20,000
# records/s; p99 < 1 s. Run alone with BENCH_ONLY=sync.
bench_sync() {
    records=${BENCH_SYNC_RECORDS:-100000}
    probes=${BENCH_SYNC_PROBES:-200}
    sd=$tmp/sync
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    say "== sync: $records changed records from device a to device b (direct), then $probes changes a -> relay -> b"
    PATH=$(pwd)/$BIN:$PATH sh tools/sync-group.sh "$sd" "$port" a b
    "$SYNCTOOL" seed --home "$sd/a" --records "$records" > "$tmp/seed.out" || die "cvsynctool seed failed"
    say "seeded:  $(cat "$tmp/seed.out")"
    sync_start "$sd" a
    CTXVAULT_HOME=$sd/b "$BIN/ctxvault-store" --serve -q 2>"$sd/b.store.err" &
    echo $! > "$sd/b.pids"
    while [ ! -S "$sd/b/run/control.sock" ]; do sleep 0.1; done
    t0=$(now_ms)
    CTXVAULT_HOME=$sd/b "$BIN/ctxvault-sync" -q 2>"$sd/b.sync.err" &
    echo $! >> "$sd/b.pids"
    n=0
    while [ "$(versions "$sd/b")" -lt "$records" ]; do
        sleep 0.1
        n=$((n + 1))
        [ "$n" -lt 9000 ] || die "b did not converge in 900 s: $(tail -n 3 "$sd/b.sync.err")"
    done
    s_ms=$(( $(now_ms) - t0 ))
    s_rate=$(rate "$records" "$s_ms")
    set -- $(cat "$sd/a.pids") $(cat "$sd/b.pids")
    s_cpu="store a $(cpu "$1") ms, sync a $(cpu "$2") ms, store b $(cpu "$3") ms, sync b $(cpu "$4") ms"
    sum_a=$(CTXVAULT_HOME=$sd/a "$BIN/ctxvault" sync status --checksum | sed 's/.*"checksum":"\([0-9a-f]*\)".*/\1/')
    sum_b=$(CTXVAULT_HOME=$sd/b "$BIN/ctxvault" sync status --checksum | sed 's/.*"checksum":"\([0-9a-f]*\)".*/\1/')
    ctx_b=$(sqlite3 -readonly "$sd/b/data/ctxvault.db" "select count(*) from events where kind = 'context'")
    sync_stop "$sd" a b
    say "converge: $records records in $s_ms ms: $s_rate records/s (target >= 20000:" \
        "$(awk -v r="$s_rate" 'BEGIN { print (r >= 20000) ? "ok" : "UNDER" }'));" \
        "checksums $( [ "$sum_a" = "$sum_b" ] && echo equal || echo DIFFER ), $ctx_b contexts stored on b"
    say "  cpu: $s_cpu"
    rm -rf "$sd"
    PATH=$(pwd)/$BIN:$PATH sh tools/sync-group.sh "$sd" "$port" --relay r a b
    sync_start "$sd" r a b
    sleep 1
    "$SYNCTOOL" latency --from "$sd/a" --to "$sd/b" --count "$probes" > "$tmp/lat.out" 2>"$tmp/lat.err" ||
        say "  WARNING: $(tail -n 2 "$tmp/lat.err")"
    sync_stop "$sd" r a b
    lat_p99=$(sed 's/.*"p99_ms":\([0-9.]*\).*/\1/' "$tmp/lat.out")
    say "latency a -> relay -> b: $(cat "$tmp/lat.out") (p99 target < 1000 ms:" \
        "$(awk -v m="$lat_p99" 'BEGIN { print (m + 0 < 1000) ? "ok" : "OVER" }'))"
    rm -rf "$sd"
    say ""
}

# ---- ctxapi: the context API's read side on a million rows -----------------

# BENCH_CTXAPI_EVENTS rows (1,000,000) from BENCH_CTXAPI_USERS users
# (1,000: each has about 95 contexts and 580 interactions, so a query of
# 100 rows is a full page), stored by the filter pipeline; then the
# supervised pipeline, and cvctxload (tests/tools/cvctxload.c, a C client
# on include/ctxvault/cvclient.h, one connection per thread) times each request from
# the call to its last event handed out, for users drawn at random:
# BENCH_CTXAPI_REQUESTS (10,000) context.load of the latest context, then
# as many interactions.query of 100 rows, one client each. Then the ingest
# rate of the supervised pipeline (`ctxvault-ingest FILE` of
# BENCH_CTXAPI_INGEST new events, 200,000, timed until all are committed),
# alone, then with 8 client threads querying meanwhile (context.load and
# interactions.query in turn, each as fast as its replies come back), then
# alone again: the ratio is against the mean of the two runs alone. Run
# alone with BENCH_ONLY=ctxapi.
bench_ctxapi() {
    X_EVENTS=${BENCH_CTXAPI_EVENTS:-1000000}
    X_USERS=${BENCH_CTXAPI_USERS:-1000}
    X_REQ=${BENCH_CTXAPI_REQUESTS:-10000}
    X_INGEST=${BENCH_CTXAPI_INGEST:-200000}
    [ -x "$CTXLOAD" ] || die "$CTXLOAD is missing: build first (make)"
    say "== ctxapi: the context API on $X_EVENTS rows from $X_USERS users, against the supervised store"
    xhome=$tmp/xhome
    new_home "$xhome"
    t0=$(now_ms)
    { "$GEN" -n "$X_EVENTS" -u "$X_USERS" -s 41 \
        | CTXVAULT_HOME=$xhome timed "x.ingest" "$BIN/ctxvault-ingest" --stdout \
        | CTXVAULT_HOME=$xhome timed "x.encrypt" "$BIN/ctxvault-encrypt" \
        | CTXVAULT_HOME=$xhome timed "x.store" "$BIN/ctxvault-store"; } || :
    check3 x "building the context API's database"
    say "built in $(( $(now_ms) - t0 )) ms: $(rows "$xhome") rows," \
        "$(du -sk "$xhome/data" | awk '{ printf "%d MiB", $1 / 1024 }') on disk"
    # the ingest runs' events: new users, so they add to no one's pages
    for _r in 1 2 3; do
        "$GEN" -n "$X_INGEST" -u "$X_USERS" -s $((41 + _r)) \
            | sed 's/"user_id":"user-/"user_id":"feed'"$_r"'-/' >"$tmp/xfeed$_r.ndjson" ||
            die "genevents failed"
    done
    sv_up "$xhome"

    # ctxload TAG ARGS...: cvctxload against the instance; its JSON in
    # $tmp/TAG.json, and the run fails loudly if a request did
    ctxload() {
        _tag=$1; shift
        "$CTXLOAD" --home "$xhome" --users "$X_USERS" "$@" >"$tmp/$_tag.json" 2>"$tmp/$_tag.err" || {
            sed 's/^/    /' "$tmp/$_tag.err" >&2
            die "cvctxload $* failed"
        }
    }
    # jnum TAG KEY: a number from cvctxload's JSON
    jnum() { sed -n 's/.*"'"$2"'":\([0-9.]*\).*/\1/p' "$tmp/$1.json"; }

    ctxload xload --op load --requests "$X_REQ"
    x_load_p50=$(jnum xload p50_ms) x_load_p99=$(jnum xload p99_ms)
    say "context.load, latest context: $X_REQ requests, one client: p50 $x_load_p50 ms," \
        "p99 $x_load_p99 ms, max $(jnum xload max_ms) ms, $(jnum xload per_second) requests/s" \
        "(target p99 < 1 ms: $(awk -v p="$x_load_p99" 'BEGIN { print (p < 1) ? "ok" : "OVER" }'))"
    ctxload xquery --op query --limit 100 --requests "$X_REQ"
    x_query_p50=$(jnum xquery p50_ms) x_query_p99=$(jnum xquery p99_ms)
    x_query_rows=$(awk -v r="$(jnum xquery rows)" -v n="$X_REQ" 'BEGIN { printf "%.1f", r / n }')
    say "interactions.query, 100 rows: $X_REQ requests, one client: p50 $x_query_p50 ms," \
        "p99 $x_query_p99 ms, max $(jnum xquery max_ms) ms, $x_query_rows rows a reply" \
        "(target p99 < 5 ms: $(awk -v p="$x_query_p99" 'BEGIN { print (p < 5) ? "ok" : "OVER" }'))"

    # ingest FEED: the supervised pipeline's rate for the feed; sets x_rate
    xingest() {
        _t0=$(now_ms)
        client "x.feed$1" "$xhome" "$tmp/xfeed$1.ndjson"
        check "x.feed$1" "ctxvault-ingest FILE (ingest run $1)"
        x_rate=$(rate "$X_INGEST" $(( $(now_ms) - _t0 )))
    }
    xingest 1
    x_alone1=$x_rate
    "$CTXLOAD" --home "$xhome" --users "$X_USERS" --op mix --threads 8 --seconds 3600 \
        --warmup 10 >"$tmp/xmix.json" 2>"$tmp/xmix.err" &
    x_load_pid=$!
    sleep 1     # the clients connected and querying before the feed starts
    xingest 2
    x_with=$x_rate
    kill -TERM "$x_load_pid" 2>/dev/null || :
    wait "$x_load_pid" || { sed 's/^/    /' "$tmp/xmix.err" >&2; die "cvctxload --op mix failed"; }
    xingest 3
    x_alone2=$x_rate
    x_alone=$(( (x_alone1 + x_alone2) / 2 ))
    x_ratio=$(awk -v a="$x_with" -v b="$x_alone" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
    say "ingest of $X_INGEST events: $x_alone1 then $x_alone2 events/s alone, $x_with events/s" \
        "with 8 clients querying: ${x_ratio}x (target >= 0.8x:" \
        "$(awk -v r="$x_ratio" 'BEGIN { print (r >= 0.8) ? "ok" : "UNDER" }'))"
    say "  the 8 clients meanwhile: $(jnum xmix requests) requests, $(jnum xmix per_second)/s," \
        "p50 $(jnum xmix p50_ms) ms, p99 $(jnum xmix p99_ms) ms, max $(jnum xmix max_ms) ms"
    sv_down "$xhome"
    rm -rf "$xhome" "$tmp"/xfeed*.ndjson
    say ""
}

# ---- deny by default: what sealing every unnamed string costs --------------

# keep_policy HOME: HOME's policy.conf with [fields] default = keep (the
# rules that name fields unchanged); prints whether it changed anything
keep_policy() {
    cp "$1/policy.conf" "$tmp/policy.shipped"
    sed -E '/^\[fields\]/,/^\[/ s/^default([[:space:]]*)=.*/default\1= keep/' \
        "$tmp/policy.shipped" >"$1/policy.conf"
    if cmp -s "$1/policy.conf" "$tmp/policy.shipped"; then echo unchanged; else echo changed; fi
}

# seed_pipeline TAG HOME KIND INPUT: ingest --kind KIND | encrypt | store,
# each under GNU time; sets ms
seed_pipeline() {
    _t=$1 _h=$2 _k=$3 _in=$4
    _t0=$(now_ms)
    { CTXVAULT_HOME=$_h timed "$_t.ingest" "$BIN/ctxvault-ingest" --stdout --kind "$_k" "$_in" \
        | CTXVAULT_HOME=$_h timed "$_t.encrypt" "$BIN/ctxvault-encrypt" \
        | CTXVAULT_HOME=$_h timed "$_t.store" "$BIN/ctxvault-store"; } || :
    ms=$(( $(now_ms) - _t0 ))
    check3 "$_t" "application-shaped $_k objects in the pipeline"
}

# bench_deny EVENTS-FILE: the same realistic events through ctxvault-encrypt
# alone and through the filter pipeline, under the shipped policy (every
# string no rule names sealed: [fields] default = encrypt) and under a copy
# with default = keep; then application-shaped objects (genevents --app: the
# storage interfaces as a JavaScript app sends them, camelCase, no kind)
# through ingest --kind | encrypt | store, under both. Run alone with
# BENCH_ONLY=deny.
bench_deny() {
    _ev=$1
    D_SEED=${BENCH_SEED_EVENTS:-$EVENTS}
    say "== deny by default: the shipped policy ([fields] default = encrypt) against default = keep"
    for pol in deny keep; do
        h=$tmp/$pol-home
        new_home "$h"
        if [ "$pol" = keep ]; then
            [ "$(keep_policy "$h")" = changed ] ||
                say "  WARNING: the shipped policy has no [fields] default to change; both runs are the same"
        fi
        CTXVAULT_HOME=$h timed "d$pol.n" "$BIN/ctxvault-ingest" --stdout "$_ev" >"$tmp/d.normalised" || :
        check "d$pol.n" "ctxvault-ingest (saving normalised events, $pol)"
        t0=$(now_ms)
        CTXVAULT_HOME=$h timed "d$pol.e" "$BIN/ctxvault-encrypt" <"$tmp/d.normalised" >"$tmp/d.encrypted" || :
        eval "d_${pol}_enc=\$(rate \"\$EVENTS\" \$(( \$(now_ms) - t0 )))"
        check "d$pol.e" "ctxvault-encrypt alone ($pol)"
        eval "d_${pol}_bytes=\$(( \$(wc -c <\"\$tmp/d.encrypted\") / EVENTS ))"
        rm -f "$tmp/d.normalised" "$tmp/d.encrypted"
        pipeline "d$pol.p" "$h" "$_ev"
        eval "d_${pol}_pipe=\$(rate \"\$EVENTS\" \"\$ms\")"
        eval "d_${pol}_rows=\$(rows \"\$h\")"
        rm -rf "$h"
    done
    d_enc_ratio=$(awk -v a="$d_deny_enc" -v b="$d_keep_enc" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
    d_pipe_ratio=$(awk -v a="$d_deny_pipe" -v b="$d_keep_pipe" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
    say "encrypt alone:        $d_deny_enc events/s deny by default, $d_keep_enc events/s default = keep:" \
        "${d_enc_ratio}x ($d_deny_bytes against $d_keep_bytes B/event out)"
    say "ingest|encrypt|store: $d_deny_pipe events/s deny by default, $d_keep_pipe events/s default = keep:" \
        "${d_pipe_ratio}x ($d_deny_rows and $d_keep_rows rows stored)"

    "$GEN" --app context -n "$D_SEED" -u "$USERS" -s 61 >"$tmp/app-context.ndjson" || die "genevents --app context failed"
    "$GEN" --app profile -n "$((D_SEED / 10 + 1))" -u "$USERS" -s 62 >"$tmp/app-profile.ndjson" || die "genevents --app profile failed"
    d_seed_bytes=$(( $(wc -c <"$tmp/app-context.ndjson") / D_SEED ))
    for pol in deny keep; do
        h=$tmp/seed-$pol-home
        new_home "$h"
        [ "$pol" = keep ] && keep_policy "$h" >/dev/null
        seed_pipeline "ds$pol.p" "$h" profile "$tmp/app-profile.ndjson"
        seed_pipeline "ds$pol.c" "$h" context "$tmp/app-context.ndjson"
        eval "d_seed_${pol}=\$(rate \"\$D_SEED\" \"\$ms\")"
        eval "d_seed_${pol}_rows=\$(rows \"\$h\")"
        rm -rf "$h"
    done
    d_seed_ratio=$(awk -v a="$d_seed_deny" -v b="$d_seed_keep" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
    say "application context objects ($D_SEED, $d_seed_bytes B each, after $((D_SEED / 10 + 1)) UserProfile)," \
        "ingest --kind context|encrypt|store: $d_seed_deny events/s deny by default, $d_seed_keep events/s" \
        "default = keep: ${d_seed_ratio}x ($d_seed_deny_rows and $d_seed_keep_rows rows stored)"
    rm -f "$tmp/app-context.ndjson" "$tmp/app-profile.ndjson"
    say ""
}

# ---- durability: what the power-safe default costs ---------------------------

# set_sync HOME MODE: [store] synchronous = MODE in HOME's configuration
set_sync() {
    sed -i "s/^synchronous[[:space:]]*=.*/synchronous = $2/" "$1/ctxvault.conf"
    grep -q "^synchronous = $2\$" "$1/ctxvault.conf" || die "cannot set synchronous = $2 in $1"
}

# median N...: the middle value (the lower of the two middle ones)
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# bench_durability EVENTS-FILE: the same realistic events (genevents, the
# shipped policy sealing its protected fields) through the filter pipeline
# and through the supervised pipeline (ctxvault-ingest FILE, acked after
# COMMIT) under [store] synchronous = normal, journal (the default) and
# full, BENCH_DUR_ROUNDS (3) times, interleaved (normal, journal, full,
# normal, ...) so that other work on the machine weighs on each alike;
# the median of each, and the ratios to normal; with each supervised run,
# the batches it committed (one journal sync each under journal) and the
# ack latency of a 1,000 events/s trickle after it (cvlatency, 4 s), where
# a sync per commit weighs most. Run alone with BENCH_ONLY=durability.
bench_durability() {
    _ev=$1
    _rounds=${BENCH_DUR_ROUNDS:-3}
    _modes="normal journal full"
    say "== durability: [store] synchronous = journal (the default) and full against normal," \
        "$_rounds rounds interleaved"
    for _m in $_modes; do eval "dur_f_$_m= dur_s_$_m= dur_l_$_m="; done
    # the trickle's events: new users, normalised as ingest sends them
    new_home "$tmp/dur-probe-home"
    "$GEN" -n 5000 -u 1000 -s 10 | sed 's/"user_id":"user-/"user_id":"probe-/' |
        CTXVAULT_HOME=$tmp/dur-probe-home "$BIN/ctxvault-ingest" --stdout >"$tmp/dprobe.ndjson" 2>/dev/null ||
        die "cannot make the latency probe's events"
    rm -rf "$tmp/dur-probe-home"
    _r=1
    while [ "$_r" -le "$_rounds" ]; do
        for _m in $_modes; do
            h=$tmp/dur-home
            new_home "$h"
            set_sync "$h" "$_m"
            pipeline "du$_m.f" "$h" "$_ev"
            _f=$(rate "$EVENTS" "$ms")
            _fr=$(rows "$h")
            rm -rf "$h"
            new_home "$h"
            set_sync "$h" "$_m"
            sv_up "$h"
            _t0=$(now_ms)
            client "du$_m.c" "$h" "$_ev"
            _s=$(rate "$EVENTS" $(( $(now_ms) - _t0 )))
            check "du$_m.c" "ctxvault-ingest FILE (client) into the supervised pipeline, synchronous = $_m"
            _sr=$(rows "$h")
            _sb=$(sqlite3 -readonly "$h/data/ctxvault.db" "SELECT value FROM meta WHERE key = 'journal_lsn'" 2>/dev/null)
            _l=$("$LATENCY" --home "$h" --rate 1000 --seconds 4 "$tmp/dprobe.ndjson" 2>"$tmp/dlat.err") || :
            _lp50=$(echo "$_l" | sed -n 's/.* p50 \([0-9.]*\) .*/\1/p')
            _lp99=$(echo "$_l" | sed -n 's/.* p99 \([0-9.]*\) .*/\1/p')
            sv_down "$h"
            rm -rf "$h"
            [ "$_fr" = "$EVENTS" ] && [ "$_sr" = "$EVENTS" ] ||
                say "  WARNING: $_m stored $_fr (filters) and $_sr (supervised) rows, expected $EVENTS"
            say "  round $_r, synchronous = $_m: filters $_f events/s, supervised $_s events/s" \
                "(${_sb:-?} batches); trickle ack p50 ${_lp50:-?} ms, p99 ${_lp99:-?} ms"
            eval "dur_f_$_m=\"\$dur_f_$_m $_f\"; dur_s_$_m=\"\$dur_s_$_m $_s\"; dur_l_$_m=\"\$dur_l_$_m ${_lp99:-0}\""
        done
        _r=$((_r + 1))
    done
    for _m in $_modes; do
        eval "dur_fm_$_m=\$(median \$dur_f_$_m); dur_sm_$_m=\$(median \$dur_s_$_m); dur_lm_$_m=\$(median \$dur_l_$_m)"
    done
    # cost: how much lower the median rate is than normal's
    cost() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b > 0) ? (1 - a / b) * 100 : 0 }'; }
    verdict() { awk -v c="$1" 'BEGIN { print (c <= 10) ? "ok" : "OVER" }'; }
    dur_fc_journal=$(cost "$dur_fm_journal" "$dur_fm_normal")
    dur_sc_journal=$(cost "$dur_sm_journal" "$dur_sm_normal")
    dur_fc_full=$(cost "$dur_fm_full" "$dur_fm_normal")
    dur_sc_full=$(cost "$dur_sm_full" "$dur_sm_normal")
    say "medians: filters normal $dur_fm_normal, journal $dur_fm_journal, full $dur_fm_full events/s;" \
        "supervised normal $dur_sm_normal, journal $dur_sm_journal, full $dur_sm_full events/s"
    say "journal (the default) costs ${dur_fc_journal}% on the filter pipeline and ${dur_sc_journal}%" \
        "on the supervised one against normal (target <= 10%: $(verdict "$dur_fc_journal")," \
        "$(verdict "$dur_sc_journal")); full costs ${dur_fc_full}% and ${dur_sc_full}%"
    say "trickle ack p99 (median of the rounds): normal $dur_lm_normal ms, journal $dur_lm_journal ms, full $dur_lm_full ms"
    say ""
}

# ---- the machine ---------------------------------------------------------

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
say "== machine"
say "cpu:     ${cpu:-unknown}"
say "cores:   $(nproc)"
say "memory:  $mem"
say "kernel:  $(uname -srm)"
say "date:    $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
say "temp:    $tmp ($(df -PT "$tmp" | awk 'NR == 2 { printf "%s, %.1f GiB free", $2, $5 / 1048576 }'))"
say "sqlite:  $(sqlite3 --version | cut -d' ' -f1)"
say ""

LATENCY=build/plain/cvlatency
CTXLOAD=build/plain/cvctxload
SYNCTOOL=build/plain/cvsynctool
if [ "${BENCH_ONLY:-}" = sync ]; then
    bench_sync
    exit 0
fi
if [ "${BENCH_ONLY:-}" = ctxapi ]; then
    bench_ctxapi
    exit 0
fi
if [ "${BENCH_ONLY:-}" = scrub ]; then
    bench_scrub
    exit 0
fi
if [ "${BENCH_ONLY:-}" = rewrap ]; then
    bench_rewrap
    exit 0
fi
if [ "${BENCH_ONLY:-}" = durability ]; then
    "$GEN" -n "$EVENTS" -u "$USERS" -s 1 >"$tmp/events.ndjson" || die "genevents failed"
    say "$EVENTS events from $USERS users, $(( $(wc -c <"$tmp/events.ndjson") / EVENTS )) bytes a line on average"
    bench_durability "$tmp/events.ndjson"
    exit 0
fi
if [ "${BENCH_ONLY:-}" = deny ]; then
    "$GEN" -n "$EVENTS" -u "$USERS" -s 1 >"$tmp/events.ndjson" || die "genevents failed"
    say "$EVENTS events from $USERS users, $(( $(wc -c <"$tmp/events.ndjson") / EVENTS )) bytes a line on average"
    bench_deny "$tmp/events.ndjson"
    exit 0
fi

# ---- events --------------------------------------------------------------

events=$tmp/events.ndjson
t0=$(now_ms)
"$GEN" -n "$EVENTS" -u "$USERS" -s 1 >"$events" || die "genevents failed"
gen_ms=$(( $(now_ms) - t0 ))
bytes=$(wc -c <"$events")
say "== events"
say "$EVENTS events from $USERS users, $((bytes / 1048576)) MiB," \
    "$((bytes / EVENTS)) bytes a line on average (made in $gen_ms ms)"
say ""

# ---- the pipeline --------------------------------------------------------

say "== pipeline: ctxvault-ingest --stdout | ctxvault-encrypt | ctxvault-store"
home=$tmp/home
new_home "$home"
pipeline p "$home" "$events"
p_ms=$ms
p_rows=$(rows "$home")
p_rate=$(rate "$EVENTS" "$p_ms")
say "$EVENTS events in $p_ms ms: $p_rate events/s; $p_rows rows stored"
for s in ingest encrypt store; do
    say "  ctxvault-$s peak RSS $(mib "$(rss "p.$s")") MiB"
done
[ "$p_rows" = "$EVENTS" ] || say "  WARNING: stored $p_rows rows, expected $EVENTS"
p_journal=$(du -sk "$home/journal" | cut -f1)
rm -rf "$home"
# the same without the replay journal: what it costs store
new_home "$home"
sed -i 's/^keep_journal .*/keep_journal = no/' "$home/ctxvault.conf"
pipeline pj "$home" "$events"
pj_rate=$(rate "$EVENTS" "$ms")
say "without the journal: $pj_rate events/s; the journal ($((p_journal / 1024)) MiB for $EVENTS events)" \
    "costs $(awk -v a="$p_rate" -v b="$pj_rate" 'BEGIN { printf "%+.0f%%", (a > 0) ? (b / a - 1) * 100 : 0 }') of the pipeline's time"
rm -rf "$home"
# per-user data keys (the default, above) against every field under the
# keyring: target at most 10% slower
new_home "$home"
sed -i 's/^data_keys .*/data_keys = instance/' "$home/ctxvault.conf"
pipeline pk "$home" "$events"
pk_rate=$(rate "$EVENTS" "$ms")
pk_fall=$(awk -v a="$p_rate" -v b="$pk_rate" 'BEGIN { printf "%.1f", (b > 0) ? (1 - a / b) * 100 : 0 }')
say "with one key for all ([keys] data_keys = instance): $pk_rate events/s; per-user keys" \
    "cost ${pk_fall}% of the throughput (target <= 10%:" \
    "$(awk -v f="$pk_fall" 'BEGIN { print (f <= 10) ? "ok" : "OVER" }')); encrypt peak RSS" \
    "$(mib "$(rss p.encrypt)") MiB per-user, $(mib "$(rss pk.encrypt)") MiB one key"
rm -rf "$home"
say ""

# ---- the supervised pipeline over ipc:// -----------------------------------

# The same events, now sent with `ctxvault-ingest FILE` into ingest, encrypt
# and store running under supervisord (tools/supervise.sh), each with its
# spool, acks after COMMIT and checksums: the client returns once store has
# committed every event. Target: at least 0.9x the filter pipeline above.

say "== supervised pipeline over ipc://: ctxvault-ingest FILE -> supervisord's ingest -> encrypt -> store"
shome=$tmp/sv-home
new_home "$shome"
sv_up "$shome"
t0=$(now_ms)
client sv.client "$shome" "$events"
sv_ms=$(( $(now_ms) - t0 ))
check sv.client "ctxvault-ingest FILE (client) into the supervised pipeline"
sv_rows=$(rows "$shome")
sv_rate=$(rate "$EVENTS" "$sv_ms")
sv_ratio=$(awk -v a="$sv_rate" -v b="$p_rate" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
say "$EVENTS events in $sv_ms ms: $sv_rate events/s, ${sv_ratio}x the filter pipeline" \
    "(target >= 0.9x: $(awk -v r="$sv_ratio" 'BEGIN { print (r >= 0.9) ? "ok" : "UNDER" }')); $sv_rows rows stored"
[ "$sv_rows" = "$EVENTS" ] || say "  WARNING: stored $sv_rows rows, expected $EVENTS"
for s in ingest encrypt store; do
    eval "sv_hwm_$s=$(hwm "$(sv_pid "$shome" "$s")")"
done
say "  peak RSS: ingest (service) $(mib "$sv_hwm_ingest") MiB, encrypt $(mib "$sv_hwm_encrypt") MiB," \
    "store $(mib "$sv_hwm_store") MiB, client $(mib "$(rss sv.client)") MiB"

# backpressure: encrypt stopped while the client keeps sending new events;
# the window must keep every process's memory bounded
BP_SECS=${BENCH_BACKPRESSURE_SECS:-5}
"$GEN" -n "$EVENTS" -u "$USERS" -s 3 >"$tmp/events2.ndjson" || die "genevents failed"
sv "$shome" ctl stop ctxvault:ctxvault-encrypt >/dev/null 2>&1 || die "supervisorctl stop encrypt failed"
client bp.client "$shome" "$tmp/events2.ndjson" &
bp_pid=$!
sleep "$BP_SECS"
bp_rows_stopped=$(rows "$shome")
bp_rss_ingest=$(vmrss "$(sv_pid "$shome" ingest)")
bp_rss_store=$(vmrss "$(sv_pid "$shome" store)")
bp_spool=$(du -sk "$shome/spool" | cut -f1)
sv "$shome" ctl start ctxvault:ctxvault-encrypt >/dev/null 2>&1 || die "supervisorctl start encrypt failed"
wait "$bp_pid" || :
check bp.client "ctxvault-ingest FILE while encrypt was stopped for ${BP_SECS}s"
bp_rows=$(rows "$shome")
for s in ingest encrypt store; do
    eval "bp_hwm_$s=$(hwm "$(sv_pid "$shome" "$s")")"
done
say "backpressure: encrypt stopped for ${BP_SECS}s while the client sent $EVENTS more events:"
say "  while stopped: $((bp_rows_stopped - sv_rows)) new rows, RSS ingest $(mib "$bp_rss_ingest") MiB," \
    "store $(mib "$bp_rss_store") MiB, spool $((bp_spool / 1024)) MiB"
say "  after encrypt restarted: $bp_rows rows (expected $((2 * EVENTS))); peak RSS ingest $(mib "$bp_hwm_ingest") MiB," \
    "encrypt $(mib "$bp_hwm_encrypt") MiB (restarted), store $(mib "$bp_hwm_store") MiB, client $(mib "$(rss bp.client)") MiB"
[ "$bp_rows" = "$((2 * EVENTS))" ] || say "  WARNING: stored $bp_rows rows, expected $((2 * EVENTS))"
sv_down "$shome"
rm -rf "$shome" "$tmp/events2.ndjson"

# durability off: the same supervised pipeline without spool, acks,
# checksums and WAL, through a bench-only switch that ingest and store
# honour (CTXVAULT_BENCH_NO_DURABILITY=1); without acks the client cannot
# wait for store, so the time runs until the database holds every row
nd_state="not measured"
if grep -q CTXVAULT_BENCH_NO_DURABILITY "$BIN/ctxvault-ingest" 2>/dev/null &&
    grep -q CTXVAULT_BENCH_NO_DURABILITY "$BIN/ctxvault-store" 2>/dev/null; then
    nhome=$tmp/nd-home
    new_home "$nhome"
    CTXVAULT_BENCH_NO_DURABILITY=1
    export CTXVAULT_BENCH_NO_DURABILITY
    sv_up "$nhome"
    t0=$(now_ms)
    # the client lingers 2 s after its last send (nothing else would
    # deliver its tail), so the clock stops when the rows are in
    client nd.client "$nhome" "$events" &
    nd_pid=$!
    wait_rows "$nhome" "$EVENTS" 120 || say "  WARNING: durability off stored $(rows "$nhome") of $EVENTS rows"
    nd_ms=$(( $(now_ms) - t0 ))
    wait "$nd_pid" || :
    check nd.client "ctxvault-ingest FILE with durability off"
    unset CTXVAULT_BENCH_NO_DURABILITY
    nd_rate=$(rate "$EVENTS" "$nd_ms")
    nd_state=$(awk -v d="$sv_ms" -v n="$nd_ms" 'BEGIN { printf "%+.1f%%", (n > 0) ? (d / n - 1) * 100 : 0 }')
    say "durability off: $EVENTS events in $nd_ms ms, $nd_rate events/s; the overhead of durability:" \
        "$nd_state (target <= 10%: $(awk -v d="$sv_ms" -v n="$nd_ms" 'BEGIN { print (d <= n * 1.10) ? "ok" : "OVER" }'))"
    sv_down "$nhome"
    rm -rf "$nhome"
else
    say "durability off: not measured (the programs do not honour CTXVAULT_BENCH_NO_DURABILITY)"
fi
say ""

# ---- each filter alone ---------------------------------------------------

say "== each filter alone"
solo=$tmp/solo
new_home "$solo"
ihome=$tmp/solo-ingest
new_home "$ihome"

t0=$(now_ms)
CTXVAULT_HOME=$ihome timed i "$BIN/ctxvault-ingest" --stdout "$events" >/dev/null || :
i_ms=$(( $(now_ms) - t0 ))
check i "ctxvault-ingest alone"
i_rate=$(rate "$EVENTS" "$i_ms")
say "ingest  (file -> /dev/null):      $i_ms ms, $i_rate events/s, peak RSS $(mib "$(rss i)") MiB"
rm -rf "$ihome"

# the input for encrypt, and encrypt's output for store, in one instance so
# the keys agree; its database stays empty until store runs
CTXVAULT_HOME=$solo timed n "$BIN/ctxvault-ingest" --stdout "$events" >"$tmp/normalised.ndjson" || :
check n "ctxvault-ingest (saving normalised events)"

t0=$(now_ms)
CTXVAULT_HOME=$solo timed e "$BIN/ctxvault-encrypt" <"$tmp/normalised.ndjson" >"$tmp/encrypted.ndjson" || :
e_ms=$(( $(now_ms) - t0 ))
check e "ctxvault-encrypt alone"
e_rate=$(rate "$EVENTS" "$e_ms")
say "encrypt (file -> file):           $e_ms ms, $e_rate events/s, peak RSS $(mib "$(rss e)") MiB"

before=$(rows "$solo")
[ "$before" = 0 ] || say "  WARNING: the fresh instance already holds $before rows"
# the same instance for an older build's store (BENCH_BASE_BIN, its bin/):
# a database it makes itself, and the older defaults of the page cache
if [ -n "${BENCH_BASE_BIN:-}" ]; then
    rm -rf "$tmp/solo-base"
    cp -a "$solo" "$tmp/solo-base"
    rm -f "$tmp/solo-base/data/ctxvault.db"*
    sed -i 's/^cache_size .*/cache_size = 14MiB/; s/^wal_autocheckpoint .*/wal_autocheckpoint = 10000/' \
        "$tmp/solo-base/ctxvault.conf"
fi
t0=$(now_ms)
CTXVAULT_HOME=$solo timed s "$BIN/ctxvault-store" <"$tmp/encrypted.ndjson" || :
s_ms=$(( $(now_ms) - t0 ))
check s "ctxvault-store alone"
s_rate=$(rate "$EVENTS" "$s_ms")
s_rows=$(rows "$solo")
say "store   (file -> fresh database): $s_ms ms, $s_rate events/s, peak RSS $(mib "$(rss s)") MiB, $s_rows rows"
say "  (normalised $(( $(wc -c <"$tmp/normalised.ndjson") / EVENTS )) B/event," \
    "encrypted $(( $(wc -c <"$tmp/encrypted.ndjson") / EVENTS )) B/event)"
if [ -n "${BENCH_BASE_BIN:-}" ]; then
    t0=$(now_ms)
    CTXVAULT_HOME=$tmp/solo-base timed sb "$BENCH_BASE_BIN/ctxvault-store" <"$tmp/encrypted.ndjson" || :
    sb_ms=$(( $(now_ms) - t0 ))
    check sb "the older store alone"
    say "store before ($BENCH_BASE_BIN, 14 MiB cache, its page size): $sb_ms ms," \
        "$(rate "$EVENTS" "$sb_ms") events/s, peak RSS $(mib "$(rss sb)") MiB, $(rows "$tmp/solo-base") rows"
    rm -rf "$tmp/solo-base"
fi
rm -rf "$solo" "$tmp/normalised.ndjson" "$tmp/encrypted.ndjson"
say ""

[ "${BENCH_ONLY:-}" = store ] || bench_deny "$events"

# ---- syslog-ng into SQLite, the same events --------------------------------

say "== syslog-ng: stdin() -> json-parser() -> sql(sqlite3)"
sng_state=skipped
missing=
for pkg in syslog-ng-core syslog-ng-mod-sql libdbd-sqlite3; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' \
        || missing="$missing $pkg"
done
if [ -n "$missing" ] || ! command -v syslog-ng >/dev/null; then
    say "SKIPPED: not installed:${missing:- syslog-ng} (make deps installs them)"
else
    sng=$tmp/syslog-ng
    mkdir "$sng"
    # flow-control so nothing is dropped when the queue fills; a window
    # (log-iw-size) well above batch-lines so batches never wait on the
    # timeout; the same two indexes ctxvault keeps (user, time)
    cat >"$sng/syslog-ng.conf" <<EOF
@version: 3.38
options { stats_freq(0); log-fifo-size(20000); };
source s_in { stdin(flags(no-parse) log-iw-size(10000)); };
parser p_json { json-parser(prefix(".json.")); };
destination d_sql {
    sql(type(sqlite3) database("$sng/events.db") table("events")
        columns("id", "kind", "user_id", "ts", "body")
        values("\${.json.id}", "\${.json.kind}", "\${.json.user_id}",
               "\${.json.ts}", "\${MSG}")
        indexes("user_id", "ts")
        flags(explicit-commits) batch-lines(1000) batch-timeout(100)
        log-fifo-size(20000));
};
log { source(s_in); parser(p_json); destination(d_sql); flags(flow-control); };
EOF
    syslog-ng -s -f "$sng/syslog-ng.conf" >"$sng/syntax.log" 2>&1 || {
        sed 's/^/    /' "$sng/syntax.log" >&2
        die "syslog-ng rejects the benchmark configuration"
    }
    # stdin() cannot read a redirected regular file: pipe. The stdin()
    # source makes syslog-ng exit at end of input; whatever it has not
    # committed by then is lost, which is part of the comparison. Persist
    # file, pid file and control socket go in the temp dir (no root needed).
    t0=$(now_ms)
    # shellcheck disable=SC2002 # a pipe on purpose
    cat "$events" | timed sng syslog-ng -F -f "$sng/syslog-ng.conf" --no-caps \
        -R "$sng/persist" -p "$sng/pid" -c "$sng/ctl" -e >/dev/null || :
    sng_ms=$(( $(now_ms) - t0 ))
    check sng "syslog-ng"
    sng_rows=$(sqlite3 "$sng/events.db" 'select count(*) from events' 2>/dev/null || echo 0)
    sng_rate=$(rate "$EVENTS" "$sng_ms")
    sng_state=ran
    say "$EVENTS events in $sng_ms ms: $sng_rate events/s offered;" \
        "$sng_rows of $EVENTS rows stored, peak RSS $(mib "$(rss sng)") MiB"
    [ "$sng_rows" = "$EVENTS" ] || say "  $((EVENTS - sng_rows)) events lost (the tail, at end of input)"
    rm -rf "$sng"
fi
say ""

# store_targets: the write path against syslog-ng on the same events, in
# this run: the pipeline at least 1.2x, the supervised pipeline 1.0x, store
# alone 100,000 rows/s
store_targets() {
    _vs() { awk -v a="$1" -v b="${sng_rate:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }'; }
    _ok() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "?" && r >= t) ? "ok" : "UNDER" }'; }
    p_sng=$(_vs "$p_rate") sv_sng=$(_vs "$sv_rate")
    printf '%-34s %s events/s, %sx syslog-ng (%s events/s, %s of %s stored)   target >= 1.2x: %s\n' \
        "ingest | encrypt | store" "$p_rate" "$p_sng" "${sng_rate:-?}" "${sng_rows:-?}" "$EVENTS" "$(_ok "$p_sng" 1.2)"
    printf '%-34s %s events/s, %sx syslog-ng   target >= 1.0x: %s\n' \
        "supervised (ctxvault-ingest FILE)" "$sv_rate" "$sv_sng" "$(_ok "$sv_sng" 1.0)"
    printf '%-34s %s rows/s   target >= 100000: %s\n' \
        "store alone" "$s_rate" "$(_ok "$s_rate" 100000)"
}

if [ "${BENCH_ONLY:-}" = store ]; then
    say "== summary: the write path ($EVENTS events from $USERS users, $(nproc) cores)"
    store_targets
    exit 0
fi

# ---- query latency on a million rows ---------------------------------------

say "== query latency: $QEVENTS events from $QUSERS users"
qhome=$tmp/qhome
new_home "$qhome"
t0=$(now_ms)
{ "$GEN" -n "$QEVENTS" -u "$QUSERS" -s 2 \
    | CTXVAULT_HOME=$qhome timed q.ingest "$BIN/ctxvault-ingest" --stdout \
    | CTXVAULT_HOME=$qhome timed q.encrypt "$BIN/ctxvault-encrypt" \
    | CTXVAULT_HOME=$qhome timed q.store "$BIN/ctxvault-store"; } || :
q_ms=$(( $(now_ms) - t0 ))
check3 q "building the query database"
q_rows=$(rows "$qhome")
q_rate=$(rate "$QEVENTS" "$q_ms")
say "built in $q_ms ms ($q_rate events/s, generator included): $q_rows rows," \
    "$(du -sk "$qhome/data" | awk '{ printf "%d MiB", $1 / 1024 }') on disk"

st=0
CTXVAULT_HOME=$qhome "$BIN/ctxvault" query --user "$QUSER" --limit 100 \
    >"$tmp/query.out" 2>"$tmp/query.err" || st=$?
if [ "$st" != 0 ]; then
    tail -n 5 "$tmp/query.err" | sed 's/^/    /' >&2
    die "ctxvault query --user $QUSER failed (exit status $st)"
fi
say "ctxvault query --user $QUSER --limit 100 returns $(wc -l <"$tmp/query.out") events" \
    "(one warm-up run, then $QUERIES timed)"

# latency LABEL CMD...: QUERIES runs, ms each, into $tmp/LABEL.ms
latency() {
    _l=$1; shift
    : >"$tmp/$_l.ms"
    _i=0
    while [ "$_i" -lt "$QUERIES" ]; do
        _a=$(date +%s%N)
        "$@" >/dev/null 2>"$tmp/$_l.err" || {
            sed 's/^/    /' "$tmp/$_l.err" >&2
            die "$* failed during timing"
        }
        _b=$(date +%s%N)
        echo $(( (_b - _a) / 1000 )) >>"$tmp/$_l.ms"   # microseconds
        _i=$((_i + 1))
    done
}
# median and max in ms, from microseconds
stats() {
    sort -n "$tmp/$1.ms" | awk '{ v[NR] = $1 } END {
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.1f %.1f", m / 1000, v[NR] / 1000 }'
}
latency base /bin/true
export CTXVAULT_HOME="$qhome"      # not through env(1): one exec fewer
latency query "$BIN/ctxvault" query --user "$QUSER" --limit 100
unset CTXVAULT_HOME
read -r q_med q_max <<EOF
$(stats query)
EOF
read -r b_med _ <<EOF
$(stats base)
EOF
say "latency: median $q_med ms, max $q_max ms (target < $QUERY_TARGET_MS ms;" \
    "starting /bin/true the same way takes $b_med ms)"

# store's restart after SIGKILL on this million-row database, with a WAL
# left behind: supervisord restarts it at once; the time runs from the kill
# until a new event sent with `ctxvault-ingest FILE` is committed and
# acknowledged (client start and the hop through ingest and encrypt
# included), and store's own "ready in N ms" is shown beside it
sv_up "$qhome"
"$GEN" -n 20000 -u "$QUSERS" -s 4 >"$tmp/wal.ndjson" || die "genevents failed"
client r.wal "$qhome" "$tmp/wal.ndjson"
check r.wal "ctxvault-ingest FILE (filling the WAL)"
"$GEN" -n 1 -u 1 -s 5 | sed 's/"user_id":"[^"]*"/"user_id":"restart-probe"/' >"$tmp/one.ndjson"
r_wal=$(stat -c %s "$qhome/data/ctxvault.db-wal" 2>/dev/null || echo 0)
r_pid=$(sv_pid "$qhome" store)
t0=$(now_ms)
kill -9 "$r_pid"
r_ping=?
if [ -x "$PRODUCE" ]; then
    CTXVAULT_HOME=$qhome "$PRODUCE" --ping --wait 50 --timeout 60 >"$tmp/ping.out" 2>&1 &&
        r_ping_at=$(now_ms) && r_ping=$((r_ping_at - t0))
fi
# when supervisord spawned the new store (its log, ms resolution): the
# restart itself, without supervisord's own delay in noticing the death
r_new=$(sv_pid "$qhome" store)
r_spawn=$(sed -n "s/^\([0-9-]* [0-9:]*\),\([0-9]*\) INFO spawned: 'ctxvault-store' with pid $r_new\$/\1.\2/p" \
    "$qhome/run/supervisord.log" | tail -n 1)
r_spawn_ms=?
r_self=?
if [ -n "$r_spawn" ]; then
    r_spawn_ms=$(( $(date -d "$r_spawn" +%s%3N) - t0 ))
    [ "$r_ping" != "?" ] && r_self=$((r_ping - r_spawn_ms))
fi
client r.one "$qhome" "$tmp/one.ndjson"
r_ms=$(( $(now_ms) - t0 ))
check r.one "ctxvault-ingest FILE (one event after store's SIGKILL)"
r_ready=$(grep 'ready in' "$qhome/run/ctxvault-store.log" | tail -n 1 | sed -n 's/.*ready in \([0-9]*\) ms.*/\1/p')
r_recover=$(grep -ci 'recover' "$qhome/run/ctxvault-store.log" || :)
say "store restart after SIGKILL ($(rows "$qhome") rows, WAL of $((r_wal / 1024)) KiB left):"
say "  answers a ping on its control socket $r_ping ms after the kill (target < 1000 ms:" \
    "$(awk -v m="$r_ping" 'BEGIN { print (m != "?" && m < 1000) ? "ok" : "OVER" }')); store said ready in ${r_ready:-?} ms" \
    "(recovery reported: $([ "${r_recover:-0}" -gt 0 ] && echo yes || echo no))"
say "  of which supervisord took $r_spawn_ms ms to respawn it (it reaps children about once a second)," \
    "and store $r_self ms from its spawn to the ping answered"
say "  a new event sent then is committed and acknowledged $r_ms ms after the kill" \
    "(acks wait for the start check)"
sv_down "$qhome"
rm -rf "$qhome"
say ""

# ---- retention: a sweep of a million rows, with the pipeline running -------

# 2,000,000 rows: SWEEP_EVENTS of last January (expired by the sweep's
# clock, but for the profiles, kept as long as their users say) and as many
# from yesterday (kept), 100 users each, so one user holds about 10,000
# rows of the second half. The sweep runs through the supervised store,
# with its clock (CTXVAULT_NOW, honoured by the sweep's requests) on
# 2027-03-01, while cvlatency sends 1,000 events/s through encrypt and store
# and times each acknowledgement; the same probe runs first without a sweep.
SWEEP_EVENTS=${BENCH_SWEEP_EVENTS:-1000000}
SWEEP_NOW=2027-03-01T00:00:00Z
say "== retention: ctxvault-ttl-sweep on $((2 * SWEEP_EVENTS)) rows, the pipeline running"
whome=$tmp/whome
new_home "$whome"
t0=$(now_ms)
for half in old new; do
    if [ "$half" = old ]; then start=2026-01-01T00:00:00Z seed=9; else start=2027-02-27T00:00:00Z seed=19; fi
    { "$GEN" -n "$SWEEP_EVENTS" -u 100 -s "$seed" --start "$start" \
        | CTXVAULT_NOW=$start CTXVAULT_HOME=$whome timed "w$half.ingest" "$BIN/ctxvault-ingest" --stdout \
        | CTXVAULT_HOME=$whome timed "w$half.encrypt" "$BIN/ctxvault-encrypt" \
        | CTXVAULT_NOW=$start CTXVAULT_HOME=$whome timed "w$half.store" "$BIN/ctxvault-store"; } || :
    check3 "w$half" "building the sweep database"
done
w_rows=$(rows "$whome")
now_ms_sweep=$(( $(date -d "$SWEEP_NOW" +%s) * 1000 ))
w_expired=$(sqlite3 "$whome/data/ctxvault.db" "select count(*) from events where expires_at <= $now_ms_sweep")
say "built in $(( $(now_ms) - t0 )) ms: $w_rows rows, $w_expired expired by $SWEEP_NOW"
"$GEN" -n 30000 -u 1000 -s 10 | CTXVAULT_HOME=$whome "$BIN/ctxvault-ingest" --stdout >"$tmp/probe.ndjson" 2>/dev/null
sed -n '15001,30000p' "$tmp/probe.ndjson" >"$tmp/probe2.ndjson"
sed -i '15001,$d' "$tmp/probe.ndjson"
sv_up "$whome"
l_base=$("$LATENCY" --home "$whome" --rate 1000 --seconds 8 "$tmp/probe.ndjson" 2>"$tmp/lat.err") || :
say "ack latency without a sweep (1,000 events/s for 8 s): ${l_base:-failed}"
t0=$(now_ms)
CTXVAULT_NOW=$SWEEP_NOW CTXVAULT_HOME=$whome "$BIN/ctxvault-ttl-sweep" --once \
    >"$tmp/sweep.out" 2>"$tmp/sweep.err" &
sw_pid=$!
l_sweep=$("$LATENCY" --home "$whome" --rate 1000 --seconds 4 "$tmp/probe2.ndjson" 2>>"$tmp/lat.err") || :
wait "$sw_pid" || { sed 's/^/    /' "$tmp/sweep.err" >&2; die "ctxvault-ttl-sweep failed"; }
sw_ms=$(( $(now_ms) - t0 ))
sw_json=$(cat "$tmp/sweep.out")
sw_deleted=$(printf '%s' "$sw_json" | sed -n 's/.*"deleted":\([0-9]*\).*/\1/p')
sw_inner=$(printf '%s' "$sw_json" | sed -n 's/.*"ms":\([0-9]*\).*/\1/p')
sw_rate=$(rate "${sw_deleted:-0}" "${sw_inner:-1}")
say "sweep: $sw_deleted rows deleted in $sw_inner ms through store: $sw_rate rows/s" \
    "(target >= 1000000: $(awk -v r="$sw_rate" 'BEGIN { print (r >= 1000000) ? "ok" : "UNDER" }'));" \
    "$sw_ms ms with process start, the WAL truncated and the audit entry"
say "  its output: $sw_json"
say "ack latency during the sweep (1,000 events/s for 4 s): ${l_sweep:-failed}"
p99_base=$(printf '%s' "$l_base" | sed -n 's/.* p99 \([0-9.]*\) .*/\1/p')
p99_sweep=$(printf '%s' "$l_sweep" | sed -n 's/.* p99 \([0-9.]*\) .*/\1/p')
say "  p99: ${p99_base:-?} ms without, ${p99_sweep:-?} ms with the sweep (target < 100 ms:" \
    "$(awk -v p="${p99_sweep:-1e9}" 'BEGIN { print (p < 100) ? "ok" : "OVER" }'))"
# export of one user's ~10,000 rows (the new half), decrypted
x_rows=$(CTXVAULT_HOME=$whome "$BIN/ctxvault" query --user user-00001 --limit 100000 | wc -l)
x_ms=?
if CTXVAULT_HOME=$whome "$BIN/ctxvault" --help 2>&1 | grep -q '^  export'; then
    t0=$(now_ms)
    CTXVAULT_HOME=$whome "$BIN/ctxvault" export --user user-00001 --format json >"$tmp/export.json" 2>"$tmp/export.err" ||
        { sed 's/^/    /' "$tmp/export.err" >&2; die "ctxvault export failed"; }
    x_ms=$(( $(now_ms) - t0 ))
fi
say "export of user-00001 ($x_rows rows) as JSON: $x_ms ms (target < 1000 ms:" \
    "$(awk -v m="$x_ms" 'BEGIN { print (m != "?" && m < 1000) ? "ok" : "OVER" }'))"
sv_down "$whome"
rm -rf "$whome"
say ""

bench_scrub
bench_rewrap
bench_ctxapi
bench_sync

# ---- summary ---------------------------------------------------------------

verdict_rss() {
    awk -v k="$1" -v t="$RSS_TARGET_MIB" 'BEGIN { print (k / 1024 <= t) ? "ok" : "OVER" }'
}
row() { printf '%-34s %10s %9s %10s  %s\n' "$@"; }
say "== summary ($EVENTS events, $(nproc) cores)"
store_targets
row "stage" "events/s" "stored" "peak RSS" "target"
row "pipeline (ingest|encrypt|store)" "$p_rate" "$p_rows" "" ""
row "supervised pipeline, ipc://" "$sv_rate" "$sv_rows" "" "${sv_ratio}x the filters (target >= 0.9x)"
for s in ingest encrypt store; do
    eval "k=\$sv_hwm_$s"
    eval "kb=\$bp_hwm_$s"
    row "  ctxvault-$s --serve" "" "" "$(mib "$k") MiB" \
        "<= $RSS_TARGET_MIB MiB: $(verdict_rss "$k"); with encrypt stopped: $(mib "$kb") MiB, $(verdict_rss "$kb")"
done
row "  ctxvault-ingest FILE (client)" "" "" "$(mib "$(rss sv.client)") MiB" "<= $RSS_TARGET_MIB MiB: $(verdict_rss "$(rss sv.client)")"
row "supervised, durability off" "${nd_rate:-}" "" "" "overhead of durability: $nd_state (target <= 10%)"
for s in ingest encrypt store; do
    k=$(rss "p.$s")
    row "  ctxvault-$s in the pipeline" "" "" "$(mib "$k") MiB" \
        "<= $RSS_TARGET_MIB MiB: $(verdict_rss "$k")"
done
row "ctxvault-ingest alone" "$i_rate" "" "$(mib "$(rss i)") MiB" "<= $RSS_TARGET_MIB MiB: $(verdict_rss "$(rss i)")"
row "ctxvault-encrypt alone" "$e_rate" "" "$(mib "$(rss e)") MiB" "<= $RSS_TARGET_MIB MiB: $(verdict_rss "$(rss e)")"
row "ctxvault-store alone" "$s_rate" "$s_rows" "$(mib "$(rss s)") MiB" "<= $RSS_TARGET_MIB MiB: $(verdict_rss "$(rss s)")"
row "encrypt, deny by default" "$d_deny_enc" "" "" "${d_enc_ratio}x default = keep ($d_keep_enc events/s)"
row "pipeline, deny by default" "$d_deny_pipe" "$d_deny_rows" "" "${d_pipe_ratio}x default = keep ($d_keep_pipe events/s)"
row "pipeline, application contexts" "$d_seed_deny" "$d_seed_deny_rows" "" "${d_seed_ratio}x default = keep ($d_seed_keep events/s)"
if [ "$sng_state" = ran ]; then
    row "syslog-ng -> sql(sqlite3)" "$sng_rate" "$sng_rows" "$(mib "$(rss sng)") MiB" "(peer)"
else
    row "syslog-ng -> sql(sqlite3)" "skipped" "" "" "(not installed)"
fi
row "pipeline, $QEVENTS events" "$q_rate" "$q_rows" "" ""
printf '%-34s ping answered %s ms after SIGKILL (%s ms after its respawn), a write acked after %s ms   target < 1000 ms: %s\n' \
    "store restart, $q_rows rows + WAL" "$r_ping" "$r_self" "$r_ms" \
    "$(awk -v m="$r_ping" 'BEGIN { print (m != "?" && m < 1000) ? "ok" : "OVER" }')"
printf '%-34s %s rows/s (%s rows)   target >= 1000000: %s\n' \
    "sweep, $w_rows rows" "$sw_rate" "$sw_deleted" \
    "$(awk -v r="$sw_rate" 'BEGIN { print (r >= 1000000) ? "ok" : "UNDER" }')"
printf '%-34s p99 %s ms with the sweep, %s ms without   target < 100 ms: %s\n' \
    "ack latency at 1,000 events/s" "${p99_sweep:-?}" "${p99_base:-?}" \
    "$(awk -v p="${p99_sweep:-1e9}" 'BEGIN { print (p < 100) ? "ok" : "OVER" }')"
printf '%-34s %s rows/s (%s rows)   target >= 50000: %s\n' \
    "scrub, through store" "$sc_rate" "$sc_rows" \
    "$(awk -v r="$sc_rate" 'BEGIN { print (r >= 50000) ? "ok" : "UNDER" }')"
printf '%-34s p99 %s ms with the scrub, %s ms without   target < 100 ms: %s\n' \
    "ack latency at 1,000 events/s" "${c_p99:-?}" "${c_p99_base:-?}" \
    "$(awk -v p="${c_p99:-1e9}" 'BEGIN { print (p < 100) ? "ok" : "OVER" }')"
printf '%-34s %s ms, %s bytes (sqlite3 .backup + zstd: %s ms, %s bytes); restore %s ms\n' \
    "backup create+verify, 1M rows" "${bk_ms:-?}" "${bk_bytes:-?}" "${ref_ms:-?}" "${ref_bytes:-?}" "${rs_ms:-?}"
printf '%-34s %s ms for %s rows   target < 1000 ms: %s\n' \
    "export --user --format json" "$x_ms" "$x_rows" \
    "$(awk -v m="$x_ms" 'BEGIN { print (m != "?" && m < 1000) ? "ok" : "OVER" }')"
printf '%-34s median %s ms, max %s ms   target < %s ms: %s\n' \
    "query --user --limit 100" "$q_med" "$q_max" "$QUERY_TARGET_MS" \
    "$(awk -v m="$q_med" -v t="$QUERY_TARGET_MS" 'BEGIN { print (m < t) ? "ok" : "OVER" }')"
printf '%-34s p99 %s ms (p50 %s ms)   target < 1 ms: %s\n' \
    "context.load, 1M rows" "$x_load_p99" "$x_load_p50" \
    "$(awk -v p="$x_load_p99" 'BEGIN { print (p < 1) ? "ok" : "OVER" }')"
printf '%-34s p99 %s ms (p50 %s ms)   target < 5 ms: %s\n' \
    "interactions.query, 100 rows" "$x_query_p99" "$x_query_p50" \
    "$(awk -v p="$x_query_p99" 'BEGIN { print (p < 5) ? "ok" : "OVER" }')"
printf '%-34s %sx the rate alone (%s against %s events/s)   target >= 0.8x: %s\n' \
    "ingest with 8 querying clients" "$x_ratio" "$x_with" "$x_alone" \
    "$(awk -v r="$x_ratio" 'BEGIN { print (r >= 0.8) ? "ok" : "UNDER" }')"
