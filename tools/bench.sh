#!/bin/sh
# bench.sh - ctxvault's figures: pipeline and per-filter throughput, peak
# memory of each program, query latency on a million rows, and syslog-ng
# writing the same events into SQLite as the peer to beat. `make bench`
# runs it from the repository root after building.
#
# Environment (for quick runs): BENCH_EVENTS (200000), BENCH_USERS (1000),
# BENCH_QUERY_EVENTS (1000000), BENCH_QUERY_USERS (10000), BENCH_QUERIES
# (20), BENCH_KEEP=1 keeps the temporary directory.
set -eu

EVENTS=${BENCH_EVENTS:-200000}
USERS=${BENCH_USERS:-1000}
QEVENTS=${BENCH_QUERY_EVENTS:-1000000}
QUSERS=${BENCH_QUERY_USERS:-10000}
QUERIES=${BENCH_QUERIES:-20}
QUSER=user-00042
RSS_TARGET_MIB=32
QUERY_TARGET_MS=20
STAGE_TIMEOUT=900           # seconds; a hung stage fails the run, loudly

BIN=bin
GEN=build/plain/genevents
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
cleanup() {
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
rm -rf "$home"
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
t0=$(now_ms)
CTXVAULT_HOME=$solo timed s "$BIN/ctxvault-store" <"$tmp/encrypted.ndjson" || :
s_ms=$(( $(now_ms) - t0 ))
check s "ctxvault-store alone"
s_rate=$(rate "$EVENTS" "$s_ms")
s_rows=$(rows "$solo")
say "store   (file -> fresh database): $s_ms ms, $s_rate events/s, peak RSS $(mib "$(rss s)") MiB, $s_rows rows"
say "  (normalised $(( $(wc -c <"$tmp/normalised.ndjson") / EVENTS )) B/event," \
    "encrypted $(( $(wc -c <"$tmp/encrypted.ndjson") / EVENTS )) B/event)"
rm -rf "$solo" "$tmp/normalised.ndjson" "$tmp/encrypted.ndjson"
say ""

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
rm -rf "$qhome"
say ""

# ---- summary ---------------------------------------------------------------

verdict_rss() {
    awk -v k="$1" -v t="$RSS_TARGET_MIB" 'BEGIN { print (k / 1024 <= t) ? "ok" : "OVER" }'
}
row() { printf '%-34s %10s %9s %10s  %s\n' "$@"; }
say "== summary ($EVENTS events, $(nproc) cores)"
row "stage" "events/s" "stored" "peak RSS" "target"
row "pipeline (ingest|encrypt|store)" "$p_rate" "$p_rows" "" ""
for s in ingest encrypt store; do
    k=$(rss "p.$s")
    row "  ctxvault-$s in the pipeline" "" "" "$(mib "$k") MiB" \
        "<= $RSS_TARGET_MIB MiB: $(verdict_rss "$k")"
done
row "ctxvault-ingest alone" "$i_rate" "" "$(mib "$(rss i)") MiB" "<= $RSS_TARGET_MIB MiB: $(verdict_rss "$(rss i)")"
row "ctxvault-encrypt alone" "$e_rate" "" "$(mib "$(rss e)") MiB" "<= $RSS_TARGET_MIB MiB: $(verdict_rss "$(rss e)")"
row "ctxvault-store alone" "$s_rate" "$s_rows" "$(mib "$(rss s)") MiB" "<= $RSS_TARGET_MIB MiB: $(verdict_rss "$(rss s)")"
if [ "$sng_state" = ran ]; then
    row "syslog-ng -> sql(sqlite3)" "$sng_rate" "$sng_rows" "$(mib "$(rss sng)") MiB" "(peer)"
else
    row "syslog-ng -> sql(sqlite3)" "skipped" "" "" "(not installed)"
fi
row "pipeline, $QEVENTS events" "$q_rate" "$q_rows" "" ""
printf '%-34s median %s ms, max %s ms   target < %s ms: %s\n' \
    "query --user --limit 100" "$q_med" "$q_max" "$QUERY_TARGET_MS" \
    "$(awk -v m="$q_med" -v t="$QUERY_TARGET_MS" 'BEGIN { print (m < t) ? "ok" : "OVER" }')"
