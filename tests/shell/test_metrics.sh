#!/bin/sh
# test_metrics.sh - ctxvault-metrics: the programs' reports over real
# ZeroMQ sockets, served over real HTTP: Prometheus text with the figures
# the pipeline did, every rejection counted by reason, health that turns
# degraded when a service goes silent (kill -9) or stops, the reports of
# commands (sweep, backup), the status page and the textfile.
SUITE=metrics
. "$CV_TOP/tests/shell/lib.sh"

suite_tearDown() {
    sv_kill_all
}

# settled WANT NAME [LABELS-REGEX]: the sample once it equals WANT, or as
# it is after 5 s (a service reports every 200 ms here)
settled() {
    _want=$1
    shift
    wait_until 5 sh -c "[ \"\$(curl -s '$URL/metrics' | grep '^$1{' | grep -E -- '${2:-.}' | head -n 1 | sed 's/.* //')\" = '$_want' ]"
    sample "$@"
}

# sum NAME [LABELS-REGEX]: the sum of the samples of NAME that match
sum() {
    curl -s "$URL/metrics" > "$TEST_TMP/metrics.txt"
    grep "^$1{" "$TEST_TMP/metrics.txt" | grep -E -- "${2:-.}" |
        awk '{ s += $NF } END { printf "%d", s }'
}

test_the_pipelines_figures_are_served_as_prometheus_text() {
    metrics_start --expect "ctxvault-store ctxvault-encrypt"
    services_start
    cp "$DATA/bad.ndjson" "$TEST_TMP/in.ndjson"
    ctxvault-ingest --timeout 30 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/client.err"
    assert_status client 65 $?
    stored=$(rows)
    bad=$(ctxvault deadletter ingest 2> /dev/null | grep -c .)
    assertTrue "rows stored ($stored) and lines rejected ($bad)" "[ $stored -gt 0 ] && [ $bad -gt 0 ]"
    wait_until 5 sh -c "curl -s '$URL/metrics' | grep -q '^ctxvault_events_stored_total{program=\"ctxvault-store\",mode=\"service\"} $stored\$'" ||
        fail "store's count never reached $stored: $(grep stored_total "$TEST_TMP/metrics.txt")"
    assertEquals "rejected by ingest, all reasons" "$bad" \
        "$(sum ctxvault_events_rejected_total 'program="ctxvault-ingest"')"
    assertEquals "dead-lettered by ingest" "$bad" \
        "$(sum ctxvault_events_deadlettered_total 'program="ctxvault-ingest"')"
    for reason in invalid_json bad_field too_deep nul_byte bad_utf8 bad_timestamp; do
        assertTrue "a rejection counted as $reason" \
            "[ $(sum ctxvault_events_rejected_total "reason=\"$reason\"") -gt 0 ]"
    done
    assertEquals "no rejection left unclassified" 0 \
        "$(sum ctxvault_events_rejected_total 'reason="invalid_event"')"
    assertEquals "acknowledgements the client got" "$stored" \
        "$(sample ctxvault_acks_total 'program="ctxvault-ingest".*kind="ack"')"
    assertEquals "acknowledgement latencies observed" "$stored" \
        "$(sample ctxvault_ack_latency_seconds_count 'program="ctxvault-ingest"')"
    assertEquals "events encrypt passed on" "$stored" \
        "$(settled "$stored" ctxvault_events_forwarded_total 'program="ctxvault-encrypt"')"
    # the format: every sample's metric has HELP and TYPE, names are
    # ctxvault_ with units, counters end in _total
    grep -v '^#' "$TEST_TMP/metrics.txt" | sed 's/[{ ].*//; s/_bucket$//; s/_sum$//; s/_count$//' |
        sort -u > "$TEST_TMP/names"
    while read -r n; do
        grep -q "^# TYPE $n " "$TEST_TMP/metrics.txt" || fail "$n has no TYPE line"
        grep -q "^# HELP $n " "$TEST_TMP/metrics.txt" || fail "$n has no HELP line"
        case $n in ctxvault_*) ;; *) fail "$n is not ctxvault_" ;; esac
    done < "$TEST_TMP/names"
    grep '^# TYPE .* counter$' "$TEST_TMP/metrics.txt" | awk '{ print $3 }' |
        grep -v '_total$' > "$TEST_TMP/bad_counters"
    assertEquals "counters without _total: $(cat "$TEST_TMP/bad_counters")" 0 \
        "$(grep -c . "$TEST_TMP/bad_counters")"
    assertEquals "the histogram's +Inf bucket is its count" \
        "$(sample ctxvault_ack_latency_seconds_bucket 'le="\+Inf"')" \
        "$(sample ctxvault_ack_latency_seconds_count)"
    curl -s -o /dev/null -w '%{http_code}' "$URL/health" > "$TEST_TMP/code"
    assertEquals "health while all report" 200 "$(cat "$TEST_TMP/code")"
    ctxvault status > "$TEST_TMP/status.txt" 2> "$TEST_TMP/status.err"
    assert_status "ctxvault status" 0 $?
    assert_grep "$TEST_TMP/status.txt" '^ctxvault: ok'
    assert_grep "$TEST_TMP/status.txt" "^ctxvault-store +service +up, .*stored $stored"
    assert_grep "$TEST_TMP/status.txt" '^ctxvault-ingest +command +done, .*spooled 0'
}

test_store_counts_requests_by_the_ops_of_its_table_each_from_0() {
    metrics_start --expect "ctxvault-store"
    services_start
    wait_until 5 sh -c "curl -s '$URL/metrics' | grep -q '^ctxvault_requests_total{.*op=\"other\"}'" ||
        fail "store's requests never reported: $(curl -s "$URL/metrics" | grep requests_total)"
    curl -s "$URL/metrics" | grep '^ctxvault_requests_total{' > "$TEST_TMP/before"
    ctxvault-store --ops | cut -f1 > "$TEST_TMP/ops"
    assertTrue "ctxvault-store --ops lists the ops" "[ -s '$TEST_TMP/ops' ]"
    while read -r op; do
        grep -q "^ctxvault_requests_total{program=\"ctxvault-store\",mode=\"service\",op=\"$op\"} 0\$" \
            "$TEST_TMP/before" || fail "no series at 0 for $op: $(grep "op=\"$op\"" "$TEST_TMP/before")"
    done < "$TEST_TMP/ops"
    assertEquals "a series per op and one for the rest, no more" \
        $(($(grep -c . "$TEST_TMP/ops") + 1)) "$(grep -c . "$TEST_TMP/before")"
    api '{"op":"db.size"}'
    api '{"op":"db.size"}'
    api '{"op":"no.such.op"}'
    assertEquals "db.size counted under its op" 2 \
        "$(settled 2 ctxvault_requests_total 'op="db.size"')"
    assertEquals "an unknown op under other, not its name" 1 \
        "$(settled 1 ctxvault_requests_total 'op="other"')"
    assertNull "no series for the unknown op's name" \
        "$(curl -s "$URL/metrics" | grep '^ctxvault_requests_total{.*no\.such')"
    assertEquals "stats not asked" 0 "$(sample ctxvault_requests_total 'op="stats"')"
}

test_health_turns_degraded_when_a_service_goes_silent_or_stops() {
    metrics_start --expect "ctxvault-store ctxvault-encrypt"
    services_start
    wait_until 5 sh -c "curl -s '$URL/health' | grep -q '\"status\": \"ok\"'" ||
        fail "never ok: $(curl -s "$URL/health")"
    kill -9 "$ENCRYPT_PID"
    wait "$ENCRYPT_PID" 2> /dev/null
    wait_until 5 sh -c "curl -s '$URL/health' | grep -q 'ctxvault-encrypt has not reported for'" ||
        fail "a killed encrypt was not noticed: $(curl -s "$URL/health")"
    curl -s -o "$TEST_TMP/health.json" -w '%{http_code}' "$URL/health" > "$TEST_TMP/code"
    assertEquals "health answers 503 when degraded" 503 "$(cat "$TEST_TMP/code")"
    assertEquals "status" degraded "$(json_get '$.status' < "$TEST_TMP/health.json")"
    assertEquals "encrypt's up" 0 "$(sample ctxvault_up 'program="ctxvault-encrypt"')"
    assertEquals "store's up" 1 "$(sample ctxvault_up 'program="ctxvault-store"')"
    kill -TERM "$STORE_PID"
    wait "$STORE_PID" 2> /dev/null
    wait_until 5 sh -c "curl -s '$URL/health' | grep -q 'ctxvault-store has stopped'" ||
        fail "a stopped store was not noticed: $(curl -s "$URL/health")"
    ctxvault status > "$TEST_TMP/status.txt" 2> "$TEST_TMP/status.err"
    assert_status "ctxvault status when degraded" 69 $?
    assert_grep "$TEST_TMP/status.txt" '^ctxvault: degraded'
    assert_grep "$TEST_TMP/status.txt" '^ctxvault-store +service +down'
    assert_grep "$TEST_TMP/status.txt" '! ctxvault-encrypt has not reported for'
    kill -TERM "$METRICS_PID"
    wait "$METRICS_PID"
    assert_status "metrics after SIGTERM" 0 $?
    ctxvault status > /dev/null 2> "$TEST_TMP/status.err"
    assert_status "ctxvault status with no collector" 69 $?
    assert_grep "$TEST_TMP/status.err" 'no ctxvault-metrics answers'
}

test_a_service_that_never_reported_degrades_health() {
    metrics_start --expect "ctxvault-store ctxvault-scrub"
    services_start
    # (encrypt reports too: not expected, it is listed but never degrades)
    wait_until 5 sh -c "curl -s '$URL/health' | grep -A1 '\"ctxvault-store\"' | grep -q '\"state\": \"ok\"'" ||
        fail "store never reported: $(curl -s "$URL/health")"
    curl -s "$URL/health" > "$TEST_TMP/health.json"
    assertEquals "store is fine" ok "$(json_get '$.programs."ctxvault-store".state' < "$TEST_TMP/health.json")"
    assertEquals "encrypt, not expected, is listed" ok \
        "$(json_get '$.programs."ctxvault-encrypt".state' < "$TEST_TMP/health.json")"
    assertEquals "a missing scrub is not" "ctxvault-scrub has not reported" \
        "$(json_get '$.reasons[0]' < "$TEST_TMP/health.json")"
    assertEquals "status" degraded "$(json_get '$.status' < "$TEST_TMP/health.json")"
}

test_commands_report_what_they_did_sweep_scrub_and_backup() {
    metrics_start --expect ""
    gen "$TEST_TMP/in.ndjson" -n 1000 -s 92 -u 20
    store_at 2026-11-01T02:00:00Z "$TEST_TMP/in.ndjson"
    CTXVAULT_NOW=2027-06-01T00:00:00Z ctxvault-ttl-sweep --once > "$TEST_TMP/sweep.out" 2> /dev/null
    assert_status sweep 0 $?
    deleted=$(json_get '$.deleted' < "$TEST_TMP/sweep.out")
    assertTrue "the sweep deleted rows ($deleted)" "[ $deleted -gt 0 ]"
    wait_until 5 sh -c "curl -s '$URL/metrics' | grep -q '^ctxvault_ttl_records_deleted_total{program=\"ctxvault-ttl-sweep\",mode=\"command\"} $deleted\$'" ||
        fail "the sweep's report: $(grep ttl "$TEST_TMP/metrics.txt")"
    assertEquals "backlog after the sweep" 0 "$(sample ctxvault_ttl_records_expired)"
    assertEquals "sweeps timed" 1 "$(sample ctxvault_ttl_cleanup_duration_seconds_count)"
    ctxvault-backup create > "$TEST_TMP/create.out" 2> /dev/null
    assert_status create 0 $?
    bytes=$(json_get '$.bytes' < "$TEST_TMP/create.out")
    wait_until 5 sh -c "curl -s '$URL/metrics' | grep -q '^ctxvault_backup_size_bytes{.*} $bytes\$'" ||
        fail "the backup's report: $(grep backup "$TEST_TMP/metrics.txt")"
    ts=$(sample ctxvault_backup_last_success_timestamp_seconds | cut -d. -f1)
    assertTrue "the last good backup's time ($ts) is now" "[ $(( $(date +%s) - ts )) -lt 60 ]"
    b=$(json_get '$.path' < "$TEST_TMP/create.out")
    flip_byte "$b" $(( $(stat -c %s "$b") / 2 ))
    ctxvault-backup verify > /dev/null 2>&1
    assert_status verify 65 $?
    wait_until 5 sh -c "curl -s '$URL/metrics' | grep -q '^ctxvault_backup_verification_failures_total{.*} 1\$'" ||
        fail "a failed verification was not counted: $(grep backup "$TEST_TMP/metrics.txt")"
}

test_a_textfile_is_kept_for_node_exporter() {
    metrics_start --expect ctxvault-store --textfile "$TEST_TMP/ctxvault.prom"
    services_start
    wait_until 5 grep -qs '^ctxvault_up{program="ctxvault-store",mode="service"} 1' "$TEST_TMP/ctxvault.prom" ||
        fail "no textfile: $(cat "$TEST_TMP/ctxvault.prom" 2>&1 | head -n 5)"
    assertEquals "the textfile is world-readable for the exporter" 644 "$(stat -c %a "$TEST_TMP/ctxvault.prom")"
    assertEquals "no temporary file left beside it" 0 "$(ls "$TEST_TMP" | grep -c 'ctxvault.prom.')"
}

test_programs_never_wait_for_metrics_and_a_bad_listen_is_refused() {
    # nothing collects: store, encrypt and a client go on as ever
    services_start
    gen "$TEST_TMP/in.ndjson" -n 500 -s 91 -u 20
    ctxvault-ingest --timeout 30 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/client.err"
    assert_status client 0 $?
    assertEquals "rows with no collector" 500 "$(rows)"
    ctxvault-metrics --listen nowhere > /dev/null 2> "$TEST_TMP/bad.err"
    assert_status "metrics with a bad --listen" 78 $?
    assert_grep "$TEST_TMP/bad.err" "listen 'nowhere' is not ADDRESS:PORT"
    # a port another process listens on: the holder picks it itself, so no
    # other process can take it in between (a port merely in TIME_WAIT
    # would let metrics bind, and run)
    python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(30)" \
        > "$TEST_TMP/held" &
    holder=$!
    bg_track "$holder"
    wait_until 5 test -s "$TEST_TMP/held" || fail "the port holder did not start"
    port=$(cat "$TEST_TMP/held")
    timeout 10 ctxvault-metrics --listen "127.0.0.1:$port" > /dev/null 2> "$TEST_TMP/busy.err"
    assert_status "metrics on a busy port" 69 $?
    assert_grep "$TEST_TMP/busy.err" "cannot listen on 127.0.0.1:$port"
}

# Every path that drops or rejects data, and the counter that says so
# (OPERATIONS.md lists them): a line ingest rejects, an event encrypt or
# store rejects, a malformed message at encrypt or store, bytes a crash
# left half-written in the spool.
test_every_drop_and_rejection_is_counted_with_its_reason() {
    metrics_start --expect ""
    services_start
    # ingest: the bad-input corpus
    ctxvault-ingest --timeout 30 "$DATA/bad.ndjson" > /dev/null 2>&1
    bad=$(ctxvault deadletter ingest 2> /dev/null | grep -c .)
    wait_until 5 sh -c "[ \"\$(curl -s '$URL/metrics' | grep '^ctxvault_events_rejected_total{program=\"ctxvault-ingest\"' | awk '{ s += \$NF } END { print s + 0 }')\" = $bad ]" ||
        fail "ingest's rejections: $(grep rejected "$TEST_TMP/metrics.txt")"
    # encrypt and store: events sent past ingest (cvsend), and garbage
    gen "$TEST_TMP/in.ndjson" -n 10 -s 93 -u 5
    ctxvault-ingest --stdout "$TEST_TMP/in.ndjson" > "$TEST_TMP/ok.ndjson" 2> /dev/null
    printf '%s\n' '{"id":"rej-store-1","kind":"interaction","user_id":"u1"}' \
        '{"id":"rej-encrypt-1","kind":"interaction","user_id":"u1","ts":"2026-11-01T00:00:00Z","a":1,"a":2}' \
        >> "$TEST_TMP/ok.ndjson"
    "$CV_BUILD/cvsend" --timeout 20 --garbage 6 "$TEST_TMP/ok.ndjson" > /dev/null 2>&1
    ctxvault-encrypt < "$TEST_TMP/ok.ndjson" 2> /dev/null | head -n 10 > "$TEST_TMP/enc.ndjson"
    "$CV_BUILD/cvsend" --timeout 20 --garbage 3 --to store "$TEST_TMP/enc.ndjson" > /dev/null 2>&1
    wait_until 5 sh -c "curl -s '$URL/metrics' | grep -q '^ctxvault_messages_malformed_total{program=\"ctxvault-store\",mode=\"service\"} 3\$'" ||
        fail "store's malformed messages: $(grep malformed "$TEST_TMP/metrics.txt")"
    assertEquals "encrypt's malformed messages" 6 \
        "$(settled 6 ctxvault_messages_malformed_total 'program="ctxvault-encrypt"')"
    assertEquals "encrypt's rejection" 1 \
        "$(settled 1 ctxvault_events_rejected_total 'program="ctxvault-encrypt".*reason="duplicate_key"')"
    assertEquals "store's rejection" 1 \
        "$(settled 1 ctxvault_events_rejected_total 'program="ctxvault-store".*reason="bad_timestamp"')"
    assertEquals "encrypt's dead letters" 1 \
        "$(settled 1 ctxvault_events_deadlettered_total 'program="ctxvault-encrypt"')"
    # the spool: a client interrupted with events unacknowledged, then
    # bytes a crash would leave half-written at the end of its segment
    kill -TERM "$ENCRYPT_PID"
    wait "$ENCRYPT_PID" 2> /dev/null
    gen "$TEST_TMP/more.ndjson" -n 50 -s 94 -u 5
    ctxvault-ingest --source torn --timeout 1 "$TEST_TMP/more.ndjson" > /dev/null 2>&1
    assert_status "client with encrypt stopped" 75 $?
    seg=$(ls "$HOME_DIR/spool/torn/"*.seg | tail -n 1)
    printf 'half a record!' >> "$seg"
    ctxvault-encrypt --serve 2> "$TEST_TMP/encrypt2.err" &
    bg_track $!
    : > "$TEST_TMP/none.ndjson"
    ctxvault-ingest --source torn --timeout 30 "$TEST_TMP/none.ndjson" > /dev/null 2>&1
    assert_status "client replaying the spool" 0 $?
    wait_until 5 sh -c "curl -s '$URL/metrics' | grep -q '^ctxvault_spool_bytes_dropped_total{program=\"ctxvault-ingest\",mode=\"command\"} 14\$'" ||
        fail "the spool's dropped bytes: $(grep dropped "$TEST_TMP/metrics.txt")"
}

# every metric of the catalogue that a running program owns is served from
# its start, at 0 until it moves: rate() and absence alerts need the series
# before the first event
test_a_fresh_supervised_pipeline_serves_every_metric_at_0() {
    CTXVAULT_BIN=$CV_BIN
    export CTXVAULT_BIN
    unset CTXVAULT_SUPERVISORD_CONF
    conf_set report_interval 200ms
    PORT=$(free_port)
    URL=http://127.0.0.1:$PORT
    conf_set listen "127.0.0.1:$PORT"
    sv_start || return
    ctxvault-metrics --list > "$TEST_TMP/list"
    for p in store ingest encrypt ttl-sweep scrub backup; do
        wait_until 30 sh -c "curl -s '$URL/metrics' | grep -q '^ctxvault_up{program=\"ctxvault-$p\",mode=\"service\"} 1\$'" ||
            fail "ctxvault-$p never reported"
    done
    curl -s "$URL/metrics" > "$TEST_TMP/metrics.txt"
    assertEquals "no event yet" 0 "$(rows)"
    grep -o '^ctxvault_up{program="[a-z-]*"' "$TEST_TMP/metrics.txt" |
        sed 's/.*="//; s/"$//' > "$TEST_TMP/up"
    checked=0
    while read -r name type owners help; do
        for p in $(echo "$owners" | tr , ' '); do
            grep -qx "$p" "$TEST_TMP/up" || continue
            checked=$((checked + 1))
            case $type in histogram) series=${name}_count ;; *) series=$name ;; esac
            grep -q "^$series{program=\"$p\",mode=\"service\"[,}]" "$TEST_TMP/metrics.txt" ||
                fail "$p does not serve $name before its first event"
        done
    done < "$TEST_TMP/list"
    assertTrue "the catalogue's metrics were checked ($checked)" "[ $checked -ge 80 ]"
    for name in ctxvault_wal_checkpoints_total ctxvault_ttl_records_deleted_total \
        ctxvault_ttl_records_expired ctxvault_pii_fields_scrubbed_total \
        ctxvault_recovery_attempts_total ctxvault_pii_scrubbing_duration_seconds_count \
        ctxvault_ttl_cleanup_duration_seconds_count ctxvault_wal_checkpoint_duration_seconds_count; do
        grep -q "^$name{" "$TEST_TMP/metrics.txt" || fail "$name is not served"
    done
    assertEquals "no crash to recover from: recovery attempts" 0 \
        "$(sample ctxvault_recovery_attempts_total 'program="ctxvault-store"')"
    assertEquals "no row deleted yet" 0 \
        "$(sample ctxvault_ttl_records_deleted_total 'program="ctxvault-ttl-sweep"')"
    assertEquals "no rejection yet" 0 "$(metric_sum ctxvault_events_rejected_total .)"
    sv_kill_all
}

test_the_grafana_dashboard_queries_only_metrics_ctxvault_exports() {
    ctxvault-metrics --list > "$TEST_TMP/list"
    assert_status "ctxvault-metrics --list" 0 $?
    json_q "(SELECT group_concat(t.value, char(10)) FROM json_tree(j) t WHERE t.key = 'expr')" \
        < "$TOP/etc/grafana-dashboard.json" > "$TEST_TMP/exprs"
    grep -o 'ctxvault_[a-z_]*' "$TEST_TMP/exprs" | sed 's/_bucket$//; s/_sum$//; s/_count$//' |
        sort -u > "$TEST_TMP/queried"
    assertTrue "the dashboard queries metrics" "[ $(grep -c . "$TEST_TMP/queried") -ge 15 ]"
    while read -r name; do
        grep -q "^$name " "$TEST_TMP/list" || fail "the dashboard queries $name, which ctxvault does not export"
    done < "$TEST_TMP/queried"
    # it shows rates, latency, spool depth, retention backlog and backup age
    for want in ctxvault_events_stored_total ctxvault_ack_latency_seconds \
        ctxvault_spool_events ctxvault_ttl_records_expired \
        ctxvault_backup_last_success_timestamp_seconds; do
        grep -q "^$want\$" "$TEST_TMP/queried" || fail "the dashboard does not show $want"
    done
}

. shunit2
