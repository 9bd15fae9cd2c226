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

# store_up_again ERRFILE: ctxvault-store --serve once more, after a kill -9
# (whose control socket file stays behind); waits until it is ready
store_up_again() {
    : > "$1"
    ctxvault-store --serve 2> "$1" &
    STORE_PID=$!
    bg_track "$STORE_PID"
    wait_until 10 grep -q 'ready in' "$1" ||
        fail "store did not get ready again: $(cat "$1")"
}

# store_killed_with_wal: the services up, 300 events acknowledged (their
# commits in the WAL), then kill -9 of store
store_killed_with_wal() {
    gen "$TEST_TMP/more.ndjson" -n 300 -s 56 -u 20
    services_start
    ctxvault-ingest --timeout 30 "$TEST_TMP/more.ndjson" > /dev/null 2> "$TEST_TMP/client.err"
    assert_status client 0 $?
    kill -9 "$STORE_PID"
    wait "$STORE_PID" 2> /dev/null
    assertTrue "kill -9 of store should leave committed frames in the WAL" "[ -s '$DB-wal' ]"
}

test_store_killed_with_sigkill_acknowledges_at_once_while_the_checksum_pass_runs() {
    gen "$TEST_TMP/in.ndjson" -n 5000 -s 55 -u 100
    pipeline "$TEST_TMP/in.ndjson"
    assert_status store 0 "$STATUS_STORE"
    # 5,300 rows at 500 a second: the pass takes ten seconds
    conf_set checksum_rate 500
    store_killed_with_wal
    store_up_again "$TEST_TMP/store2.err"
    event 1 user-after-restart > "$TEST_TMP/one.ndjson"
    ctxvault-ingest --timeout 10 "$TEST_TMP/one.ndjson" > /dev/null 2> "$TEST_TMP/client.err"
    assert_status client 0 $?
    api '{"op":"ping"}'
    assertEquals "the pass still runs after the acknowledgement" running "$(reply '$.checksums')"
    assertEquals "the event is stored" 1 \
        "$(sql "SELECT count(*) FROM events_v WHERE kind = 'interaction' AND seq > 5300")"
    kill -TERM "$STORE_PID"
    wait "$STORE_PID"
    assert_status store2 0 $?
    assert_no_grep "$TEST_TMP/store2.err" 'checksum pass .* rows pass' \
        "the pass should have been stopped, not finished"
}

test_a_clean_database_passes_the_background_checksum_pass() {
    gen "$TEST_TMP/in.ndjson" -n 500 -s 57 -u 20
    pipeline "$TEST_TMP/in.ndjson"
    store_killed_with_wal
    store_up_again "$TEST_TMP/store2.err"
    wait_until 10 grep -q 'checksum pass of .*: all 800 rows pass' "$TEST_TMP/store2.err" ||
        fail "the pass did not check the 800 rows: $(cat "$TEST_TMP/store2.err")"
    api '{"op":"ping"}'
    assertEquals "ping's checksums" ok "$(reply '$.checksums')"
}

test_check_checksums_no_runs_no_pass() {
    conf_set check_checksums no
    gen "$TEST_TMP/in.ndjson" -n 100 -s 58 -u 5
    pipeline "$TEST_TMP/in.ndjson"
    sql "UPDATE events SET body = replace(body, 'e', 'E') WHERE seq = 3"
    services_start
    event 2 user-x > "$TEST_TMP/one.ndjson"
    ctxvault-ingest --timeout 10 "$TEST_TMP/one.ndjson" > /dev/null 2> "$TEST_TMP/client.err"
    assert_status client 0 $?
    api '{"op":"ping"}'
    assertEquals "ping's checksums" off "$(reply '$.checksums')"
    kill -TERM "$STORE_PID"
    wait "$STORE_PID"
    assert_no_grep "$TEST_TMP/store.err" 'checksum' "no pass ran"
}

test_recovery_metrics_count_the_wal_transactions_replayed_and_every_checkpoint() {
    metrics_start --expect "ctxvault-store"
    store_killed_with_wal
    store_up_again "$TEST_TMP/store2.err"
    # the restarted store's report
    wait_until 5 sh -c "curl -s '$URL/metrics' | grep -q '^ctxvault_recovery_attempts_total{.*} 1'" ||
        fail "the restarted store never reported its recovery: $(curl -s "$URL/metrics" | grep recovery)"
    replayed=$(sample ctxvault_recovery_transactions_replayed 'program="ctxvault-store"')
    assertTrue "WAL transactions replayed ($replayed) should be > 0" "[ ${replayed%.*} -gt 0 ]"
    assertEquals "the checkpoint at open is counted" 1 \
        "$(sample ctxvault_wal_checkpoints_total 'program="ctxvault-store"')"
    assertEquals "and timed" 1 \
        "$(sample ctxvault_wal_checkpoint_duration_seconds_count 'program="ctxvault-store"')"
    kill -TERM "$STORE_PID"
    wait "$STORE_PID"
    wait_until 5 sh -c "curl -s '$URL/health' | grep -q 'ctxvault-store has stopped'" ||
        fail "the final report never came: $(curl -s "$URL/health")"
    assertEquals "the checkpoint at close is counted" 2 \
        "$(sample ctxvault_wal_checkpoints_total 'program="ctxvault-store"')"
    assertEquals "and timed" 2 \
        "$(sample ctxvault_wal_checkpoint_duration_seconds_count 'program="ctxvault-store"')"
    assertFalse "the close's checkpoint emptied the WAL" "[ -s '$DB-wal' ]"
    # a clean stop leaves nothing to replay
    store_up_again "$TEST_TMP/store3.err"
    wait_until 5 sh -c "curl -s '$URL/metrics' | grep -q '^ctxvault_recovery_transactions_replayed{.*} 0'" ||
        fail "after a clean stop, nothing should be replayed: $(curl -s "$URL/metrics" | grep replayed)"
}

. shunit2
