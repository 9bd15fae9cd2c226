#!/bin/sh
# test_powercut.sh - the power-cut simulator (tests/powercut/README.md):
# the shim records what programs do to a directory, powercut.py makes the
# states a power cut may leave. It must tell a correct sync pattern from a
# premature acknowledgement (pcut-selftest's four), tear and drop unsynced
# writes as the model says, keep every record of concurrent writers, and
# replay a real pipeline: under the default synchronous = journal (at
# every cut of a run, each state restarted) and under full no
# acknowledged event is lost in any state; under normal it finds the
# window DURABILITY.md describes.
SUITE=powercut
. "$CV_TOP/tests/shell/lib.sh"

PCUT=$CV_BUILD/powercut
PC="python3 $TOP/tests/powercut/powercut.py"
# the programs of an ASan build take a preloaded library only with this
# (the shim itself is never instrumented)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
export ASAN_OPTIONS

# shimmed CMD...: CMD under the shim, watching $ROOT, logging to $LOG,
# writes to $MARK logged as acknowledgements
shimmed() {
    POWERCUT_ROOT=$ROOT POWERCUT_LOG=$LOG POWERCUT_MARK=$MARK \
        LD_PRELOAD=$PCUT/shim.so "$@"
}

# selftest MODE: pcut-selftest MODE under the shim in a fresh directory
# (data holding "old", log and torn empty), taken as the snapshot first
selftest() {
    ROOT=$TEST_TMP/root LOG=$TEST_TMP/log.bin MARK=$TEST_TMP/mark
    mkdir -p "$ROOT"
    printf 'old\n' > "$ROOT/data"
    : > "$ROOT/log"
    : > "$ROOT/torn"
    $PC snapshot "$ROOT" "$TEST_TMP/snap" || fail "snapshot failed"
    shimmed "$PCUT/pcut-selftest" "$1" "$ROOT" "$MARK" 2> "$TEST_TMP/selftest.err"
    assertEquals "pcut-selftest $1 exits 0 under the shim: $(cat "$TEST_TMP/selftest.err")" 0 $?
    assertEquals "it acknowledged once" ack "$(cat "$MARK")"
}

# explore CHECK [ARGS...]: every state after the mark "ack" (EXPLORE_AFTER
# names another mark; with EXPLORE_ALL=1 every state of the run), CHECK a
# sh script run with the state's directory as $0; sets EXPLORE_RC,
# VIOLATIONS and DISTINCT (states checked)
explore() {
    _check=$1
    shift
    [ "${EXPLORE_ALL:-0}" = 1 ] || set -- --after-mark "${EXPLORE_AFTER:-ack}" "$@"
    $PC explore "$LOG" "$TEST_TMP/snap" "$@" -- sh -c "$_check" \
        > "$TEST_TMP/explore.out" 2> "$TEST_TMP/explore.err"
    EXPLORE_RC=$?
    _sum=$(tail -n 1 "$TEST_TMP/explore.out")
    VIOLATIONS=$(echo "$_sum" | sed -n 's/.*, violations \([0-9]*\)$/\1/p')
    DISTINCT=$(echo "$_sum" | sed -n 's/.*, distinct \([0-9]*\), .*/\1/p')
    [ -n "$VIOLATIONS" ] && [ -n "$DISTINCT" ] ||
        fail "explore gave no summary: $(cat "$TEST_TMP/explore.out" "$TEST_TMP/explore.err")"
    echo "  $(echo "$_sum" | sed -n 's/^cuts \([0-9]*\), .*/\1/p') cut points, $DISTINCT disk states, $VIOLATIONS violations"
}

NEW_DATA='grep -qx "new content" "$0/data"'
RECORD='grep -qx "record 1" "$0/log"'

test_a_rename_without_a_directory_sync_is_caught() {
    selftest rename-nodirsync
    assertEquals "the program itself worked" "new content" "$(cat "$ROOT/data")"
    explore "$NEW_DATA"
    assertEquals "explore exits 1: $(cat "$TEST_TMP/explore.out")" 1 "$EXPLORE_RC"
    assertTrue "a state without the acknowledged data: $(cat "$TEST_TMP/explore.out")" \
        "[ ${VIOLATIONS:-0} -ge 1 ]"
    assert_grep "$TEST_TMP/explore.out" "^violation: cut [0-9]+ \(after record [0-9]+ pid [0-9]+ mark 'ack" \
        "the cut right after the acknowledgement is one"
}

test_a_rename_and_a_directory_sync_before_the_ack_pass() {
    selftest rename-dirsync
    explore "$NEW_DATA"
    assertEquals "explore exits 0: $(cat "$TEST_TMP/explore.out")" 0 "$EXPLORE_RC"
    assertEquals "no violation" 0 "$VIOLATIONS"
    # the unsynced work after the acknowledgement varies the states: the
    # check saw more than one
    assertTrue "distinct states checked: $DISTINCT" "[ ${DISTINCT:-0} -ge 3 ]"
}

test_an_ack_before_fdatasync_is_caught() {
    selftest ack-before-sync
    explore "$RECORD"
    assertEquals "explore exits 1: $(cat "$TEST_TMP/explore.out")" 1 "$EXPLORE_RC"
    assertTrue "a state without the record" "[ ${VIOLATIONS:-0} -ge 1 ]"
}

test_fdatasync_then_ack_passes() {
    selftest sync-then-ack
    explore "$RECORD"
    assertEquals "explore exits 0: $(cat "$TEST_TMP/explore.out")" 0 "$EXPLORE_RC"
    assertEquals "no violation" 0 "$VIOLATIONS"
    assertTrue "distinct states checked: $DISTINCT" "[ ${DISTINCT:-0} -ge 3 ]"
}

# the state at the end has the record whatever the mode, and with the
# cut before the sync, the drop mode has none: the sync is what keeps it
test_a_cut_before_the_sync_loses_the_record_and_after_it_keeps_it() {
    selftest sync-then-ack
    $PC dump "$LOG" > "$TEST_TMP/dump.txt"
    _sync=$(grep -m 1 ' fsync log ' "$TEST_TMP/dump.txt" | cut -d ' ' -f 1)
    assertNotNull "the fdatasync is logged: $(cat "$TEST_TMP/dump.txt")" "$_sync"
    $PC state "$LOG" "$TEST_TMP/snap" "$_sync" "$TEST_TMP/before" --mode drop
    assertEquals "dropped before the sync" "" "$(cat "$TEST_TMP/before/log")"
    $PC state "$LOG" "$TEST_TMP/snap" "$_sync" "$TEST_TMP/kept" --mode keep
    assertEquals "kept before the sync" "record 1" "$(cat "$TEST_TMP/kept/log")"
    $PC state "$LOG" "$TEST_TMP/snap" $((_sync + 1)) "$TEST_TMP/after" --mode drop
    assertEquals "durable after it" "record 1" "$(cat "$TEST_TMP/after/log")"
}

test_an_unsynced_write_is_kept_dropped_or_torn_at_sector_boundaries() {
    selftest torn
    $PC state "$LOG" "$TEST_TMP/snap" end "$TEST_TMP/s" --mode drop
    assertEquals "all dropped" 0 "$(wc -c < "$TEST_TMP/s/torn")"
    $PC state "$LOG" "$TEST_TMP/snap" end "$TEST_TMP/s" --mode keep
    assertEquals "all kept" 1536 "$(wc -c < "$TEST_TMP/s/torn")"
    : > "$TEST_TMP/sizes"
    for _seed in $(seq 1 30); do
        $PC state "$LOG" "$TEST_TMP/snap" end "$TEST_TMP/s" --seed "$_seed"
        wc -c < "$TEST_TMP/s/torn" >> "$TEST_TMP/sizes"
        [ -z "$(tr -d x < "$TEST_TMP/s/torn")" ] || fail "seed $_seed: bytes never written"
    done
    _sizes=$(sort -n -u "$TEST_TMP/sizes" | tr '\n' ' ')
    assertEquals "whole, none, or whole sectors" "0 512 1024 1536 " "$_sizes"
}

# a write the shim cannot see (stdio writes inside libc) is not silently
# missing from the states: the sync of that file says so
test_a_write_past_the_shim_is_reported() {
    selftest stdio
    assertEquals "the program wrote it" "through stdio" "$(cat "$ROOT/stdio")"
    $PC dump "$LOG" > "$TEST_TMP/dump.txt"
    assert_grep "$TEST_TMP/dump.txt" ' create stdio$' "fopen's creation is logged"
    $PC state "$LOG" "$TEST_TMP/snap" end "$TEST_TMP/s" --mode keep 2> "$TEST_TMP/state.err"
    assert_grep "$TEST_TMP/state.err" \
        'warning: record [0-9]+: stdio has 14 bytes, the log accounts for 0: it was written in a way the shim does not see'
}

test_the_log_holds_every_write_of_concurrent_processes_and_threads() {
    ROOT=$TEST_TMP/root LOG=$TEST_TMP/log.bin MARK=$TEST_TMP/mark
    mkdir -p "$ROOT"
    $PC snapshot "$ROOT" "$TEST_TMP/snap"
    shimmed "$PCUT/pcut-selftest" hammer "$ROOT" 300 &
    _p1=$!
    shimmed "$PCUT/pcut-selftest" hammer "$ROOT" 300 &
    _p2=$!
    wait "$_p1"
    assertEquals "first writer" 0 $?
    wait "$_p2"
    assertEquals "second writer" 0 $?
    $PC dump "$LOG" > "$TEST_TMP/dump.txt" 2> "$TEST_TMP/dump.err"
    assertEquals "the log reads whole: $(cat "$TEST_TMP/dump.err")" 0 $?
    assertEquals "writes: 2 processes, 2 threads, 300 each" 1200 "$(grep -c ' write ' "$TEST_TMP/dump.txt")"
    assertEquals "syncs" 120 "$(grep -c ' fsync ' "$TEST_TMP/dump.txt")"
    assertEquals "files created" 4 "$(grep -c ' create ' "$TEST_TMP/dump.txt")"
    # all kept at the end: what the programs left, byte for byte
    $PC state "$LOG" "$TEST_TMP/snap" end "$TEST_TMP/s" --mode keep
    _diff=$(diff -r "$ROOT" "$TEST_TMP/s" 2>&1)
    assertEquals "the replay of everything is the directory" "" "$_diff"
}

# ---- a real pipeline -----------------------------------------------------

# pipeline_under_shim SYNC N: N events sent by ctxvault-ingest (client)
# through encrypt and store --serve, every program under the shim, with
# [store] synchronous = SYNC; the acknowledgement marked once ingest
# exited 0 (every event committed); then the services are stopped
pipeline_under_shim() {
    data_clock
    conf_set synchronous "$1"
    gen "$TEST_TMP/in.ndjson" -n "$2"
    ROOT=$HOME_DIR LOG=$TEST_TMP/log.bin MARK=$TEST_TMP/mark
    $PC snapshot "$ROOT" "$TEST_TMP/snap" || fail "snapshot failed"
    POWERCUT_ROOT=$ROOT POWERCUT_LOG=$LOG LD_PRELOAD=$PCUT/shim.so
    export POWERCUT_ROOT POWERCUT_LOG LD_PRELOAD
    services_start
    ctxvault-ingest --timeout 60 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    _rc=$?
    unset POWERCUT_ROOT POWERCUT_LOG LD_PRELOAD
    assert_status ingest 0 "$_rc"
    $PC mark "$LOG" ack
    kill -TERM "$STORE_PID" "$ENCRYPT_PID"
    wait "$STORE_PID" "$ENCRYPT_PID"
    assertEquals "stored" "$2" "$(sql 'SELECT COUNT(*) FROM events')"
}

# a state holds at least N events (its count appended to $TEST_TMP/counts)
rows_check() {
    echo "n=\$(sqlite3 \"\$0/data/ctxvault.db\" 'SELECT COUNT(*) FROM events' 2>&1)
echo \"\$n\" >> '$TEST_TMP/counts'
[ \"\$n\" -ge $1 ] 2> /dev/null"
}

test_no_acknowledged_event_is_lost_at_any_power_cut_under_synchronous_full() {
    pipeline_under_shim full 40
    $PC state "$LOG" "$TEST_TMP/snap" end "$TEST_TMP/s" --mode keep
    assertEquals "the replay of everything holds every event" 40 \
        "$(sqlite3 "$TEST_TMP/s/data/ctxvault.db" 'SELECT COUNT(*) FROM events')"
    explore "$(rows_check 40)" --cuts sync --random 3
    assertEquals "explore exits 0: $(head -c 1500 "$TEST_TMP/explore.out")" 0 "$EXPLORE_RC"
    assertEquals "no state lacks an acknowledged event" 0 "$VIOLATIONS"
    assertTrue "states checked: $DISTINCT" "[ ${DISTINCT:-0} -ge 10 ]"
    # every file the pipeline synced has the size its logged writes make:
    # nothing reached the disk past the shim (stdio, mmap)
    assertEquals "no warning from the replay" "" "$(cat "$TEST_TMP/explore.err")"
    rm -rf "$TEST_TMP/snap" "$TEST_TMP/s" "$LOG" # key material
}

test_the_window_of_synchronous_normal_is_found() {
    pipeline_under_shim normal 40
    explore "$(rows_check 40)" --cuts sync --random 3
    assertEquals "explore exits 1: $(head -c 1500 "$TEST_TMP/explore.out")" 1 "$EXPLORE_RC"
    # a cut right after the acknowledgement, the WAL unsynced: the
    # database has none of the batch (DURABILITY.md, "The window")
    assert_grep "$TEST_TMP/explore.out" "^violation: cut [0-9]+ \(after record [0-9]+ pid [0-9]+ mark 'ack'\), mode drop"
    assertTrue "a state holds none of them: $(sort "$TEST_TMP/counts" | uniq -c)" \
        "grep -q -x 0 '$TEST_TMP/counts'"
    rm -rf "$TEST_TMP/snap" "$LOG"
}

# ---- the default: every acknowledgement, every cut ------------------------

# numbered FILE FIRST N [USERS]: N generated events (of USERS users) with
# the ids pc-FIRST onwards (zero-padded, so a check can tell which were
# acknowledged by their id)
numbered() {
    "$GEN" --no-id -n "$3" -s "$2" ${4:+-u "$4"} | awk -v f="$2" \
        '{ printf "{\"id\":\"pc-%05d\",%s\n", f + NR - 1, substr($0, 2) }' > "$1"
}

# rounds_under_shim ROUNDS N: with the instance's [store] synchronous as
# it is, ROUNDS runs of ctxvault-ingest FILE (client) of N new events
# each through encrypt and store --serve, every program under the shim;
# after each run's exit 0 (every event of it committed and acknowledged)
# the log is marked "acked K", K the events acknowledged so far
rounds_under_shim() {
    data_clock
    ROOT=$HOME_DIR LOG=$TEST_TMP/log.bin MARK=$TEST_TMP/mark
    _i=0
    while [ "$_i" -lt "$1" ]; do
        numbered "$TEST_TMP/in$_i.ndjson" $((_i * $2 + 1)) "$2"
        _i=$((_i + 1))
    done
    $PC snapshot "$ROOT" "$TEST_TMP/snap" || fail "snapshot failed"
    POWERCUT_ROOT=$ROOT POWERCUT_LOG=$LOG LD_PRELOAD=$PCUT/shim.so
    export POWERCUT_ROOT POWERCUT_LOG LD_PRELOAD
    services_start
    _i=0
    while [ "$_i" -lt "$1" ]; do
        ctxvault-ingest --timeout 60 "$TEST_TMP/in$_i.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
        _rc=$?
        assert_status ingest 0 "$_rc"
        _i=$((_i + 1))
        $PC mark "$LOG" "acked $((_i * $2))"
    done
    kill -TERM "$STORE_PID" "$ENCRYPT_PID"
    wait "$STORE_PID" "$ENCRYPT_PID"
    unset POWERCUT_ROOT POWERCUT_LOG LD_PRELOAD
    assertEquals "stored" "$(($1 * $2))" "$(sql 'SELECT COUNT(*) FROM events')"
}

# recovered_check TOTAL: a state restarted as after a power cut (store
# opens it: SQLite's WAL recovery, then the journal's batches the
# database lacks) holds every event acknowledged before the cut
# (POWERCUT_LAST_MARK "acked K": ids pc-00001 to K), each once, nothing
# but the TOTAL sent, and the data key of every field sealed in them;
# "CUT K present|rows|distinct|keys-missing" goes to $TEST_TMP/counts
recovered_check() {
    cat > "$TEST_TMP/recovered.sh" << EOF
state=\$1
acked=\${POWERCUT_LAST_MARK#acked }
acked=\${acked:-0}
CTXVAULT_HOME=\$state ctxvault-store < /dev/null 2>> '$TEST_TMP/recover.err' || {
    echo "\$POWERCUT_CUT \$acked store refused the state" >> '$TEST_TMP/counts'
    exit 1
}
c=\$(sqlite3 "\$state/data/ctxvault.db" "ATTACH '\$state/keys/datakeys.db' AS dk;
WITH acked AS (SELECT id, body FROM events WHERE CAST(substr(id, 4) AS INTEGER) <= \$acked),
env(rest, kid) AS (SELECT body, NULL FROM acked UNION ALL
    SELECT substr(rest, instr(rest, '\"enc:d') + 6),
           substr(rest, instr(rest, '\"enc:d') + 6, 16)
    FROM env WHERE instr(rest, '\"enc:d') > 0)
SELECT (SELECT COUNT(*) FROM acked), (SELECT COUNT(*) FROM events),
       (SELECT COUNT(DISTINCT id) FROM events),
       (SELECT COUNT(*) FROM env WHERE kid IS NOT NULL AND kid NOT IN (SELECT id FROM dk.keys))" 2>&1)
echo "\$POWERCUT_CUT \$acked \$c" >> '$TEST_TMP/counts'
set -- \$(echo "\$c" | tr '|' ' ')
[ "\$1" = "\$acked" ] && [ "\$2" = "\$3" ] && [ "\$2" -le $1 ] && [ "\$4" = 0 ]
EOF
    echo "sh '$TEST_TMP/recovered.sh' \"\$0\""
}

# The default, [store] synchronous = journal: the journal's record synced
# before COMMIT, the WAL not. Every cut of a run of three acknowledged
# rounds, from before store starts to after it stops, in every mode.
test_the_default_loses_no_acknowledged_event_at_any_cut() {
    assert_grep "$HOME_DIR/ctxvault.conf" '^synchronous += journal ' "journal is the default"
    rounds_under_shim 3 10
    EXPLORE_ALL=1 explore "$(recovered_check 30)" --cuts all --random 1
    assertEquals "explore exits 0: $(head -c 1500 "$TEST_TMP/explore.out") $(tail -n 5 "$TEST_TMP/recover.err")" \
        0 "$EXPLORE_RC"
    assertEquals "no state lacks an acknowledged event" 0 "$VIOLATIONS"
    # the states span the run: before the first acknowledgement, after
    # the last, and at least one recovery replayed the journal
    assertTrue "a state before any acknowledgement" "grep -q '^[0-9]* 0 ' '$TEST_TMP/counts'"
    assertTrue "a state after all of them" "grep -q '^[0-9]* 30 30|30|30|0$' '$TEST_TMP/counts'"
    assert_grep "$TEST_TMP/recover.err" 'replayed [0-9]+ batches' "a state needed the journal"
    assertTrue "states checked: $DISTINCT" "[ ${DISTINCT:-0} -ge 50 ]"
    assertEquals "no warning from the replay" "" "$(cat "$TEST_TMP/explore.err")"
    rm -rf "$TEST_TMP/snap" "$LOG"
}

# The same run under normal: a cut after an acknowledgement loses it
# (the journal's record and the WAL both unsynced), so the check can fail
test_the_same_run_under_synchronous_normal_loses_acknowledged_events() {
    conf_set synchronous normal
    rounds_under_shim 3 10
    EXPLORE_ALL=1 explore "$(recovered_check 30)" --cuts sync --random 1
    assertEquals "explore exits 1: $(head -c 1500 "$TEST_TMP/explore.out")" 1 "$EXPLORE_RC"
    assertTrue "a state lacks acknowledged events: $(head -c 1500 "$TEST_TMP/counts")" \
        "awk -F '[ |]' '\$2 > 0 && \$3 < \$2 { bad = 1 } END { exit !bad }' '$TEST_TMP/counts'"
    rm -rf "$TEST_TMP/snap" "$LOG"
}

# erased_check USER-ID KIDS N CONTEXTS: a restarted state (as
# recovered_check) that the erasure reached before the cut
# (POWERCUT_LAST_MARK "erased", or "saved" after it) holds no row of the
# stored USER-ID and none of the data keys KIDS (its rows' keys,
# space-separated); after "saved", CONTEXTS rows of kind context (the
# saved one among them); before the erasure's reply, every acknowledged
# event is there, the user's N rows all there or (the erasure under way)
# none
erased_check() {
    cat > "$TEST_TMP/erased.sh" << EOF
state=\$1
CTXVAULT_HOME=\$state ctxvault-store < /dev/null 2>> '$TEST_TMP/recover.err' || exit 1
db=\$state/data/ctxvault.db
rows=\$(sqlite3 "\$db" "SELECT COUNT(*) FROM events_v WHERE user_id = '$1'")
keys=\$(sqlite3 "\$state/keys/datakeys.db" "SELECT COUNT(*) FROM keys WHERE id IN ('\$(echo $2 | sed "s/ /','/g")')")
all=\$(sqlite3 "\$db" "SELECT COUNT(*) FROM events")
ctx=\$(sqlite3 "\$db" "SELECT COUNT(*) FROM events WHERE kind = 'context'")
echo "\$POWERCUT_CUT \$POWERCUT_LAST_MARK \$rows \$keys \$all \$ctx" >> '$TEST_TMP/counts'
case \$POWERCUT_LAST_MARK in
erased) [ "\$rows" = 0 ] && [ "\$keys" = 0 ] ;;
saved) [ "\$rows" = 0 ] && [ "\$keys" = 0 ] && [ "\$ctx" = $4 ] ;;
"acked 10") { [ "\$rows" = $3 ] && [ "\$all" = 10 ]; } || { [ "\$rows" = 0 ] && [ "\$all" = $((10 - $3)) ]; } ;;
*) true ;;
esac
EOF
    echo "sh '$TEST_TMP/erased.sh' \"\$0\""
}

# An erasure through the running store (ctxvault delete --user) that
# replied ok stays done at every cut after it: the rows' deletion is
# journaled and synced before the reply, the user's data key destroyed
# (keys/datakeys.db, synchronous = FULL) before that; a restart replays
# the erasure if the WAL lost it and brings back nothing. A context saved
# after it (context.save, a control-API write) is there once it replied.
test_an_erasure_and_a_context_save_that_replied_ok_survive_any_cut() {
    data_clock
    ROOT=$HOME_DIR LOG=$TEST_TMP/log.bin
    numbered "$TEST_TMP/in.ndjson" 1 10 3
    _user=$(head -n 1 "$TEST_TMP/in.ndjson" | json_get '$.user_id')
    $PC snapshot "$ROOT" "$TEST_TMP/snap" || fail "snapshot failed"
    POWERCUT_ROOT=$ROOT POWERCUT_LOG=$LOG LD_PRELOAD=$PCUT/shim.so
    export POWERCUT_ROOT POWERCUT_LOG LD_PRELOAD
    services_start
    ctxvault-ingest --timeout 60 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    $PC mark "$LOG" "acked 10"
    # the stored id and the data keys of the user's rows, read beside the
    # run (not logged: a reader writes nothing durable)
    _stored=$(env -u LD_PRELOAD ctxvault query --user "$_user" --limit 1 | json_get '$.user_id')
    _kids=$(env -u LD_PRELOAD sqlite3 -readonly "$DB" "SELECT body FROM events_v WHERE user_id = '$_stored'" |
        grep -o '"enc:d[^:]*' | cut -c7- | sort -u | tr '\n' ' ')
    assertNotNull "the user has sealed fields: $_stored" "$_kids"
    _n=$(env -u LD_PRELOAD sqlite3 -readonly "$DB" "SELECT COUNT(*) FROM events_v WHERE user_id = '$_stored'")
    ctxvault delete --user "$_user" > /dev/null 2> "$TEST_TMP/delete.err"
    assert_status delete 0 $?
    $PC mark "$LOG" erased
    _ctx=$(env -u LD_PRELOAD sqlite3 -readonly "$DB" "SELECT COUNT(*) FROM events WHERE kind = 'context'")
    echo '{"note":"saved before the cut"}' |
        ctxvault context save --user pc-saver --name app > /dev/null 2> "$TEST_TMP/save.err"
    assert_status save 0 $?
    $PC mark "$LOG" saved
    kill -TERM "$STORE_PID" "$ENCRYPT_PID"
    wait "$STORE_PID" "$ENCRYPT_PID"
    unset POWERCUT_ROOT POWERCUT_LOG LD_PRELOAD
    assertEquals "erased in the run" 0 "$(sql "SELECT COUNT(*) FROM events_v WHERE user_id = '$_stored'")"
    # the cuts before are the first test's
    EXPLORE_AFTER="acked 10" explore "$(erased_check "$_stored" "$_kids" "$_n" $((_ctx + 1)))" --cuts all --random 1
    assertEquals "explore exits 0: $(head -c 1500 "$TEST_TMP/explore.out") $(tail -n 5 "$TEST_TMP/recover.err")" \
        0 "$EXPLORE_RC"
    assertTrue "states after the erasure were checked" "grep -q '^[0-9]* erased 0 0 ' '$TEST_TMP/counts'"
    assertTrue "and after the save" "grep -q '^[0-9]* saved 0 0 [0-9]* $((_ctx + 1))$' '$TEST_TMP/counts'"
    assertTrue "and states before its reply, with the user's rows" \
        "grep -q '^[0-9]* acked 10 $_n [1-9][0-9]* 10 ' '$TEST_TMP/counts'"
    rm -rf "$TEST_TMP/snap" "$LOG"
}

. shunit2
