#!/bin/sh
# test_health.sh - the health record ctxvault-metrics serves (/status,
# /status?format=json, ctxvault status --json, ctxvault_* gauges): every
# field present and sane after events, queries, a backup and a verify;
# an anomaly raised by a burst of rejected lines and cleared once the
# window has passed.
SUITE=health
. "$CV_TOP/tests/shell/lib.sh"

# record PATH: a member of the health record, as ctxvault status --json
# prints it
record() {
    ctxvault status --json 2> "$TEST_TMP/status.err" > "$TEST_TMP/record.json"
    json_get "$1" < "$TEST_TMP/record.json"
}

test_every_field_of_the_health_record_after_events_a_backup_and_a_verify() {
    metrics_start --expect "ctxvault-store ctxvault-encrypt"
    services_start
    ctxvault-ingest --timeout 30 "$DATA/sample.ndjson" > /dev/null 2> "$TEST_TMP/client.err"
    assert_status client 0 $?
    stored=$(rows)
    for i in 1 2 3; do
        api '{"op":"query","user":"user-00001","limit":5}'
        assertEquals "query $i through store" 0 "$STATUS_API"
    done
    ctxvault-backup create > /dev/null 2> "$TEST_TMP/backup.err"
    assert_status backup 0 $?
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    wait_until 5 sh -c "ctxvault status --json 2> /dev/null | grep -q '\"check\": \"verify\"'" ||
        fail "the verify never reached the record: $(ctxvault status --json 2>&1)"
    ctxvault status --json > "$TEST_TMP/record.json" 2> "$TEST_TMP/status.err"
    assert_status status 0 $?
    curl -s "$URL/status?format=json" > "$TEST_TMP/http.json"
    for f in "$TEST_TMP/record.json" "$TEST_TMP/http.json"; do
        get() { json_get "$1" < "$f"; }
        assertEquals "status" ok "$(get '$.status')"
        # capacity: the database and its WAL, of the filesystem holding it
        db_bytes=$(($(stat -c %s "$DB") + $(stat -c %s "$DB-wal" 2> /dev/null || echo 0)))
        used=$(get '$.capacity.used_bytes' | cut -d. -f1)
        total=$(get '$.capacity.total_bytes' | cut -d. -f1)
        free=$(get '$.capacity.free_bytes' | cut -d. -f1)
        pct=$(get '$.capacity.percent_used' | cut -d. -f1)
        fs_total=$(($(stat -f -c '%b * %S' "$DB")))
        assertTrue "used ($used) is the database's files ($db_bytes), give or take a commit" \
            "[ $used -gt 0 ] && [ $used -le $((db_bytes * 2 + 65536)) ]"
        assertEquals "total is the filesystem's size" "$fs_total" "$total"
        assertTrue "free ($free) below total ($total)" "[ $free -gt 0 ] && [ $free -lt $total ]"
        assertTrue "percent used ($pct) is (total - free) / total" \
            "[ $pct -ge 0 ] && [ $pct -le 100 ] && [ $((100 * (total - free) / total - pct)) -le 1 ]"
        assertEquals "limit" filesystem "$(get '$.capacity.limit')"
        # performance: averages since store started, queries over the window
        assertTrue "average write latency" "[ \"$(get '$.performance.avg_write_latency_ms')\" != '' ] && \
            awk 'BEGIN { exit !($(get '$.performance.avg_write_latency_ms') > 0) }'"
        assertTrue "average read latency" \
            "awk 'BEGIN { exit !($(get '$.performance.avg_read_latency_ms') > 0) }'"
        assertTrue "queries per second" \
            "awk 'BEGIN { exit !($(get '$.performance.queries_per_second') > 0) }'"
        # reliability: the backup, the verify, no sync
        backup=$(ctxvault-backup list 2> /dev/null | json_get '$[0].created_at')
        last=$(get '$.reliability.last_backup')
        assertEquals "last backup (to the second)" "$(echo "$backup" | cut -c1-19)" \
            "$(echo "$last" | cut -c1-19)"
        assertEquals "integrity" passed "$(get '$.reliability.integrity.result')"
        assertEquals "integrity's check" verify "$(get '$.reliability.integrity.check')"
        checked=$(get '$.reliability.integrity.checked_at')
        assertEquals "verify's time is the one kept in run/verify.json" \
            "$(json_get '$.at' < "$HOME_DIR/run/verify.json" | cut -c1-10)" \
            "$(date -d "$checked" +%s)"
        assertEquals "no sync: no rate" "" "$(get '$.reliability.sync_success_rate')"
        assertEquals "no sync: no last_sync" "" "$(get '$.meta.last_sync')"
        assert_grep "$f" '"sync": "sync is off'
        # security
        assertEquals "encryption" enabled "$(get '$.security.encryption')"
        made=$(ctxvault keys list 2> /dev/null | json_get '$[0].created')
        assertEquals "key made (to the second)" "$(echo "$made" | cut -c1-19)" \
            "$(get '$.security.last_key_rotation' | cut -c1-19)"
        assertEquals "no anomaly" 0 "$(get '$.security.anomaly.detected')"
        assertEquals "events counted for anomalies" "$stored" "$(get '$.security.anomaly.events' | cut -d. -f1)"
    done
    # the same as gauges, from the start
    assertEquals "ctxvault_storage_total_bytes" "$fs_total" \
        "$(sample ctxvault_storage_total_bytes | awk '{ printf "%.0f", $1 }')"
    for g in ctxvault_storage_used_bytes ctxvault_storage_free_bytes \
        ctxvault_storage_used_ratio ctxvault_key_created_timestamp_seconds; do
        assertTrue "$g is set" "awk 'BEGIN { exit !($(sample "$g") > 0) }'"
    done
    assertEquals "encryption gauge" 1 "$(sample ctxvault_encryption_enabled)"
    assertEquals "verify's check gauge" 1 "$(sample ctxvault_integrity_check_ok 'check="verify"')"
    assertEquals "store's start check gauge" 1 "$(sample ctxvault_integrity_check_ok 'check="start"')"
    assertTrue "commit latency observed" "[ $(sample ctxvault_commit_latency_seconds_count) -gt 0 ]"
    grep -q '^ctxvault_anomaly 0$' "$TEST_TMP/metrics.txt" || fail "no ctxvault_anomaly 0"
    for g in ctxvault_read_latency_average_seconds ctxvault_write_latency_average_seconds \
        ctxvault_queries_per_second ctxvault_events_rejected_window_ratio; do
        grep -q "^$g [0-9]" "$TEST_TMP/metrics.txt" || fail "no $g"
    done
    grep -q '^ctxvault_sync_success_overall_ratio' "$TEST_TMP/metrics.txt" &&
        fail "a sync ratio with sync off"
    # and for a terminal
    ctxvault status > "$TEST_TMP/status.txt" 2> "$TEST_TMP/status.err"
    assert_status status 0 $?
    assert_grep "$TEST_TMP/status.txt" '^capacity: [0-9.]+ MiB used; [0-9.]+% of [0-9.]+ MiB used'
    assert_grep "$TEST_TMP/status.txt" '^performance: read [0-9.]+ ms, write [0-9.]+ ms'
    assert_grep "$TEST_TMP/status.txt" '^reliability: last backup 20[0-9-]+T.*integrity passed \(verify, 20'
    assert_grep "$TEST_TMP/status.txt" '^security: encryption enabled; key made 20.*anomaly none'
    assert_grep "$TEST_TMP/status.txt" '^meta: last_sync unknown'
}

test_a_failed_verify_is_the_records_integrity_result() {
    metrics_start --expect "ctxvault-store"
    services_start
    ctxvault-ingest --timeout 30 "$DATA/sample.ndjson" > /dev/null 2>&1
    wait_until 5 sh -c "[ \"\$(ctxvault status --json 2> /dev/null | grep -c '\"check\": \"start\"')\" = 1 ]" ||
        fail "before any verify, store's start check stands: $(ctxvault status --json 2>&1)"
    kill -TERM "$STORE_PID" "$ENCRYPT_PID"
    wait "$STORE_PID" "$ENCRYPT_PID" 2> /dev/null
    # a row edited in place fails its checksum
    sql "UPDATE events SET body = replace(body, 'e', 'E') WHERE seq = 5" > /dev/null
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 65 $?
    assertEquals "the failure kept" 65 "$(json_get '$.status' < "$HOME_DIR/run/verify.json")"
    services_start
    wait_until 5 sh -c "ctxvault status --json 2> /dev/null | grep -q '\"result\": \"failed\"'" ||
        fail "the failed verify never reached the record: $(ctxvault status --json 2>&1)"
    assertEquals "its gauge" 0 "$(sample ctxvault_integrity_check_ok 'check="verify"')"
}

test_a_burst_of_rejections_raises_an_anomaly_until_the_window_passes() {
    conf_set anomaly_window 3s
    conf_set anomaly_min_events 10
    metrics_start --expect "ctxvault-store ctxvault-encrypt"
    services_start
    ctxvault-ingest --timeout 30 "$DATA/sample.ndjson" > /dev/null 2>&1
    wait_until 5 sh -c "curl -s '$URL/health' | grep -q '\"status\": \"ok\"'" ||
        fail "never ok: $(curl -s "$URL/health")"
    # a burst: 30 lines, none good (the 40 good ones may still be in the
    # window: 30 of 70 would not pass 50%, so a few more)
    for i in $(seq 60); do echo "not json $i"; done > "$TEST_TMP/burst.ndjson"
    ctxvault-ingest --timeout 30 "$TEST_TMP/burst.ndjson" > /dev/null 2>&1
    wait_until 5 sh -c "curl -s '$URL/health' | grep -q 'anomaly: '" ||
        fail "no anomaly after a burst of rejections: $(curl -s "$URL/health")"
    curl -s -o "$TEST_TMP/health.json" -w '%{http_code}' "$URL/health" > "$TEST_TMP/code"
    assertEquals "health answers 503" 503 "$(cat "$TEST_TMP/code")"
    assert_grep "$TEST_TMP/health.json" 'anomaly: [0-9]+ of [0-9]+ events \([0-9]+%\) rejected in the last 3 s \(threshold 50%\)'
    ctxvault status --json > "$TEST_TMP/record.json" 2> "$TEST_TMP/status.err"
    assert_status status 69 $?
    assertEquals "detected" 1 "$(json_get '$.security.anomaly.detected' < "$TEST_TMP/record.json")"
    assert_grep "$TEST_TMP/record.json" '"reason": "[0-9]+ of [0-9]+ events'
    assertEquals "the gauge" 1 "$(curl -s "$URL/metrics" | grep '^ctxvault_anomaly ' | cut -d' ' -f2)"
    # nothing rejected since: the window passes, the anomaly goes
    wait_until 10 sh -c "curl -s '$URL/health' | grep -q '\"status\": \"ok\"'" ||
        fail "the anomaly never cleared: $(curl -s "$URL/health")"
    assertEquals "the gauge after" 0 "$(curl -s "$URL/metrics" | grep '^ctxvault_anomaly ' | cut -d' ' -f2)"
    assertEquals "the record after" 0 "$(record '$.security.anomaly.detected')"
}

test_a_few_rejections_are_no_anomaly() {
    conf_set anomaly_window 3s
    metrics_start --expect "ctxvault-store ctxvault-encrypt"
    services_start
    # fewer events than anomaly_min_events (20), all rejected
    head -n 5 "$DATA/bad.ndjson" > "$TEST_TMP/few.ndjson"
    ctxvault-ingest --timeout 30 "$TEST_TMP/few.ndjson" > /dev/null 2>&1
    wait_until 5 sh -c "[ \"\$(ctxvault status --json 2> /dev/null | sed -n 's/.*\"rejected\": \\([0-9]*\\).*/\\1/p')\" -gt 0 ]" ||
        fail "the rejections were not counted: $(ctxvault status --json 2>&1)"
    assertEquals "no anomaly" 0 "$(record '$.security.anomaly.detected')"
    assertEquals "status" ok "$(record '$.status')"
}

test_anomaly_settings_are_checked() {
    conf_set anomaly_threshold 150%
    ctxvault config check > /dev/null 2> "$TEST_TMP/check.err"
    assert_status check 78 $?
    assert_grep "$TEST_TMP/check.err" "anomaly_threshold '150%' is not a percentage from 0% to 100%"
}

. shunit2
