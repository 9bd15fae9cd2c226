#!/bin/sh
# test_quota.sh - [storage] quota: at the threshold store archives the
# oldest whole days itself (ctxvault-backup archive, verified) and runs
# quota_notify; at the quota it commits nothing more, the client waits
# with its events spooled and `ctxvault status` names the quota; once the
# quota is raised (and store restarted) every event is stored exactly once.
SUITE=quota
. "$CV_TOP/tests/shell/lib.sh"

suite_setUp() {
    conf_set resend 200ms
    conf_set batch_size 200
    metrics_start --expect "ctxvault-store ctxvault-encrypt"
}

# days FROM TO COUNT: COUNT events on each day from FROM days ago to TO
# days ago, the oldest first (about 1 KiB of database a row)
days() {
    for _d in $(seq "$1" -1 "$2"); do
        "$GEN" -n "$3" -s "$_d" -u 20 \
            --start "$(date -u -d "$_d days ago" +%Y-%m-%dT00:00:00Z)"
    done
}

# notifier STATUS: quota_notify appends its stdin to notify.ndjson and
# exits STATUS
notifier() {
    printf 'cat >> "%s"\nexit %s\n' "$TEST_TMP/notify.ndjson" "$1" > "$TEST_TMP/notify.sh"
    conf_set quota_notify "sh $TEST_TMP/notify.sh"
}

# ratio_under MAX: store's reported ratio is above 0 and under MAX
ratio_under() {
    _r=$(sample ctxvault_storage_quota_ratio)
    awk "BEGIN { exit !(${_r:-0} > 0 && ${_r:-0} < $1) }"
}

# used: the bytes the database's pages in use take, as store counts them
used() {
    sql "SELECT (SELECT page_count FROM pragma_page_count) - (SELECT freelist_count FROM pragma_freelist_count)" |
        awk -v s="$(sql 'PRAGMA page_size')" '{ print $1 * s }'
}

below() {
    [ "$(used)" -lt "$1" ]
}

# archives_done: store started an archive, and each it started has ended
archives_done() {
    _started=$(grep -c 'archiving rows older than' "$TEST_TMP/store.err")
    [ "$_started" -gt 0 ] &&
        [ "$(grep -c 'archive done' "$TEST_TMP/store.err")" -eq "$_started" ]
}

test_store_archives_the_oldest_days_at_the_threshold_and_notifies() {
    # threshold 1.5 MiB of a 3 MiB quota: 1200 events of four old days
    # (about 1.3 MB) stay under it, 600 of a later day cross it
    conf_set quota 3MiB
    conf_set quota_threshold 50%
    conf_set quota_keep 1d
    notifier 0
    days 6 3 300 > "$TEST_TMP/old.ndjson"
    days 2 2 600 > "$TEST_TMP/new.ndjson"
    services_start
    ctxvault-ingest --timeout 120 "$TEST_TMP/old.ndjson" > /dev/null 2> "$TEST_TMP/client.err"
    assert_status client 0 $?
    assert_no_grep "$TEST_TMP/store.err" 'archiving' "no archive under the threshold"
    ctxvault-ingest --timeout 120 "$TEST_TMP/new.ndjson" > /dev/null 2> "$TEST_TMP/client.err"
    assert_status client 0 $?
    wait_until 60 archives_done || fail "no archive ended: $(tail -c 800 "$TEST_TMP/store.err")"
    wait_until 30 below 1572864 || fail "usage stayed at $(used) bytes"
    wait_until 10 sh -c "curl -s '$URL/metrics' | grep -q '^ctxvault_storage_quota_archives_total{[^}]*} [1-9]'" ||
        fail "no archive counted: $(curl -s "$URL/metrics" | grep storage_)"
    assertEquals "quota metric" 3145728 "$(sample ctxvault_storage_quota_bytes)"
    wait_until 10 ratio_under 0.5 || fail "ratio not under the threshold: $(sample ctxvault_storage_quota_ratio)"
    wait_until 10 sh -c "ctxvault status > '$TEST_TMP/status.txt'" ||
        fail "health not ok after the archive: $(cat "$TEST_TMP/status.txt")"
    left=$(rows)
    assertTrue "some rows archived, some left ($left)" "[ $left -gt 0 ] && [ $left -lt 1800 ]"
    # the oldest went: no archivable row older than the last cut is left
    ctxvault-backup list --archives > "$TEST_TMP/archives.json"
    narch=$(json_q "json_array_length(j)" < "$TEST_TMP/archives.json")
    assertTrue "archives made ($narch)" "[ '$narch' -ge 1 ]"
    cut=$(sed -n 's/.*archiving rows older than \([^ ]*\) .*/\1/p' "$TEST_TMP/store.err" | tail -n 1)
    cut_ms=$(( $(date -u -d "$cut" +%s) * 1000 ))
    now_ms=$(( $(date -u +%s) * 1000 ))
    assertEquals "archivable rows older than $cut left" 0 \
        "$(rows "ts < $cut_ms AND (expires_at IS NULL OR expires_at > $now_ms)")"
    # the notice: the event, the sizes, no personal data
    assert_grep "$TEST_TMP/notify.ndjson" '"event":"archive".*"quota_bytes":3145728.*"older_than":"'
    assert_no_grep "$TEST_TMP/notify.ndjson" 'user-0|@example|"user'
    assert_grep "$TEST_TMP/store.err" 'storage quota: [0-9]+ of 3145728 bytes used \(50% threshold\); archiving rows older than'
    # every event exactly once: the archives put back, all 2000 are there
    for a in $(json_q "(SELECT group_concat(json_extract(value, '$.path'), ' ') FROM json_each(j))" < "$TEST_TMP/archives.json"); do
        ctxvault-backup restore --archive "$a" > /dev/null 2> "$TEST_TMP/restore.err"
        assert_status restore 0 $?
    done
    assertEquals "rows with the archives put back" 1800 "$(rows)"
    assertEquals "distinct ids" 1800 "$(distinct_ids)"
    kill -TERM "$STORE_PID" "$ENCRYPT_PID"
    wait "$STORE_PID"
    assert_status store 0 $?
    wait "$ENCRYPT_PID"
}

# quota_waits: status exits 69 naming the quota, and the client's spool
# holds events
quota_waits() {
    ctxvault status > "$TEST_TMP/status.txt" 2>&1
    [ $? -eq 69 ] &&
        grep -q -E 'ctxvault-store: .*quota reached: [0-9]+ of 1048576 bytes; nothing old enough to archive' "$TEST_TMP/status.txt" &&
        grep -q -E 'ctxvault-ingest .*spooled [1-9]' "$TEST_TMP/status.txt"
}

test_at_the_quota_events_wait_in_the_spool_and_are_stored_once_when_it_is_raised() {
    # 1 MiB holds about 900 of the 2000 events, all younger than
    # quota_keep (7 days): nothing can be archived
    conf_set quota 1MiB
    notifier 3
    for d in 0 1 2 3; do
        "$GEN" -n 500 -s $((d + 10)) -u 20 --start "$(date -u -d "$d days ago" +%Y-%m-%dT00:00:00Z)"
    done > "$TEST_TMP/in.ndjson"
    services_start
    ctxvault-ingest --timeout 120 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/client.err" &
    CLIENT=$!
    bg_track "$CLIENT"
    wait_until 60 quota_waits || fail "status does not name the quota: $(cat "$TEST_TMP/status.txt")"
    assert_grep "$TEST_TMP/store.err" 'cannot commit to .*: quota reached: [0-9]+ of 1048576 bytes'
    full=$(rows)
    assertTrue "some stored, not all ($full)" "[ $full -gt 0 ] && [ $full -lt 2000 ]"
    assertTrue "the database stays within its quota ($(used))" "[ $(used) -le 1048576 ]"
    assertTrue "the client waits" "kill -0 $CLIENT"
    wait_until 10 sh -c "curl -s '$URL/metrics' | grep -q '^ctxvault_storage_quota_notify_failures_total{[^}]*} [1-9]'" ||
        fail "failed notify commands not counted: $(curl -s "$URL/metrics" | grep storage_)"
    assert_grep "$TEST_TMP/notify.ndjson" '"event":"nothing_to_archive"'
    assert_grep "$TEST_TMP/notify.ndjson" '"event":"quota_reached".*"used_bytes":[0-9]+'
    assert_grep "$TEST_TMP/store.err" "quota_notify .* failed \(exit status 3\)"
    # what is committed: within a batch (about 200 KB here) of the quota
    ratio=$(sample ctxvault_storage_quota_ratio)
    assertTrue "ratio near the quota ($ratio)" "awk 'BEGIN { exit !($ratio > 0.75 && $ratio <= 1) }'"
    assertEquals "nothing archived" 0 "$(ls "$HOME_DIR/archives" 2> /dev/null | wc -l)"
    # room again: a larger quota, store restarted
    conf_set quota 8MiB
    kill -TERM "$STORE_PID"
    wait "$STORE_PID"
    assert_status store 0 $?
    ctxvault-store --serve 2> "$TEST_TMP/store2.err" &
    STORE_PID=$!
    bg_track "$STORE_PID"
    wait "$CLIENT"
    assert_status client 0 $?
    assertEquals "rows" 2000 "$(rows)"
    assertEquals "distinct ids" 2000 "$(distinct_ids)"
    assertEquals "spool segments left" 0 "$(find "$HOME_DIR/spool" -name '*.seg' | wc -l)"
    wait_until 30 sh -c "ctxvault status > '$TEST_TMP/status.txt'" ||
        fail "health not ok again: $(cat "$TEST_TMP/status.txt")"
    kill -TERM "$STORE_PID" "$ENCRYPT_PID"
    wait "$STORE_PID"
    assert_status store 0 $?
    wait "$ENCRYPT_PID"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

test_the_quota_settings_are_checked() {
    printf '[storage]\nquota = 1KiB\nquota_threshold = 120%%\nquota_keep = soon\n' > "$TEST_TMP/bad.conf"
    ctxvault -c "$TEST_TMP/bad.conf" config check > /dev/null 2> "$TEST_TMP/check.err"
    assertEquals "config check's exit status" 78 $?
    assert_grep "$TEST_TMP/check.err" "quota '1KiB' is not off or a size from 64KiB up"
    assert_grep "$TEST_TMP/check.err" "quota_threshold '120%' is not a percentage from 1% to 99%"
    assert_grep "$TEST_TMP/check.err" "quota_keep 'soon' is not a duration"
}

. shunit2
