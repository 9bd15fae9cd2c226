#!/bin/sh
# test_sockets.sh - encrypt --serve and store --serve on sockets: events
# sent per lib/net/wire.h are protected, committed, and acknowledged after
# COMMIT; duplicates are acknowledged, not stored twice; rejections are
# NAKed; the control socket answers; SIGTERM drains; CURVE over tcp keeps
# out a client whose key the servers do not know.
SUITE=sockets
. "$CV_TOP/tests/shell/lib.sh"

CVSEND=$CV_BUILD/cvsend

# stop PID: SIGTERM, wait; its exit status in STOPPED
stop() {
    kill -TERM "$1"
    wait "$1" 2> /dev/null
    STOPPED=$?
}

# events FILE N SEED: N generated events with their ids (ingest --stdout)
events() {
    gen "$TEST_TMP/raw.ndjson" -n "$2" -s "$3" -u 20
    ctxvault-ingest --stdout "$TEST_TMP/raw.ndjson" > "$1" 2> /dev/null ||
        fail "ingest --stdout failed"
}

# send FILE [ARGS...]: cvsend; its summary in SENT, its status in STATUS_SEND
send() {
    _f=$1
    shift
    SENT=$("$CVSEND" --timeout 20 --resend 1000 "$@" "$_f" 2> "$TEST_TMP/cvsend.err")
    STATUS_SEND=$?
}

# field NAME: a count from cvsend's summary
field() {
    echo "$SENT" | sed -n "s/.*$1 \([0-9]*\).*/\1/p"
}

test_events_are_protected_stored_and_acknowledged() {
    events "$TEST_TMP/in.ndjson" 3000 61
    services_start
    send "$TEST_TMP/in.ndjson"
    assertEquals "cvsend status ($SENT)" 0 "$STATUS_SEND"
    assertEquals "acks" 3000 "$(field acked)"
    assertEquals "rows" 3000 "$(rows)"
    assertEquals "distinct ids" 3000 "$(distinct_ids)"
    # protected as the filter protects: no email in clear
    assertEquals "clear emails stored" 0 "$(rows "body LIKE '%@example.org%'")"
    stop "$STORE_PID"
    assertEquals "store exit status" 0 "$STOPPED"
    stop "$ENCRYPT_PID"
    assertEquals "encrypt exit status" 0 "$STOPPED"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

test_the_spool_is_sealed_and_still_replays() {
    gen "$TEST_TMP/in.ndjson" -n 500 -s 62 -u 20
    # nothing downstream: the client spools, waits, times out (75)
    ctxvault-ingest --source sealed --timeout 2 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/client.err"
    assert_status client 75 $?
    cat "$HOME_DIR"/spool/sealed/* > "$TEST_TMP/spool.bytes"
    assertTrue "the spool holds the events" "[ $(stat -c %s "$TEST_TMP/spool.bytes") -gt 100000 ]"
    assert_no_grep "$TEST_TMP/spool.bytes" '@example\.org|user-000|"kind"|192\.0\.2\.' \
        "the spool should hold no event in clear"
    # the next run with that source sends what the spool holds
    services_start
    : > "$TEST_TMP/none.ndjson"
    ctxvault-ingest --source sealed --timeout 30 "$TEST_TMP/none.ndjson" > /dev/null 2> "$TEST_TMP/client.err"
    assert_status client 0 $?
    assert_grep "$TEST_TMP/client.err" 'resent 500 events left in the spool'
    assertEquals "rows" 500 "$(rows)"
}

test_socket_mode_stores_the_same_rows_as_the_filters() {
    events "$TEST_TMP/in.ndjson" 500 62
    services_start
    send "$TEST_TMP/in.ndjson"
    assertEquals "cvsend status ($SENT)" 0 "$STATUS_SEND"
    stop "$STORE_PID"
    sql "SELECT id, kind, ts FROM events ORDER BY id" > "$TEST_TMP/served.txt"
    # an empty start: the database and the journal of its batches go
    rm -rf "$DB" "$DB-wal" "$DB-shm" "$HOME_DIR/journal"
    ctxvault-encrypt < "$TEST_TMP/in.ndjson" 2> /dev/null | ctxvault-store 2> /dev/null
    sql "SELECT id, kind, ts FROM events ORDER BY id" > "$TEST_TMP/filtered.txt"
    assertTrue "the same ids, kinds and times" \
        "cmp -s '$TEST_TMP/served.txt' '$TEST_TMP/filtered.txt'"
}

test_duplicates_resent_are_acknowledged_and_not_stored_twice() {
    events "$TEST_TMP/in.ndjson" 1000 63
    services_start
    send "$TEST_TMP/in.ndjson"
    assertEquals "first send: acks" 1000 "$(field acked)"
    send "$TEST_TMP/in.ndjson"
    assertEquals "second send status ($SENT)" 0 "$STATUS_SEND"
    assertEquals "second send: acks" 1000 "$(field acked)"
    assertEquals "rows" 1000 "$(rows)"
    assertEquals "distinct ids" 1000 "$(distinct_ids)"
}

test_rejected_events_are_naked_and_dead_lettered() {
    events "$TEST_TMP/in.ndjson" 10 64
    # store rejects this one (no ts); encrypt rejects that one (a key twice)
    printf '%s\n' '{"id":"rej-store-1","kind":"interaction","user_id":"u1"}' \
        '{"id":"rej-encrypt-1","kind":"interaction","user_id":"u1","ts":"2026-11-01T00:00:00Z","a":1,"a":2}' \
        >> "$TEST_TMP/in.ndjson"
    services_start
    send "$TEST_TMP/in.ndjson"
    assertEquals "cvsend status ($SENT)" 0 "$STATUS_SEND"
    assertEquals "acks" 10 "$(field acked)"
    assertEquals "naks" 2 "$(field naked)"
    assert_grep "$TEST_TMP/cvsend.err" '^nak rej-store-1 .*ts' "store's NAK names the reason"
    assert_grep "$TEST_TMP/cvsend.err" '^nak rej-encrypt-1 .*duplicate' "encrypt's NAK names the reason"
    assertEquals "rows" 10 "$(rows)"
    assertEquals "encrypt's dead letters" 1 "$(dl_count encrypt)"
    assertEquals "store's dead letters" 1 "$(dl_count store)"
}

test_malformed_messages_are_counted_and_do_not_stop_the_stages() {
    events "$TEST_TMP/in.ndjson" 100 65
    services_start
    send "$TEST_TMP/in.ndjson" --garbage 6
    assertEquals "cvsend status ($SENT)" 0 "$STATUS_SEND"
    assertEquals "acks" 100 "$(field acked)"
    # straight into store as well (protected events: duplicates by now)
    ctxvault-encrypt < "$TEST_TMP/in.ndjson" > "$TEST_TMP/enc.ndjson" 2> /dev/null
    send "$TEST_TMP/enc.ndjson" --garbage 3 --to store
    assertEquals "acks from store directly" 100 "$(field acked)"
    stop "$ENCRYPT_PID"
    stop "$STORE_PID"
    assert_grep "$TEST_TMP/encrypt.err" '6 malformed' "encrypt counts what it dropped"
    assert_grep "$TEST_TMP/store.err" '3 malformed' "store counts what it dropped"
}

test_stats_asks_the_running_store() {
    events "$TEST_TMP/in.ndjson" 700 66
    services_start
    send "$TEST_TMP/in.ndjson"
    ctxvault stats > "$TEST_TMP/stats.json" 2> "$TEST_TMP/stats.err"
    assert_status stats 0 $?
    assertEquals "events in stats" 700 "$(json_get '$.events' < "$TEST_TMP/stats.json")"
    assertEquals "no ok member: the same JSON as from the file" "" \
        "$(json_get '$.ok' < "$TEST_TMP/stats.json")"
    stop "$STORE_PID"
    # the store counted the ping and the stats request
    assert_grep "$TEST_TMP/store.err" ' 2 requests' "stats went through the control socket"
    ctxvault stats > "$TEST_TMP/stats2.json" 2> /dev/null
    assertEquals "the file says the same" 700 "$(json_get '$.events' < "$TEST_TMP/stats2.json")"
}

test_sigterm_of_store_commits_acknowledges_and_exits_0() {
    # nothing commits on its own: only the drain at SIGTERM can
    conf_set batch_size 100000
    conf_set batch_time 60s
    conf_set commit_when_idle no
    events "$TEST_TMP/in.ndjson" 2000 67
    services_start
    "$CVSEND" --timeout 20 --resend 60000 "$TEST_TMP/in.ndjson" > "$TEST_TMP/bgsend.out" 2> /dev/null &
    sender=$!
    bg_track "$sender"
    sleep 1
    assertEquals "nothing committed before SIGTERM" 0 "$(rows)"
    stop "$STORE_PID"
    assertEquals "store exit status" 0 "$STOPPED"
    wait "$sender"
    assertEquals "cvsend status ($(cat "$TEST_TMP/bgsend.out"))" 0 $?
    SENT=$(cat "$TEST_TMP/bgsend.out")
    assertEquals "acks after the drain" 2000 "$(field acked)"
    assertEquals "rows" 2000 "$(rows)"
    assertFalse "a clean stop leaves no WAL" "[ -s '$DB-wal' ]"
}

test_a_trickle_is_committed_as_soon_as_nothing_more_waits() {
    # batch_time 60s: only commit_when_idle can acknowledge within the timeout
    conf_set batch_time 60s
    events "$TEST_TMP/in.ndjson" 10 68
    services_start
    send "$TEST_TMP/in.ndjson" --timeout 5
    assertEquals "cvsend status ($SENT)" 0 "$STATUS_SEND"
    assertEquals "acks" 10 "$(field acked)"
    assertEquals "rows" 10 "$(rows)"
}

test_second_store_refuses_with_75() {
    services_start
    ctxvault-store --serve 2> "$TEST_TMP/second.err"
    assert_status second 75 $?
    assert_grep "$TEST_TMP/second.err" 'already open for writing by ctxvault-store'
}

test_store_restarted_after_kill_9_recovers_and_acks_resends() {
    events "$TEST_TMP/in.ndjson" 3000 68
    services_start
    send "$TEST_TMP/in.ndjson"
    kill -9 "$STORE_PID"
    wait "$STORE_PID" 2> /dev/null
    assertTrue "kill -9 leaves a WAL" "[ -s '$DB-wal' ]"
    ctxvault-store --serve 2> "$TEST_TMP/store2.err" &
    STORE_PID=$!
    bg_track "$STORE_PID"
    wait_until 10 grep -q 'ready in' "$TEST_TMP/store2.err" || fail "no restart"
    assert_grep "$TEST_TMP/store2.err" 'recovered' "the restart reports the recovery"
    send "$TEST_TMP/in.ndjson"
    assertEquals "acks of the resend ($SENT)" 3000 "$(field acked)"
    assertEquals "rows" 3000 "$(rows)"
}

test_store_refuses_a_database_that_fails_its_start_check() {
    events "$TEST_TMP/in.ndjson" 3000 69
    ctxvault-encrypt < "$TEST_TMP/in.ndjson" 2> /dev/null | ctxvault-store 2> /dev/null
    pages=$(sql "PRAGMA page_count")
    assertTrue "a database of many pages ($pages)" "[ '$pages' -gt 100 ]"
    # damage a page in the middle: the cheap checks at start pass, the
    # check in the background finds it
    page_size=$(sql "PRAGMA page_size")
    dd if=/dev/urandom of="$DB" bs="$page_size" seek=$((pages / 2)) count=1 \
        conv=notrunc 2> /dev/null
    ctxvault-store --serve 2> "$TEST_TMP/store.err" &
    pid=$!
    bg_track "$pid"
    wait "$pid"
    assert_status store 65 $?
    assert_grep "$TEST_TMP/store.err" "restore.*ctxvault-backup restore"
}

test_curve_over_tcp_keeps_out_an_unknown_key() {
    for k in encrypt store acks control; do
        conf_set "$k" "tcp://127.0.0.1:$(free_port)"
    done
    events "$TEST_TMP/in.ndjson" 200 70
    services_start
    "$CVSEND" --timeout 2 --resend 500 --bad-key "$TEST_TMP/in.ndjson" > "$TEST_TMP/bad.out" 2> /dev/null
    assertEquals "an unknown key gets nothing delivered ($(cat "$TEST_TMP/bad.out"))" 1 $?
    assertEquals "rows after the unknown key" 0 "$(rows)"
    send "$TEST_TMP/in.ndjson"
    assertEquals "the instance's key delivers ($SENT)" 0 "$STATUS_SEND"
    assertEquals "acks" 200 "$(field acked)"
    assertEquals "rows" 200 "$(rows)"
    ctxvault stats > "$TEST_TMP/stats.json" 2> /dev/null
    assertEquals "stats over tcp+CURVE" 200 "$(json_get '$.events' < "$TEST_TMP/stats.json")"
    stop "$STORE_PID"
    assert_grep "$TEST_TMP/store.err" ' 2 requests' "stats went through the control socket"
}

# No pipeline running: the client says so, where it waits and how to start
# one, and keeps waiting (nothing accepted is dropped) unless --timeout.
test_ingest_without_a_pipeline_says_what_it_waits_for() {
    event 1 > "$TEST_TMP/in.ndjson"
    ctxvault-ingest "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err" &
    _pid=$!
    bg_track "$_pid"
    wait_until 60 grep -q 'no acknowledgement' "$TEST_TMP/ingest.err" ||
        fail "no word of the wait: $(cat "$TEST_TMP/ingest.err")"
    assert_grep "$TEST_TMP/ingest.err" "on ipc://$HOME_DIR/run/encrypt.sock" "it names the endpoint"
    assert_grep "$TEST_TMP/ingest.err" "tools/supervise.sh start.*make run" "it says how to start the pipeline"
    assertTrue "it is still waiting" "kill -0 $_pid"
    assertEquals "said once" 1 "$(grep -c 'no acknowledgement' "$TEST_TMP/ingest.err")"
    kill -TERM "$_pid"
    wait "$_pid" 2> /dev/null
    assert_status ingest 75 $?
    # with --timeout it gives up: 75, the events stay spooled (this one
    # and the one the killed client left)
    ctxvault-ingest --timeout 2 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 75 $?
    assert_grep "$TEST_TMP/ingest.err" 'timed out with [0-9]+ events? not yet acknowledged'
    # a pipeline started later gets it, once
    services_start
    ctxvault-ingest --timeout 60 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    assertEquals "rows" 1 "$(rows)"
}

# A valid event that sealing grows past what store takes (many short
# strings no rule names: each sealed) is rejected once, with its reason,
# counted and dead-lettered; the events around it are stored once and the
# client returns (65), never resending it for ever.
test_event_that_sealing_grows_too_large_is_rejected_once() {
    conf_set max_line 64KiB
    {
        event 1 u-big
        awk 'BEGIN { printf "{\"kind\":\"interaction\",\"user_id\":\"u-big\",\"ts\":\"2026-11-01T00:00:02Z\",\"type\":\"form\"";
                     for (i = 0; i < 5000; i++) printf ",\"f%d\":\"x\"", i; print "}" }'
        event 3 u-big
    } > "$TEST_TMP/in.ndjson"
    _len=$(sed -n 2p "$TEST_TMP/in.ndjson" | wc -c)
    assertTrue "the big line ($_len bytes) should be near max_line" "[ $_len -gt 50000 ] && [ $_len -lt 65536 ]"
    services_start
    ctxvault-ingest --timeout 60 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 65 $?
    assert_grep "$TEST_TMP/ingest.err" 'rejected downstream: sealed by the policy, the event is [0-9]+ bytes, longer than store takes'
    assertEquals "rows: the events around it, once" 2 "$(rows)"
    assertEquals "encrypt's dead letters: one" 1 "$(dl_count encrypt)"
    assertEquals "store's dead letters: none" 0 "$(dl_count store)"
    assertEquals "the client's spool is empty" 0 \
        "$(ctxvault-ingest --timeout 1 < /dev/null 2>&1 > /dev/null | grep -c 'resent')"
    # counted, as every drop is
    kill -TERM "$ENCRYPT_PID"
    wait "$ENCRYPT_PID" 2> /dev/null
    assert_grep "$TEST_TMP/encrypt.err" '1 rejected'
}

# Store answers every line whose id it can read: one longer than it takes
# (from an encrypt with a larger limit, or none) is NAKed, not ignored.
test_store_naks_a_line_longer_than_it_takes() {
    conf_set max_line 64KiB
    services_start
    awk 'BEGIN { printf "{\"id\":\"too-big-1\",\"kind\":\"interaction\",\"user_id\":\"u\",\"ts\":\"2026-11-01T00:00:00Z\",\"pad\":\"";
                 for (i = 0; i < 200000; i++) printf "a"; print "\"}" }' > "$TEST_TMP/big.ndjson"
    event 4 > "$TEST_TMP/ok.ndjson"
    protect "$TEST_TMP/ok.ndjson" "$TEST_TMP/in.ndjson"
    # straight to store, past encrypt
    cat "$TEST_TMP/big.ndjson" "$TEST_TMP/in.ndjson" > "$TEST_TMP/both.ndjson"
    send "$TEST_TMP/both.ndjson" --to store
    assertEquals "cvsend status ($SENT)" 0 "$STATUS_SEND"
    assertEquals "naks" 1 "$(field naked)"
    assertEquals "acks" 1 "$(field acked)"
    assert_grep "$TEST_TMP/cvsend.err" '^nak too-big-1 .*longer than'
    assertEquals "store's dead letters" 1 "$(dl_count store)"
}

. shunit2
