#!/bin/sh
# test_verify.sh - the operator's view: verify finds tampered rows, config
# check names file and line, store refuses a corrupt database, stats and
# query report what the table holds.
SUITE=verify
. "$CV_TOP/tests/shell/lib.sh"

# store_some N: N generated events from 10 users, through the pipeline
store_some() {
    gen "$TEST_TMP/in.ndjson" -n "$1" -s 41 -u 10
    pipeline "$TEST_TMP/in.ndjson"
    assertEquals "rows stored for the test" "$1" "$(rows)"
}

test_store_with_check_checksums_refuses_a_tampered_database() {
    store_some 50
    conf_set check_checksums yes
    : | ctxvault-store 2> "$TEST_TMP/store.err"
    assert_status store 0 $?
    id=$(sql 'SELECT id FROM events WHERE seq = 5')
    sql "UPDATE events SET body = replace(body, 'e', 'E') WHERE seq = 5"
    : | ctxvault-store 2> "$TEST_TMP/store.err"
    assert_status store 65 $?
    assert_grep "$TEST_TMP/store.err" "$id" "store should name the tampered row"
    assert_grep "$TEST_TMP/store.err" "restore" "store should name the restore command"
}

test_background_checksum_pass_degrades_health_naming_a_tampered_row() {
    store_some 50
    id=$(sql 'SELECT id FROM events WHERE seq = 5')
    # changed on disk with store stopped, as an intruder or a bad tool would
    sql "UPDATE events SET body = replace(body, 'e', 'E') WHERE seq = 5"
    metrics_start --expect "ctxvault-store"
    serve_store
    wait_until 10 sh -c "curl -s '$URL/health' | grep -q '$id'" ||
        fail "health never named the tampered row: $(curl -s "$URL/health")"
    curl -s "$URL/health" > "$TEST_TMP/health.json"
    assertEquals "status" degraded "$(json_get '$.status' < "$TEST_TMP/health.json")"
    assert_grep "$TEST_TMP/health.json" '1 of 50 rows .*fail their keyed checksum'
    assertEquals "mismatches counted" 1 \
        "$(metric_sum ctxvault_checksum_mismatches_total 'program="ctxvault-store"')"
    assertEquals "rows checked" 50 \
        "$(metric_sum ctxvault_checksum_rows_checked_total 'program="ctxvault-store"')"
    assertEquals "the last pass's result" 0 \
        "$(metric_sum ctxvault_checksum_pass_last_ok 'program="ctxvault-store"')"
    done_at=$(sample ctxvault_checksum_pass_last_completion_timestamp_seconds 'program="ctxvault-store"')
    assertTrue "the pass's completion time ($done_at) is now" "[ ${done_at%.*} -gt $(($(date +%s) - 60)) ]"
    assert_grep "$TEST_TMP/serve.err" "row 5 \\(id $id\\): checksum mismatch" "the log should name the row"
    other=$(sql 'SELECT id FROM events WHERE seq = 6')
    assert_no_grep "$TEST_TMP/serve.err" "$other" "an untouched row was named"
    api '{"op":"ping"}'
    assertEquals "store still serves, its pass failed" failed "$(reply '$.checksums')"
    kill -TERM "$SERVE_PID"
    wait "$SERVE_PID"
    assert_status serve 0 $?
}

test_background_checksum_pass_reports_a_clean_database_healthy() {
    store_some 50
    metrics_start --expect "ctxvault-store"
    serve_store
    wait_until 10 sh -c "curl -s '$URL/metrics' | grep -q '^ctxvault_checksum_pass_last_ok{.*} 1'" ||
        fail "the pass never ended well: $(curl -s "$URL/metrics" | grep checksum)"
    assertEquals "rows checked" 50 \
        "$(metric_sum ctxvault_checksum_rows_checked_total 'program="ctxvault-store"')"
    assertEquals "no mismatch" 0 \
        "$(metric_sum ctxvault_checksum_mismatches_total 'program="ctxvault-store"')"
    wait_until 5 sh -c "curl -s '$URL/health' | grep -q '\"status\": \"ok\"'" ||
        fail "health not ok: $(curl -s "$URL/health")"
}

test_clean_database_verifies() {
    store_some 500
    ctxvault verify > "$TEST_TMP/verify.out" 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    cat "$TEST_TMP/verify.out" "$TEST_TMP/verify.err" > "$TEST_TMP/verify.all"
    assert_grep "$TEST_TMP/verify.all" '(^|[^0-9])0 bad checksums' "verify should report 0 bad checksums"
    assert_grep "$TEST_TMP/verify.all" '500 rows' "verify should count the rows it checked"
}

test_tampered_body_fails_verify_naming_the_row() {
    store_some 500
    id=$(sql 'SELECT id FROM events WHERE seq = 3')
    before=$(sql 'SELECT body FROM events WHERE seq = 3')
    sql "UPDATE events SET body = replace(body, 'a', 'b') WHERE seq = 3"
    assertNotEquals "the update should change the body" "$before" \
        "$(sql 'SELECT body FROM events WHERE seq = 3')"
    ctxvault verify > "$TEST_TMP/verify.out" 2> "$TEST_TMP/verify.err"
    assert_status verify 65 $?
    assert_grep "$TEST_TMP/verify.err" "$id" "verify should name the tampered row's id"
    other=$(sql 'SELECT id FROM events WHERE seq = 4')
    assert_no_grep "$TEST_TMP/verify.err" "$other" "verify named an untouched row"
}

test_tampered_user_id_fails_verify_naming_the_row() {
    store_some 500
    id=$(sql 'SELECT id FROM events WHERE seq = 7')
    other_user=$(sql 'SELECT uid FROM events WHERE uid <> (SELECT uid FROM events WHERE seq = 7) LIMIT 1')
    sql "UPDATE events SET uid = $other_user WHERE seq = 7"
    ctxvault verify > "$TEST_TMP/verify.out" 2> "$TEST_TMP/verify.err"
    assert_status verify 65 $?
    assert_grep "$TEST_TMP/verify.err" "$id" "verify should name the row moved to another user"
}

test_tampered_kind_or_ts_fails_verify() {
    store_some 100
    sql "UPDATE events SET kind = 'audit' WHERE seq = 10 AND kind <> 'audit';
         UPDATE events SET kind = 'trace' WHERE seq = 10 AND kind = 'audit'"
    sql "UPDATE events SET ts = ts + 1 WHERE seq = 20"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 65 $?
    for seq in 10 20; do
        assert_grep "$TEST_TMP/verify.err" "$(sql "SELECT id FROM events WHERE seq = $seq")" \
            "verify should name row $seq"
    done
}

test_verify_fails_on_a_corrupt_database_file() {
    store_some 200
    dd if=/dev/urandom of="$DB" bs=100 count=1 conv=notrunc 2> /dev/null
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    rc=$?
    assertTrue "verify on a corrupt file should fail, got $rc" "[ $rc -ne 0 ]"
    assert_grep "$TEST_TMP/verify.err" 'corrupt|not a database|malformed' "verify should say why"
}

test_config_check_passes_on_a_fresh_instance() {
    ctxvault config check > "$TEST_TMP/check.out" 2> "$TEST_TMP/check.err"
    assert_status check 0 $?
}

test_config_check_names_a_bad_policy_line() {
    echo 'bogus = explode' >> "$HOME_DIR/policy.conf"
    line=$(wc -l < "$HOME_DIR/policy.conf")
    ctxvault config check > "$TEST_TMP/check.out" 2> "$TEST_TMP/check.err"
    assert_status check 78 $?
    assert_grep "$TEST_TMP/check.err" "policy\.conf:$line: " "config check should name policy.conf:$line"
    assert_grep "$TEST_TMP/check.err" "explode" "the reason should quote the bad operator"
}

test_config_check_names_a_bad_config_line() {
    printf '[store]\nbatch_size = -3\n' >> "$HOME_DIR/ctxvault.conf"
    line=$(wc -l < "$HOME_DIR/ctxvault.conf")
    ctxvault config check > "$TEST_TMP/check.out" 2> "$TEST_TMP/check.err"
    assert_status check 78 $?
    assert_grep "$TEST_TMP/check.err" "ctxvault\.conf:$line: .*batch_size" \
        "config check should name ctxvault.conf:$line and batch_size"
}

test_config_check_reports_every_problem() {
    printf 'bogus = explode\n**.email = hash\n' >> "$HOME_DIR/policy.conf"
    last=$(wc -l < "$HOME_DIR/policy.conf")
    ctxvault config check > "$TEST_TMP/check.out" 2> "$TEST_TMP/check.err"
    assert_status check 78 $?
    assert_grep "$TEST_TMP/check.err" "policy\.conf:$((last - 1)): " "the first problem"
    assert_grep "$TEST_TMP/check.err" "policy\.conf:$last: " "the second problem (hash without a purpose)"
}

test_programs_refuse_to_start_with_a_bad_config() {
    printf '[store]\nbatch_size = -3\n' >> "$HOME_DIR/ctxvault.conf"
    line=$(wc -l < "$HOME_DIR/ctxvault.conf")
    event 1 | ctxvault-ingest --stdout 2> "$TEST_TMP/ingest.err" > /dev/null
    assert_status ingest 78 $?
    ctxvault-store < /dev/null 2> "$TEST_TMP/store.err"
    assert_status store 78 $?
    assert_grep "$TEST_TMP/store.err" "ctxvault\.conf:$line: " "store should name the bad line"
    echo 'bogus = explode' >> "$HOME_DIR/policy.conf"
    ctxvault-encrypt < /dev/null 2> "$TEST_TMP/encrypt.err"
    assert_status encrypt 78 $?
}

test_c_option_selects_the_configuration_file() {
    sed 's/^max_line .*/max_line = 1KiB/' "$HOME_DIR/ctxvault.conf" > "$TEST_TMP/alt.conf"
    event 1 u1 interaction ",\"pad\":\"$(printf '%02000d' 0)\"" > "$TEST_TMP/in.ndjson"
    ctxvault-ingest --stdout "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    ctxvault-ingest --stdout -c "$TEST_TMP/alt.conf" "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 65 $?
    printf '[store]\nbatch_size = -3\n' >> "$TEST_TMP/alt.conf"
    ctxvault -c "$TEST_TMP/alt.conf" config check > /dev/null 2> "$TEST_TMP/check.err"
    assert_status check 78 $?
    assert_grep "$TEST_TMP/check.err" "alt\.conf:$(wc -l < "$TEST_TMP/alt.conf"): " \
        "config check -c should name the file it was given"
}

test_store_refuses_a_corrupt_database_naming_restore() {
    store_some 200
    dd if=/dev/urandom of="$DB" bs=100 count=1 conv=notrunc 2> /dev/null
    cp "$DB" "$TEST_TMP/corrupt.copy"
    event 1 u-late | ctxvault-ingest --stdout 2> /dev/null | ctxvault-encrypt 2> /dev/null |
        ctxvault-store 2> "$TEST_TMP/store.err"
    assert_status store 65 $?
    assert_grep "$TEST_TMP/store.err" 'restore' "the refusal should name the restore command"
    assert_grep "$TEST_TMP/store.err" "$DB" "the refusal should name the database"
    assertTrue "store must not write to a corrupt database" "cmp -s '$DB' '$TEST_TMP/corrupt.copy'"
}

test_store_refuses_a_database_with_a_corrupt_page() {
    store_some 500
    # keep the header, smash a page in the middle of the file (an index or
    # table page): quick_check must find it
    pages=$(( $(stat -c %s "$DB") / 4096 ))
    assertTrue "the database should have several pages" "[ $pages -gt 4 ]"
    dd if=/dev/urandom of="$DB" bs=4096 seek=$((pages / 2)) count=1 conv=notrunc 2> /dev/null
    ctxvault-store < /dev/null 2> "$TEST_TMP/store.err"
    assert_status store 65 $?
    assert_grep "$TEST_TMP/store.err" 'restore' "the refusal should name the restore command"
}

test_stats_counts_events_by_kind() {
    store_some 600
    ctxvault stats > "$TEST_TMP/stats.json" 2> "$TEST_TMP/stats.err"
    assert_status stats 0 $?
    assertEquals "stats is valid JSON" 1 "$(json_q 'json_valid(j)' < "$TEST_TMP/stats.json")"
    assertEquals "events" 600 "$(json_get '$.events' < "$TEST_TMP/stats.json")"
    assertEquals "sum of by_kind" 600 \
        "$(json_q "(SELECT sum(value) FROM json_each(j, '\$.by_kind'))" < "$TEST_TMP/stats.json")"
    kinds=$(sql 'SELECT kind FROM events GROUP BY kind')
    assertEquals "number of kinds" "$(echo "$kinds" | wc -l)" \
        "$(json_q "(SELECT count(*) FROM json_each(j, '\$.by_kind'))" < "$TEST_TMP/stats.json")"
    for k in $kinds; do
        assertEquals "by_kind.$k" "$(rows "kind = '$k'")" \
            "$(json_get "\$.by_kind.$k" < "$TEST_TMP/stats.json")"
    done
}

# Events of user u-q at seconds 1..12 (kinds alternate interaction and
# trace), and of u-other in between; sets P to u-q's pseudonym
store_query_fixture() {
    i=1
    while [ $i -le 12 ]; do
        if [ $((i % 2)) -eq 0 ]; then event $i u-q trace; else event $i u-q interaction; fi
        event $i u-other interaction
        i=$((i + 1))
    done > "$TEST_TMP/q.ndjson"
    pipeline "$TEST_TMP/q.ndjson"
    assertEquals "fixture rows" 24 "$(rows)"
    P=$(ctxvault query --user u-q --limit 1 | json_get '$.user_id')
    assertNotNull "no pseudonym for u-q" "$P"
}

# query_ts ARGS...: the ts values that `ctxvault query ARGS` prints, one per line
query_ts() {
    ctxvault query "$@" > "$TEST_TMP/query.out" 2> "$TEST_TMP/query.err" || return
    while IFS= read -r l; do
        printf '%s\n' "$l" | json_get '$.ts'
    done < "$TEST_TMP/query.out"
}

test_query_returns_a_users_rows_newest_first() {
    data_clock
    store_query_fixture
    got=$(query_ts --user u-q | tr '\n' ' ')
    want=$(i=12; while [ $i -ge 1 ]; do printf '2026-11-01T00:00:%02dZ ' $i; i=$((i - 1)); done)
    assertEquals "u-q's events, newest first" "$want" "$got"
    assertEquals "rows of u-q in the table" 12 "$(rows "user_id = '$P'")"
}

test_query_oldest_first_reverses_the_order() {
    data_clock
    store_query_fixture
    got=$(query_ts --user u-q --oldest-first | tr '\n' ' ')
    want=$(i=1; while [ $i -le 12 ]; do printf '2026-11-01T00:00:%02dZ ' $i; i=$((i + 1)); done)
    assertEquals "u-q's events, oldest first" "$want" "$got"
}

test_query_filters_by_kind_since_until_and_limit() {
    data_clock
    store_query_fixture
    since=2026-11-01T00:00:03.500Z until=2026-11-01T00:00:10.500Z
    want=$(rows "user_id = '$P' AND kind = 'trace' AND ts >= 1793491203500 AND ts < 1793491210500")
    assertEquals "sqlite3's count for the filter" 4 "$want"
    got=$(query_ts --user u-q --kind trace --since $since --until $until | tr '\n' ' ')
    assertEquals "traces of u-q in the window" \
        "2026-11-01T00:00:10Z 2026-11-01T00:00:08Z 2026-11-01T00:00:06Z 2026-11-01T00:00:04Z " "$got"
    got=$(query_ts --user u-q --kind trace --since $since --until $until --limit 2 | tr '\n' ' ')
    assertEquals "the 2 newest of them" "2026-11-01T00:00:10Z 2026-11-01T00:00:08Z " "$got"
    got=$(query_ts --user u-q --kind trace --since $since --until $until --limit 2 --oldest-first | tr '\n' ' ')
    assertEquals "the 2 oldest of them" "2026-11-01T00:00:04Z 2026-11-01T00:00:06Z " "$got"
    assertEquals "kinds other than trace in the output" 0 \
        "$(grep -c -v '"kind":"trace"' "$TEST_TMP/query.out")"
}

test_query_matches_sqlite_counts_on_generated_events() {
    data_clock 2026-11-01T00:30:00Z # ephemeral users' rows too
    store_some 1000
    for u in user-00001 user-00004 user-00009; do
        p=$(ctxvault query --user $u --limit 1 | json_get '$.user_id')
        assertEquals "rows of $u" "$(rows "user_id = '$p'")" \
            "$(ctxvault query --user $u | wc -l)"
        assertEquals "interaction rows of $u" "$(rows "user_id = '$p' AND kind = 'interaction'")" \
            "$(ctxvault query --user $u --kind interaction | wc -l)"
        assertEquals "input events of $u" "$(grep -c "\"user_id\":\"$u\"" "$TEST_TMP/in.ndjson")" \
            "$(ctxvault query --user $u | wc -l)"
    done
}

test_query_of_an_unknown_user_prints_nothing() {
    store_some 100
    out=$(ctxvault query --user nobody-at-all 2> "$TEST_TMP/query.err")
    rc=$?
    assertTrue "query of an unknown user should exit 0 or 66, got $rc" "[ $rc -eq 0 ] || [ $rc -eq 66 ]"
    assertNull "query of an unknown user printed rows" "$out"
}

test_get_of_an_unknown_id_exits_66() {
    store_some 100
    ctxvault get no-such-id > "$TEST_TMP/get.out" 2> "$TEST_TMP/get.err"
    assert_status get 66 $?
    assertEquals "bytes on stdout" 0 "$(wc -c < "$TEST_TMP/get.out")"
}

test_query_with_a_bad_time_exits_64() {
    ctxvault query --user u-q --since yesterday > /dev/null 2> "$TEST_TMP/query.err"
    assert_status query 64 $?
    assert_grep "$TEST_TMP/query.err" 'since' "the error should name --since"
}

. shunit2
