#!/bin/sh
# test_pipeline.sh - ingest | encrypt | store: each valid event stored exactly
# once, ids kept or derived from content, the command-line contract, the
# single writer and a clean stop on SIGTERM.
SUITE=pipeline
. "$CV_TOP/tests/shell/lib.sh"

PROGRAMS="ctxvault ctxvault-ingest ctxvault-encrypt ctxvault-store ctxvault-ttl-sweep ctxvault-scrub ctxvault-backup ctxvault-metrics ctxvault-sync"

test_generated_events_are_stored_exactly_once() {
    gen "$TEST_TMP/in.ndjson" -n 2000 -s 11 -u 40
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status encrypt 0 "$STATUS_ENCRYPT"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows == input lines" 2000 "$(rows)"
    assertEquals "distinct ids == rows" 2000 "$(distinct_ids)"
}

test_sample_data_is_stored_whole() {
    pipeline "$DATA/sample.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows" 40 "$(rows)"
    # tests/data/README: 8 profiles, 20 interactions, 5 users
    assertEquals "profile rows" 8 "$(rows "kind='profile'")"
    assertEquals "interaction rows" 20 "$(rows "kind='interaction'")"
    # the anonymous user's rows but their profile are under a pseudonym
    # of the day (PRIVACY.md §2), which links them to no one
    assertEquals "distinct identified users" 5 \
        "$(sql "SELECT COUNT(DISTINCT user_id) FROM events_v WHERE user_id NOT LIKE 'anon:%'")"
    assertTrue "an anonymous user's rows" \
        "[ $(sql "SELECT COUNT(*) FROM events_v WHERE user_id LIKE 'anon:%'") -gt 0 ]"
}

test_second_run_of_the_same_input_stores_nothing_new() {
    gen "$TEST_TMP/in.ndjson" -n 1000 -s 12 -u 20
    pipeline "$TEST_TMP/in.ndjson"
    assertEquals "rows after the first run" 1000 "$(rows)"
    sum1=$(sql 'SELECT COUNT(*), MAX(seq), TOTAL(length(body)) FROM events')
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status encrypt 0 "$STATUS_ENCRYPT"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows after the second run" 1000 "$(rows)"
    assertEquals "the second run changed rows" "$sum1" \
        "$(sql 'SELECT COUNT(*), MAX(seq), TOTAL(length(body)) FROM events')"
}

test_events_with_producer_id_dedupe_despite_whitespace_and_crlf() {
    gen "$TEST_TMP/in.ndjson" -n 500 -s 13 -u 10
    with_id=$(grep -c '^{"id":' "$TEST_TMP/in.ndjson")
    assertTrue "the generator should give some events an id" "[ $with_id -gt 0 ]"
    grep '^{"id":' "$TEST_TMP/in.ndjson" > "$TEST_TMP/ids.ndjson"
    # the same events, re-spaced and with CRLF endings
    sed 's/,"/, "/g; s/":/" : /g; s/$/\r/' "$TEST_TMP/ids.ndjson" > "$TEST_TMP/respaced.ndjson"
    assertFalse "the re-spaced file should differ" \
        "cmp -s '$TEST_TMP/ids.ndjson' '$TEST_TMP/respaced.ndjson'"
    pipeline "$TEST_TMP/ids.ndjson"
    assertEquals "rows after the first run" "$with_id" "$(rows)"
    pipeline "$TEST_TMP/respaced.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "re-spaced events with ids were stored again" "$with_id" "$(rows)"
}

test_events_without_id_dedupe_despite_whitespace_and_crlf() {
    # ingest derives the id from the normalised event, so the layout of
    # the producer's JSON must not matter
    gen "$TEST_TMP/in.ndjson" -n 300 -s 14 -u 10 --no-id
    sed 's/,"/, "/g; s/":/" : /g; s/$/\r/' "$TEST_TMP/in.ndjson" > "$TEST_TMP/respaced.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/respaced.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assertEquals "re-spaced events without id were stored again" 300 "$(rows)"
}

test_identical_events_with_their_own_ids_are_both_stored() {
    {
        event 5 u-twice interaction ',"id":"prod-a"'
        event 5 u-twice interaction ',"id":"prod-b"'
        event 6 u-twice
        event 6 u-twice
    } > "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    # two producer ids: two events; two identical id-less lines: one event
    assertEquals "rows" 3 "$(rows)"
}

test_producer_id_is_kept() {
    gen "$TEST_TMP/in.ndjson" -n 300 -s 15 -u 10
    id=$(grep -o '^{"id":"[^"]*"' "$TEST_TMP/in.ndjson" | sed -n 3p | cut -d'"' -f4)
    assertNotNull "no producer id in the generated input" "$id"
    pipeline "$TEST_TMP/in.ndjson"
    ctxvault get "$id" > "$TEST_TMP/get.out" 2> "$TEST_TMP/get.err"
    assert_status get 0 $?
    assertEquals "rows with that id" 1 "$(rows "id='$id'")"
    assertEquals "ctxvault get prints the event" "$id" \
        "$(json_get '$.id' < "$TEST_TMP/get.out")"
    assertEquals "get prints exactly one line" 1 "$(wc -l < "$TEST_TMP/get.out")"
}

test_event_without_id_gets_a_26_character_id() {
    event 7 > "$TEST_TMP/in.ndjson"
    ctxvault-ingest --stdout "$TEST_TMP/in.ndjson" > "$TEST_TMP/out.ndjson" 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    id=$(json_get '$.id' < "$TEST_TMP/out.ndjson")
    assertEquals "length of the assigned id '$id'" 26 "${#id}"
    case $id in
        *[!0-9A-Za-z]*) fail "the id '$id' should be alphanumeric" ;;
    esac
}

test_same_event_ingested_twice_gets_the_same_id() {
    event 8 > "$TEST_TMP/in.ndjson"
    event 9 u-noid > "$TEST_TMP/other.ndjson"
    ctxvault-ingest --stdout "$TEST_TMP/in.ndjson" > "$TEST_TMP/in.1" 2> /dev/null
    ctxvault-ingest --stdout < "$TEST_TMP/in.ndjson" > "$TEST_TMP/in.2" 2> /dev/null
    ctxvault-ingest --stdout "$TEST_TMP/other.ndjson" > "$TEST_TMP/other.1" 2> /dev/null
    id1=$(json_get '$.id' < "$TEST_TMP/in.1")
    assertNotNull "no id assigned" "$id1"
    assertEquals "ids of the same event in two runs" "$id1" "$(json_get '$.id' < "$TEST_TMP/in.2")"
    assertNotEquals "different events should get different ids" \
        "$id1" "$(json_get '$.id' < "$TEST_TMP/other.1")"
}

# An event with neither id nor ts (a user who clicks "like" twice) is a new
# event at each acceptance: nothing in it tells a repeat from a re-send.
test_identical_lines_without_id_or_ts_are_each_stored() {
    printf '{"kind":"interaction","user_id":"u-like","type":"like"}\n' > "$TEST_TMP/like.ndjson"
    cat "$TEST_TMP/like.ndjson" "$TEST_TMP/like.ndjson" > "$TEST_TMP/twice.ndjson"
    pipeline "$TEST_TMP/twice.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "two identical lines: two rows" 2 "$(rows "type='like'")"
    assertEquals "two ids" 2 "$(sql "SELECT COUNT(DISTINCT id) FROM events_v WHERE type='like'")"
    # the same file again is two more events; with a ts it is the same one
    pipeline "$TEST_TMP/twice.ndjson"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "the same file twice: four rows" 4 "$(rows "type='like'")"
    event 11 u-like > "$TEST_TMP/ts.ndjson"
    pipeline "$TEST_TMP/ts.ndjson"
    pipeline "$TEST_TMP/ts.ndjson"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "a line with a ts sent twice: one row" 1 "$(rows "type='click'")"
    # each got its time of receipt as its ts, and its id starts with it
    assertEquals "rows without a ts" 0 \
        "$(sql "SELECT COUNT(*) FROM events_v WHERE type='like' AND (ts IS NULL OR ts < $(($(date +%s) - 600)) * 1000)")"
}

test_missing_ts_is_filled_in_as_rfc3339() {
    event 10 u-nots | sed 's/"ts":"[^"]*",//' > "$TEST_TMP/in.ndjson"
    assert_no_grep "$TEST_TMP/in.ndjson" '"ts"' "the input should have no ts"
    ctxvault-ingest --stdout "$TEST_TMP/in.ndjson" > "$TEST_TMP/out.ndjson" 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    ts=$(json_get '$.ts' < "$TEST_TMP/out.ndjson")
    if ! echo "$ts" | grep -q -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$'; then
        fail "ts '$ts' is not RFC 3339"
    fi
    # the time of receipt: within a minute of now
    now=$(date -u +%s)
    got=$(date -u -d "$ts" +%s 2> /dev/null || echo 0)
    assertTrue "ts '$ts' should be the time of receipt" \
        "[ $((now - got)) -ge 0 ] && [ $((now - got)) -le 60 ]"
}

test_help_exits_0_and_prints_usage_on_stdout() {
    for p in $PROGRAMS; do
        "$p" --help > "$TEST_TMP/help.out" 2> "$TEST_TMP/help.err"
        assertEquals "$p --help exit status" 0 $?
        assert_grep "$TEST_TMP/help.out" '^usage: ' "$p --help should print usage on stdout"
        assertEquals "$p --help should print nothing on stderr" 0 \
            "$(wc -c < "$TEST_TMP/help.err")"
    done
}

test_version_prints_name_and_version() {
    for p in $PROGRAMS; do
        out=$("$p" --version 2> /dev/null)
        assertEquals "$p --version exit status" 0 $?
        echo "$out" | grep -q -E "^$p [0-9]+\.[0-9]+(\.[0-9]+)?" ||
            fail "$p --version printed '$out'"
    done
}

test_unknown_option_exits_64_with_usage_on_stderr() {
    for p in $PROGRAMS; do
        "$p" --no-such-option < /dev/null > "$TEST_TMP/opt.out" 2> "$TEST_TMP/opt.err"
        assertEquals "$p --no-such-option exit status" 64 $?
        assert_grep "$TEST_TMP/opt.err" 'usage' "$p should print usage on stderr"
        assertEquals "$p should print nothing on stdout" 0 "$(wc -c < "$TEST_TMP/opt.out")"
    done
}

test_store_db_option_writes_there() {
    gen "$TEST_TMP/in.ndjson" -n 100 -s 16 -u 5
    protect "$TEST_TMP/in.ndjson" "$TEST_TMP/enc.ndjson"
    other=$TEST_TMP/elsewhere/other.db
    ctxvault-store --db "$other" < "$TEST_TMP/enc.ndjson" 2> "$TEST_TMP/store.err"
    assert_status store 0 $?
    assertEquals "rows in --db $other" 100 \
        "$(sqlite3 "$other" 'SELECT COUNT(*) FROM events')"
    assertEquals "rows in the instance's database" 0 "$(rows)"
    assertTrue "its journal is beside it" "ls '$other.journal/'*.cvj > /dev/null"
    assertFalse "the instance's journal has none of it" "ls '$HOME_DIR/journal/'*.cvj > /dev/null 2>&1"
}

test_second_store_on_the_same_database_refuses_with_exit_75() {
    store_start
    wait_until 20 grep -q "pid $STORE_PID" "$DB.lock" ||
        fail "the first store never took its lock: $(cat "$DB.lock")"
    event 1 | ctxvault-ingest --stdout 2> /dev/null | ctxvault-encrypt 2> /dev/null > "$TEST_TMP/one.ndjson"
    ctxvault-store < "$TEST_TMP/one.ndjson" 8>&- 2> "$TEST_TMP/store.err"
    assert_status store 75 $?
    assert_grep "$TEST_TMP/store.err" "pid $STORE_PID" \
        "the refusal should name the holder (pid $STORE_PID)"
    assertEquals "the refused store must not write" 0 "$(rows)"
    store_close
    assertEquals "the first store's exit status" 0 "$STATUS_BGSTORE"
    # once the holder is gone, a new writer may start
    ctxvault-store < "$TEST_TMP/one.ndjson" 2> "$TEST_TMP/store.err"
    assert_status store 0 $?
    assertEquals "rows after the holder stopped" 1 "$(rows)"
}

test_query_sees_events_committed_by_a_running_store() {
    data_clock
    event 1 u-live > "$TEST_TMP/in.ndjson"
    protect "$TEST_TMP/in.ndjson" "$TEST_TMP/enc.ndjson"
    store_start
    store_feed "$TEST_TMP/enc.ndjson"
    wait_until 10 rows_at_least 1 || fail "the store did not commit"
    out=$(ctxvault query --user u-live 8>&- 2> "$TEST_TMP/query.err")
    assert_status query 0 $?
    assertEquals "events of u-live seen while the store runs" 1 "$(echo "$out" | grep -c '"ts"')"
    store_close
    assertEquals "store exit status" 0 "$STATUS_BGSTORE"
}

test_sigterm_commits_what_was_read_and_exits_0() {
    # a batch that would stay open for a minute: only the stop commits it
    conf_set batch_time 60s
    gen "$TEST_TMP/in.ndjson" -n 300 -s 17 -u 5
    protect "$TEST_TMP/in.ndjson" "$TEST_TMP/enc.ndjson"
    store_start
    store_feed "$TEST_TMP/enc.ndjson"
    sleep 1.5
    assertEquals "rows before SIGTERM (batch still open)" 0 "$(rows)"
    kill -TERM "$STORE_PID"
    store_wait
    assertEquals "store exit status after SIGTERM" 0 "$STATUS_BGSTORE"
    assertEquals "rows committed on SIGTERM" 300 "$(rows)"
    assertFalse "a clean stop leaves no WAL" "[ -s '$DB-wal' ]"
    exec 8>&-
}

. shunit2
