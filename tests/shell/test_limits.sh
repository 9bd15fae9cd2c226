#!/bin/sh
# test_limits.sh - hostile conditions: a low
# open-file limit, a memory limit, a peer that stops reading; the modes of
# every file and directory under a permissive umask, plain tcp refused,
# metrics on loopback; and the bad-input corpus through the pipeline run by
# real supervisord. Each ends in a clear error or backpressure, never a
# crash (a signal) or silent loss.
SUITE=limits
. "$CV_TOP/tests/shell/lib.sh"

CTXVAULT_BIN=$CV_BIN
export CTXVAULT_BIN
unset CTXVAULT_SUPERVISORD_CONF
FLOOD=$CV_BUILD/cvflood

# The ASan+UBSan build runs 2-3x slower: smaller streams there.
case $CV_BUILD in
*/asan) N_STREAM=3000 ;;
*) N_STREAM=8000 ;;
esac

# ---- helpers ---------------------------------------------------------------

# assert_sysexits NAME STATUS: STATUS is 0 or a sysexits code (64-78), never
# a signal's (>= 128) nor a bare 1
assert_sysexits() {
    if [ "$2" -ne 0 ] && { [ "$2" -lt 64 ] || [ "$2" -gt 78 ]; }; then
        fail "$1 exited $2, not 0 or a sysexits status: $(tail -c 600 "$TEST_TMP/$1.err" 2> /dev/null)"
    fi
}

# spool_records: the records in the instance's spools (lib/storage/spool.h: an
# 8-byte magic, then u32 length, 8-byte checksum, payload per record)
spool_records() {
    python3 -c '
import glob, struct, sys
n = 0
for f in glob.glob(sys.argv[1] + "/spool/*/[0-9]*"):
    b = open(f, "rb").read()
    i = 8
    while i + 12 <= len(b):
        (l,) = struct.unpack_from("<I", b, i)
        if i + 12 + l > len(b):
            break
        i += 12 + l
        n += 1
print(n)' "$HOME_DIR"
}

spooled_at_least() {
    [ "$(spool_records)" -ge "$1" ]
}

# rss_kb PID: resident memory of PID in KiB
rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2> /dev/null || echo 0
}

suite_tearDown() {
    sv_kill_all
    umask 022
}

# ---- A. resource limits: open files ------------------------------------------

# In the ASan build, LeakSanitizer's exit check opens /proc/PID/task: under
# a tiny descriptor limit it cannot, and turns a clean exit 71 into 1. The
# programs' own behaviour is what is tested, so leak checks are off for
# these runs only (the rest of the suite keeps them).
NO_LSAN="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

test_low_open_file_limit_stops_store_with_a_clear_error_never_an_abort() {
    # found here: below about 12 the lock file, database or journal cannot
    # be opened; from 12 to 28 libzmq and CZMQ used to abort (SIGABRT) on
    # their own descriptors; sock.c now stops below 64 with a clear error
    for n in 6 8 10 12 16 24 32 48; do
        (ulimit -n "$n" && ASAN_OPTIONS=$NO_LSAN exec ctxvault-store --serve) 2> "$TEST_TMP/store.err" &
        pid=$!
        bg_track "$pid"
        wait_until 10 eval "! kill -0 $pid 2> /dev/null" ||
            fail "store --serve under ulimit -n $n kept running"
        wait "$pid"
        rc=$?
        assert_sysexits store "$rc"
        assertNotEquals "store --serve under ulimit -n $n exits non-zero" 0 "$rc"
        assert_grep "$TEST_TMP/store.err" 'error: .*(open file limit|too many open files|unable to open database|cannot open)' \
            "store under ulimit -n $n should say what it could not open"
    done
    assertEquals "the last message names the limit" 1 \
        "$(grep -c 'open file limit (ulimit -n) is 48' "$TEST_TMP/store.err")"
    # at the floor of 64 it works
    (ulimit -n 64 && exec ctxvault-store --serve) 2> "$TEST_TMP/store.err" &
    pid=$!
    bg_track "$pid"
    wait_until 10 grep -q 'ready in' "$TEST_TMP/store.err" ||
        fail "store --serve did not start under ulimit -n 64: $(cat "$TEST_TMP/store.err")"
    kill -TERM "$pid"
    wait "$pid"
    assert_status store 0 $?
}

test_low_open_file_limit_on_the_ingest_client_loses_nothing() {
    gen "$TEST_TMP/in.ndjson" -n 2000 -s 71 -u 50
    services_start
    for n in 8 16 32; do
        (ulimit -n "$n" && ASAN_OPTIONS=$NO_LSAN exec ctxvault-ingest --timeout 20 "$TEST_TMP/in.ndjson") \
            > /dev/null 2> "$TEST_TMP/ingest.err"
        rc=$?
        assert_sysexits ingest "$rc"
        assertNotEquals "ingest under ulimit -n $n exits non-zero" 0 "$rc"
        assert_grep "$TEST_TMP/ingest.err" 'error: .*(open file limit|too many open files|cannot open)' \
            "ingest under ulimit -n $n should say what it could not open"
    done
    # at 64 both the client and a store under the same limit keep working
    (ulimit -n 64 && exec ctxvault-ingest --timeout 60 "$TEST_TMP/in.ndjson") \
        > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    # and a rerun with the normal limit stores nothing twice
    ctxvault-ingest --timeout 60 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    assertEquals "rows" 2000 "$(distinct_ids)"
    assertEquals "rows (each once)" 2000 "$(sqlite3 -readonly "$DB" 'SELECT COUNT(*) FROM events')"
}

# ---- A. resource limits: memory ----------------------------------------------

# ulimit -v cannot work in the ASan build (its shadow memory reserves
# terabytes of address space, so any limit fails at start), so these run
# the plain build's programs, $CV_TOP/bin, in both runs: the behaviour
# under test (cv_malloc's clear death, no signal, no loss) is the same code.
PLAIN=$TOP/bin

test_memory_limit_gives_a_clear_out_of_memory_error_and_loses_nothing() {
    [ -x "$PLAIN/ctxvault-ingest" ] || { fail "$PLAIN/ctxvault-ingest is missing: make first"; return; }
    # ingest takes a buffer of max_line for a line: 1 GiB under 400 MB of
    # address space cannot be had
    conf_set max_line 1GiB
    event 1 > "$TEST_TMP/one.ndjson"
    (ulimit -v 400000 && exec "$PLAIN/ctxvault-ingest" --stdout "$TEST_TMP/one.ndjson") \
        > "$TEST_TMP/out" 2> "$TEST_TMP/ingest.err"
    assert_status ingest 71 $?
    assert_grep "$TEST_TMP/ingest.err" '^ctxvault-ingest: error: out of memory allocating [0-9]+ bytes$'
    assertEquals "nothing half-written on stdout" 0 "$(wc -c < "$TEST_TMP/out")"
    conf_set max_line 1MiB
    # the filter pipeline under tightening limits: each stage works or dies
    # with a clear error and a sysexits status; a rerun stores all once
    for v in 48000 32000 24000 20000 16000; do
        (ulimit -v "$v"
         { "$PLAIN/ctxvault-ingest" --stdout "$DATA/sample.ndjson" 2> "$TEST_TMP/ingest.err"; echo $? > "$TEST_TMP/ingest.rc"; } |
             { "$PLAIN/ctxvault-encrypt" 2> "$TEST_TMP/encrypt.err"; echo $? > "$TEST_TMP/encrypt.rc"; } |
             { "$PLAIN/ctxvault-store" 2> "$TEST_TMP/store.err"; echo $? > "$TEST_TMP/store.rc"; })
        for p in ingest encrypt store; do
            rc=$(cat "$TEST_TMP/$p.rc")
            if [ "$rc" -eq 127 ]; then
                # the dynamic loader could not map a library: before our code
                assert_grep "$TEST_TMP/$p.err" 'error while loading shared libraries'
                continue
            fi
            assert_sysexits "$p" "$rc"
            if [ "$rc" -ne 0 ]; then
                assert_grep "$TEST_TMP/$p.err" 'error: ' "$p under ulimit -v $v exited $rc without saying why"
                assert_no_grep "$TEST_TMP/$p.err" 'AddressSanitizer|runtime error|Segmentation|Aborted'
            fi
        done
    done
    grep -h 'out of memory allocating' "$TEST_TMP"/*.err > /dev/null ||
        echo "  (no stage ran out of memory at these limits on this machine)"
    "$PLAIN/ctxvault-ingest" --stdout "$DATA/sample.ndjson" 2> /dev/null |
        "$PLAIN/ctxvault-encrypt" 2> /dev/null | "$PLAIN/ctxvault-store" 2> /dev/null
    assertEquals "rows after a rerun" "$(nonblank "$DATA/sample.ndjson")" "$(rows)"
    assertEquals "distinct ids" "$(nonblank "$DATA/sample.ndjson")" "$(distinct_ids)"
}

# ---- A. a peer that stops reading ----------------------------------------------

test_stopped_store_keeps_events_spooled_with_bounded_memory_and_loses_nothing() {
    gen "$TEST_TMP/in.ndjson" -n "$N_STREAM" -s 72 -u 100
    services_start
    kill -STOP "$STORE_PID"
    ctxvault-ingest --timeout 120 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err" &
    cpid=$!
    bg_track "$cpid"
    # every event spooled while store reads nothing (the spool grows on
    # disk; what is in flight stays within the window)
    wait_until 60 spooled_at_least "$N_STREAM" ||
        fail "only $(spool_records) of $N_STREAM events spooled while store was stopped"
    sleep 1
    rss=$(rss_kb "$cpid")
    echo "  (ingest client RSS with store stopped: ${rss} KiB for $N_STREAM events)"
    assertTrue "the client still waits for store" "kill -0 $cpid"
    assertTrue "ingest memory stays bounded (${rss} KiB < 160 MiB)" "[ ${rss:-0} -lt 163840 ]"
    kill -CONT "$STORE_PID"
    wait_until 150 eval "! kill -0 $cpid 2> /dev/null" || fail "the client did not finish after SIGCONT: $(tail -c 400 "$TEST_TMP/ingest.err")"
    wait "$cpid"
    assert_status ingest 0 $?
    assertEquals "rows" "$N_STREAM" "$(distinct_ids)"
    assertEquals "rows (each once)" "$N_STREAM" "$(sqlite3 -readonly "$DB" 'SELECT COUNT(*) FROM events')"
}

test_control_client_that_never_reads_does_not_block_store() {
    [ -x "$FLOOD" ] || { fail "$FLOOD is missing: make first"; return; }
    # ASan keeps freed memory in quarantine (256 MiB by default), which
    # would hide whether store's own memory is bounded: keep it small
    _asan=${ASAN_OPTIONS:-}
    ASAN_OPTIONS="${_asan:+$_asan:}quarantine_size_mb=8"
    export ASAN_OPTIONS
    services_start
    ASAN_OPTIONS=$_asan
    "$FLOOD" --count 20000 --hold 60 > "$TEST_TMP/flood.out" 2> "$TEST_TMP/flood.err" &
    fpid=$!
    bg_track "$fpid"
    wait_until 60 grep -q '^sent 20000$' "$TEST_TMP/flood.out" ||
        fail "the flood was not taken: $(cat "$TEST_TMP/flood.err")"
    # store answers another client at once, over the control socket
    timeout 10 ctxvault stats > /dev/null 2> "$TEST_TMP/stats.err"
    assert_status stats 0 $?
    assert_no_grep "$TEST_TMP/stats.err" 'reading the file' "stats should come from store, not the file"
    # and goes on committing events
    ctxvault-ingest --timeout 30 "$DATA/sample.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    assertEquals "rows" "$(nonblank "$DATA/sample.ndjson")" "$(rows)"
    rss=$(rss_kb "$STORE_PID")
    echo "  (store RSS with 20000 unread replies: ${rss} KiB)"
    assertTrue "store memory stays bounded (${rss} KiB < 256 MiB)" "[ ${rss:-0} -lt 262144 ]"
    assertTrue "the flood client still holds its connection" "kill -0 $fpid"
    kill -TERM "$STORE_PID"
    wait "$STORE_PID"
    assert_status store 0 $?
}

# ---- B. permissions and exposure --------------------------------------------------

# not_private DIR: every file under DIR that is not 0600, directory not
# 0700, socket not 0600 (ipc:// socket files: 0600 in the 0700 run dir)
not_private() {
    find "$1" \( -type f ! -perm 600 \) -o \( -type d ! -perm 700 \) -o \( -type s ! -perm 600 \) \
        -printf '%m %p\n' 2> /dev/null
}

# every_file_under_umask MASK: a new instance made and used under MASK
every_file_under_umask() {
    umask "$1"
    rm -rf "$HOME_DIR"
    ctxvault init > /dev/null 2> "$TEST_TMP/init.err" || fail "init under umask $1 failed"
    sed -i 's|^listen .*|listen = 127.0.0.1:0|' "$HOME_DIR/ctxvault.conf"
    # the filter pipeline, with bad lines: dead letters
    conf_set max_line 16KiB
    pipeline "$DATA/corpus-bad.ndjson"
    assert_status ingest 65 "$STATUS_INGEST"
    # the socket pipeline: spool, journal, datakeys, ipc sockets
    services_start
    ctxvault-metrics --textfile "$TEST_TMP/ctxvault.prom" 2> "$TEST_TMP/metrics.err" &
    bg_track $!
    ctxvault-ingest --timeout 30 "$DATA/sample.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    wait_until 10 test -s "$TEST_TMP/ctxvault.prom" || fail "no metrics textfile"
    ctxvault-backup create > /dev/null 2> "$TEST_TMP/backup.err"
    assert_status backup 0 $?
    sockets=$(find "$HOME_DIR/run" -type s | wc -l)
    assertTrue "ipc socket files while running (found $sockets)" "[ $sockets -ge 4 ]"
    bad=$(not_private "$HOME_DIR")
    assertEquals "under umask $1, not 0600/0700 while running" "" "$bad"
    kill -TERM "$STORE_PID" "$ENCRYPT_PID"
    wait "$STORE_PID" "$ENCRYPT_PID"
    for d in deadletter spool journal backups keys; do
        assertTrue "$d was used" "[ -n \"\$(find '$HOME_DIR/$d' -type f)\" ]"
    done
    assertTrue "datakeys were made" "[ -f '$HOME_DIR/keys/datakeys.db' ]"
    bad=$(not_private "$HOME_DIR")
    assertEquals "under umask $1, not 0600/0700 after the stop" "" "$bad"
    # the one file made to be read by another user (node_exporter): the
    # textfile, counters only, outside the instance, always 0644
    assertEquals "metrics textfile mode" 644 "$(stat -c %a "$TEST_TMP/ctxvault.prom")"
    umask 022
}

test_every_file_is_0600_and_directory_0700_under_umask_000() {
    every_file_under_umask 000
}

test_every_file_is_0600_and_directory_0700_under_umask_002() {
    every_file_under_umask 002
}

test_tcp_without_curve_is_refused_unless_allowed() {
    port=$(free_port)
    conf_set store "tcp://127.0.0.1:$port"
    conf_set curve no
    ctxvault-store --serve 2> "$TEST_TMP/store.err"
    assert_status store 78 $?
    assert_grep "$TEST_TMP/store.err" "store = tcp://127.0.0.1:$port is tcp:// without CURVE.*allow_plain_tcp = yes"
    ctxvault config check > /dev/null 2> "$TEST_TMP/check.err"
    assert_status check 78 $?
    assert_grep "$TEST_TMP/check.err" 'allow_plain_tcp'
    ctxvault-encrypt --serve 2> "$TEST_TMP/encrypt.err"
    assert_status encrypt 78 $?
    # curve = auto (the default) on the same endpoint is fine
    conf_set curve auto
    ctxvault config check > /dev/null 2> "$TEST_TMP/check.err"
    assert_status check 0 $?
    # explicitly allowed: plain tcp works end to end
    conf_set curve no
    conf_set allow_plain_tcp yes
    services_start
    assertTrue "store listens on 127.0.0.1:$port" \
        "grep -q '0100007F:$(printf %04X "$port") 00000000:0000 0A' /proc/net/tcp"
    ctxvault-ingest --timeout 30 "$DATA/sample.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    assertEquals "rows over plain tcp" "$(nonblank "$DATA/sample.ndjson")" "$(rows)"
}

# listening ADDR_HEX PORT: /proc/net/tcp has a listener on ADDR_HEX:PORT
listening() {
    grep -q " $1:$(printf %04X "$2") 00000000:0000 0A" /proc/net/tcp
}

test_metrics_listens_on_loopback_unless_told_otherwise() {
    # the built-in default (no listen line at all): 127.0.0.1 on a free
    # port, recorded in the run directory
    sed -i '/^listen /d' "$HOME_DIR/ctxvault.conf"
    ctxvault-metrics 2> "$TEST_TMP/metrics.err" &
    mpid=$!
    bg_track "$mpid"
    wait_until 10 test -s "$HOME_DIR/run/metrics.listen" ||
        fail "metrics did not record where it listens: $(cat "$TEST_TMP/metrics.err")"
    addr=$(cat "$HOME_DIR/run/metrics.listen")
    port=${addr##*:}
    assertEquals "on loopback" "127.0.0.1" "${addr%:*}"
    assert_grep "$TEST_TMP/metrics.err" "serving http://$addr"
    assertTrue "listening on $addr" "listening 0100007F $port"
    assertFalse "not on every address" "listening 00000000 $port"
    kill -TERM "$mpid"
    wait "$mpid"
    assertFalse "the record goes with the listener" "test -e '$HOME_DIR/run/metrics.listen'"
    # an address must be named: a bare port is refused
    printf '[metrics]\nlisten = :%s\n' 9464 > "$TEST_TMP/noaddr.conf"
    ctxvault-metrics -c "$TEST_TMP/noaddr.conf" 2> "$TEST_TMP/metrics.err"
    assert_status metrics 78 $?
    assert_grep "$TEST_TMP/metrics.err" 'listen'
    # told otherwise: every address
    port=$(free_port)
    ctxvault-metrics --listen "0.0.0.0:$port" 2> "$TEST_TMP/metrics.err" &
    mpid=$!
    bg_track "$mpid"
    wait_until 10 listening 00000000 "$port" ||
        fail "metrics --listen 0.0.0.0:$port does not listen there: $(cat "$TEST_TMP/metrics.err")"
    kill -TERM "$mpid"
    wait "$mpid"
}

# ---- C. the bad-input corpus through the supervised pipeline --------------------

test_bad_input_corpus_through_supervised_pipeline_stores_valid_lines_once() {
    # tests/data/corpus-bad.ndjson (tests/tools/badcorpus.py): 28 lines, 9
    # valid, 1 blank, 18 bad, with max_line = 16KiB
    bad_lines="1 3 5 7 9 10 12 13 15 16 17 20 21 22 23 24 25 27"
    conf_set max_line 16KiB
    conf_set report_interval 200ms
    port=$(free_port)
    conf_set listen "127.0.0.1:$port"
    sv_start || return
    ctxvault-ingest --timeout 60 "$DATA/corpus-bad.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 65 $?
    # every valid line stored, once
    assertEquals "rows" 9 "$(sqlite3 -readonly "$DB" 'SELECT COUNT(*) FROM events')"
    assertEquals "distinct ids" 9 "$(sqlite3 -readonly "$DB" 'SELECT COUNT(DISTINCT id) FROM events')"
    # every bad one rejected with its line number, on stderr and in the
    # dead-letter file, and nothing else
    got=$(grep -o 'corpus-bad.ndjson:[0-9]*:' "$TEST_TMP/ingest.err" | cut -d: -f2 | tr '\n' ' ')
    assertEquals "lines rejected on stderr" "$bad_lines " "$got"
    got=$(sed 's/.*"line":\([0-9]*\).*/\1/' "$(deadletter ingest)" | tr '\n' ' ')
    assertEquals "lines in the dead-letter file" "$bad_lines " "$got"
    # and counted: the rejected-events metric
    wait_until 10 sh -c "[ \"\$(curl -s 'http://127.0.0.1:$port/metrics' | grep '^ctxvault_events_rejected_total{program=\"ctxvault-ingest\"' | awk '{ s += \$NF } END { print s + 0 }')\" = 18 ]" ||
        fail "ctxvault_events_rejected_total for ingest should be 18: $(curl -s "http://127.0.0.1:$port/metrics" | grep rejected_total)"
    SUPERVISE_TIMEOUT=60 sh "$SUPERVISE" stop > "$TEST_TMP/stop.out" 2>&1
    assertEquals "every program exits 0 on SIGTERM: $(cat "$TEST_TMP/stop.out")" 0 $?
    assertEquals "rows after the stop" 9 "$(rows)"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

. shunit2
