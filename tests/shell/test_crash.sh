#!/bin/sh
# test_crash.sh - kill -9 at any moment loses nothing that is replayed and
# stores nothing twice; store recovers a WAL left behind and says so.
SUITE=crash
. "$CV_TOP/tests/shell/lib.sh"

# start_pipeline_bg FILE: ingest | encrypt | store in the background, each
# stage writing its pid to $TEST_TMP/pid.STAGE; waits until all three started
start_pipeline_bg() {
    rm -f "$TEST_TMP"/pid.*
    (
        sh -c 'echo $$ > "$1/pid.ingest"; exec ctxvault-ingest --stdout "$2"' sh "$TEST_TMP" "$1" 2> "$TEST_TMP/bg.ingest.err" |
            sh -c 'echo $$ > "$1/pid.encrypt"; exec ctxvault-encrypt' sh "$TEST_TMP" 2> "$TEST_TMP/bg.encrypt.err" |
            sh -c 'echo $$ > "$1/pid.store"; exec ctxvault-store' sh "$TEST_TMP" 2> "$TEST_TMP/bg.store.err"
    ) 2> /dev/null &
    PIPE_PID=$!
    bg_track "$PIPE_PID"
    wait_until 10 test -s "$TEST_TMP/pid.store" -a -s "$TEST_TMP/pid.encrypt" -a -s "$TEST_TMP/pid.ingest" ||
        fail "the background pipeline did not start"
}

# kill9_then_rerun STAGE: the kill -9 test for one stage of the pipeline
kill9_then_rerun() {
    gen "$TEST_TMP/in.ndjson" -n 20000 -s 51 -u 200
    start_pipeline_bg "$TEST_TMP/in.ndjson"
    sleep 0.3
    kill -9 "$(cat "$TEST_TMP/pid.$1")"
    wait "$PIPE_PID" 2> /dev/null
    # look for a WAL before any other connection opens the database
    [ -s "$DB-wal" ] && wal=yes || wal=no
    # (counted through ctxvault's read-only connection, which leaves the WAL)
    before=$(ctxvault stats 2> /dev/null | json_get '$.events')
    echo "  (kill -9 of $1 after 0.3 s: ${before:-?} of 20000 rows committed, WAL left: $wal)"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status encrypt 0 "$STATUS_ENCRYPT"
    assert_status store 0 "$STATUS_STORE"
    if [ "$wal" = yes ]; then
        assert_grep "$TEST_TMP/store.err" 'recover' \
            "the rerun found a WAL: store should report a recovery"
    fi
    assertEquals "rows after the rerun" 20000 "$(rows)"
    assertEquals "distinct ids after the rerun" 20000 "$(distinct_ids)"
    ctxvault verify > "$TEST_TMP/verify.out" 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

test_kill_9_of_store_mid_stream_then_rerun_stores_each_event_once() {
    kill9_then_rerun store
}

test_kill_9_of_encrypt_mid_stream_then_rerun_stores_each_event_once() {
    kill9_then_rerun encrypt
}

test_store_reports_recovery_of_a_wal_left_by_kill_9() {
    gen "$TEST_TMP/in.ndjson" -n 3000 -s 52 -u 50
    protect "$TEST_TMP/in.ndjson" "$TEST_TMP/enc.ndjson"
    head -n 1500 "$TEST_TMP/enc.ndjson" > "$TEST_TMP/first.ndjson"
    store_start
    store_feed "$TEST_TMP/first.ndjson"
    wait_until 30 rows_at_least 1500 || fail "the store did not commit the first half"
    kill -9 "$STORE_PID"
    store_wait
    exec 8>&-
    assertTrue "kill -9 of a writer in WAL mode should leave a non-empty -wal file" "[ -s '$DB-wal' ]"
    ctxvault-store < "$TEST_TMP/enc.ndjson" 2> "$TEST_TMP/store.err"
    assert_status store 0 $?
    assert_grep "$TEST_TMP/store.err" 'recover' "store should report the recovery of the WAL"
    assertEquals "rows" 3000 "$(rows)"
    assertEquals "distinct ids" 3000 "$(distinct_ids)"
    assertFalse "a clean stop leaves no WAL" "[ -s '$DB-wal' ]"
}

test_clean_start_reports_no_recovery() {
    gen "$TEST_TMP/in.ndjson" -n 100 -s 53 -u 5
    protect "$TEST_TMP/in.ndjson" "$TEST_TMP/enc.ndjson"
    ctxvault-store < "$TEST_TMP/enc.ndjson" 2> /dev/null
    assertFalse "no WAL after a clean stop" "[ -e '$DB-wal' ]"
    ctxvault-store < "$TEST_TMP/enc.ndjson" 2> "$TEST_TMP/store.err"
    assert_status store 0 $?
    assert_no_grep "$TEST_TMP/store.err" 'recover' "no recovery after a clean stop"
}

test_readers_after_a_clean_stop_do_not_make_store_report_a_recovery() {
    gen "$TEST_TMP/in.ndjson" -n 100 -s 53 -u 5
    protect "$TEST_TMP/in.ndjson" "$TEST_TMP/enc.ndjson"
    ctxvault-store < "$TEST_TMP/enc.ndjson" 2> /dev/null
    # read-only connections, as the operator's command uses
    ctxvault stats > /dev/null 2>&1
    ctxvault query --user user-00001 --limit 1 > /dev/null 2>&1
    ctxvault-store < "$TEST_TMP/enc.ndjson" 2> "$TEST_TMP/store.err"
    assert_status store 0 $?
    assert_no_grep "$TEST_TMP/store.err" 'recover' \
        "nothing was left to recover after a clean stop and some reads"
}

test_kill_9_during_a_commit_leaves_a_database_that_verifies() {
    # a batch per event: the kill lands in or between commits
    conf_set batch_size 1
    gen "$TEST_TMP/in.ndjson" -n 3000 -s 54 -u 50
    protect "$TEST_TMP/in.ndjson" "$TEST_TMP/enc.ndjson"
    store_start
    store_feed "$TEST_TMP/enc.ndjson" &
    feeder=$!
    wait_until 30 rows_at_least 200 || fail "the store did not commit"
    kill -9 "$STORE_PID"
    store_wait
    wait "$feeder" 2> /dev/null
    exec 8>&-
    ctxvault verify > "$TEST_TMP/verify.out" 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    ctxvault-store < "$TEST_TMP/enc.ndjson" 2> "$TEST_TMP/store.err"
    assert_status store 0 $?
    assertEquals "rows after the rerun" 3000 "$(rows)"
    assertEquals "distinct ids" 3000 "$(distinct_ids)"
}

. shunit2
