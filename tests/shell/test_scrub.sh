#!/bin/sh
# test_scrub.sh - ctxvault-scrub: the shipped rules on generated events,
# completeness (verify --scrub), raw values gone from the file and the WAL,
# a dry run that changes nothing, idempotence, SIGKILL mid-run, rule
# errors that name their line, anonymous users scrubbed on arrival, and
# the service through a running store with an audit entry per batch.
# Time is injected with CTXVAULT_NOW (tests only).
SUITE=scrub
. "$CV_TOP/tests/shell/lib.sh"

T0=2026-08-01T00:00:00Z    # when the events arrive
LATER=2026-11-15T00:00:00Z # over 90 days on: every row is due

# long_policy: the shipped policy, but every kind kept a year, so rows
# outlive their 90-day scrub age (as audit rows and 365-day users do)
long_policy() {
    sed -E '/^\[retention\]/,/^\[/ s/^([a-z]+ *= *)[0-9]+d( up to .*)?$/\1365d/' \
        "$TOP/etc/policy.conf" > "$HOME_DIR/policy.conf"
}

# scrub TIME [ARGS...]: ctxvault-scrub --once at TIME; output in scrub.out
scrub() {
    _sc=$1
    shift
    CTXVAULT_NOW=$_sc ctxvault-scrub --once "$@" > "$TEST_TMP/scrub.out" 2> "$TEST_TMP/scrub.err"
}

due_at() {
    sql "SELECT count(*) FROM events WHERE scrubbed_at IS NULL AND scrub_after <= $(( $(date -d "$1" +%s) * 1000 ))"
}

# scrubbed: rows scrubbed (on arrival too: the generated anonymous users')
scrubbed() {
    sql 'SELECT count(*) FROM events WHERE scrubbed_at IS NOT NULL'
}

# bodies: every row's id, scrubbed_at and body, for comparing
bodies() {
    sql "SELECT id, scrubbed_at IS NOT NULL, body FROM events ORDER BY id" | sha256sum
}

test_the_shipped_rules_scrub_every_due_row_and_verify_says_so() {
    long_policy
    gen "$TEST_TMP/in.ndjson" -n 2000 -u 40 -s 11 --start "$T0"
    store_at "$T0" "$TEST_TMP/in.ndjson"
    due=$(due_at "$LATER")
    assertTrue "rows due ($due)" "[ $due -gt 500 ]"
    emails_before=$(sql "SELECT count(DISTINCT json_extract(body, '$.email')) FROM events WHERE scrub_after IS NOT NULL")
    ts_before=$(sql "SELECT sum(ts) FROM events WHERE scrubbed_at IS NULL AND scrub_after IS NOT NULL")
    CTXVAULT_NOW=$LATER ctxvault verify --scrub > "$TEST_TMP/verify.out" 2> "$TEST_TMP/verify.err"
    assert_status verify 65 $?
    assert_grep "$TEST_TMP/verify.err" "$due rows are past their scrub age but not scrubbed"

    scrub "$LATER"
    assert_status scrub 0 $?
    assertEquals "rows scrubbed, as reported" "$due" "$(json_get '$.scrubbed' < "$TEST_TMP/scrub.out")"
    assertEquals "backlog" 0 "$(json_get '$.backlog' < "$TEST_TMP/scrub.out")"
    assertEquals "rows due after the run" 0 "$(due_at "$LATER")"
    CTXVAULT_NOW=$LATER ctxvault verify --scrub > "$TEST_TMP/verify.out" 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    assert_grep "$TEST_TMP/verify.out" "scrub complete, $(scrubbed) scrubbed rows checked"

    # what the rules promise, on every scrubbed row
    s="FROM events WHERE scrubbed_at IS NOT NULL"
    assertEquals "coordinates left" 0 "$(sql "SELECT count(*) $s AND (json_extract(body, '$.location.lat') IS NOT NULL OR json_extract(body, '$.location.region') IS NOT NULL)")"
    assertTrue "cities kept" "[ $(sql "SELECT count(*) $s AND json_extract(body, '$.location.city') IS NOT NULL") -gt 0 ]"
    assertEquals "device names left" 0 "$(sql "SELECT count(*) $s AND json_extract(body, '$.device.name') IS NOT NULL")"
    assertEquals "sealed fields left" 0 "$(sql "SELECT count(*) $s AND body LIKE '%enc:%'")"
    assertEquals "display names left" 0 "$(sql "SELECT count(*) $s AND json_extract(body, '$.display_name') IS NOT NULL")"
    # the row's own ts stays (no "ts = round" in the shipped rules)
    assertEquals "row times" "$ts_before" "$(sql "SELECT sum(ts) FROM events WHERE scrubbed_at IS NOT NULL AND scrubbed_at != created_at")"
    assertEquals "plain identifiers left" 0 "$(sql "SELECT count(*) $s AND (json_extract(body, '$.email') NOT LIKE 'hash:%' OR json_extract(body, '$.device.device_id') NOT LIKE 'hash:%')")"
    # pseudonyms are stable: counts per person still come out the same
    assertEquals "distinct email pseudonyms" "$emails_before" \
        "$(sql "SELECT count(DISTINCT json_extract(body, '$.email')) FROM events WHERE scrub_after IS NOT NULL")"
    assertTrue "drop and generalise counted" \
        "[ $(json_get '$.fields_by_operator.drop' < "$TEST_TMP/scrub.out") -gt 0 ] &&
         [ $(json_get '$.fields_by_operator.generalise' < "$TEST_TMP/scrub.out") -gt 0 ]"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

test_a_ts_rule_takes_each_rows_time_and_schedule_to_the_hour() {
    long_policy
    printf 'ts = round\n' >> "$HOME_DIR/policy.conf"
    gen "$TEST_TMP/in.ndjson" -n 300 -u 10 -s 16 --start 2026-08-01T00:17:00Z
    store_at 2026-08-01T00:31:07.123Z "$TEST_TMP/in.ndjson"
    scrub "$LATER"
    assert_status scrub 0 $?
    s="FROM events WHERE scrubbed_at IS NOT NULL"
    assertTrue "rows scrubbed" "[ $(sql "SELECT count(*) $s") -gt 100 ]"
    assertEquals "times off the hour" 0 "$(sql "SELECT count(*) $s AND (ts % 3600000 != 0 OR created_at % 3600000 != 0 OR expires_at % 3600000 != 0 OR scrub_after % 3600000 != 0 OR json_extract(body, '$.ts') NOT LIKE '%:00:00.000Z')")"
    # queries by time see the hour
    u=$(sql "SELECT json_extract(body, '$.user_id') $s AND scrubbed_at != created_at LIMIT 1")
    assertTrue "a user to ask for" "[ -n '$u' ]"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

test_raw_values_of_scrubbed_rows_are_in_neither_the_file_nor_the_wal() {
    long_policy
    # an instance that stores emails as given: only the scrub removes them
    sed -i '0,/^\*\*\.email  *= hash email/s//**.email = keep/' "$HOME_DIR/policy.conf"
    for i in 1 2 3 4 5; do
        printf '{"kind":"interaction","user_id":"u%s","ts":"2026-08-01T09:15:0%s.000Z","email":"zed%s.unique@example.net","custom":{"colour":"vermilion-424%s"},"location":{"city":"Oslo","country":"NO","lat":59.9139,"lon":10.7522},"device":{"name":"Zed%s Phone"},"page":{"timestamp":"2026-08-01T10:23:4%s.678Z"}}\n' \
            "$i" "$i" "$i" "$i" "$i" "$i"
    done > "$TEST_TMP/in.ndjson"
    store_at "$T0" "$TEST_TMP/in.ndjson"
    assert_grep "$DB" 'zed1\.unique@example\.net' "the raw email should be stored before the scrub"
    serve_store || return
    pid=$SERVE_PID
    scrub "$LATER"
    assert_status scrub 0 $?
    assertEquals "rows scrubbed" 5 "$(json_get '$.scrubbed' < "$TEST_TMP/scrub.out")"
    for f in "$DB" "$DB-wal"; do
        [ -f "$f" ] || continue
        assert_no_grep "$f" 'unique@example|vermilion-424|Zed[0-9] Phone|59\.9|10\.75|10:23:4' \
            "$(basename "$f") should hold no raw value of a scrubbed row"
    done
    assertTrue "the WAL is there to grep" "[ -f '$DB-wal' ]"
    assertEquals "emails became pseudonyms" 5 "$(sql "SELECT count(*) FROM events WHERE json_extract(body, '$.email') LIKE 'hash:v1:%'")"
    kill -TERM "$pid"
    wait "$pid"
    assertEquals "store's exit status" 0 $?
}

test_a_dry_run_changes_nothing_byte_for_byte_and_reports_fields_per_kind() {
    long_policy
    gen "$TEST_TMP/in.ndjson" -n 500 -u 10 -s 12 --start "$T0"
    store_at "$T0" "$TEST_TMP/in.ndjson"
    before=$(cat "$DB" "$DB-wal" 2> /dev/null | sha256sum)
    CTXVAULT_NOW=$LATER ctxvault-scrub --dry-run > "$TEST_TMP/dry.out" 2> "$TEST_TMP/dry.err"
    assert_status dry 0 $?
    after=$(cat "$DB" "$DB-wal" 2> /dev/null | sha256sum)
    assertEquals "database and WAL bytes after a dry run" "$before" "$after"
    due=$(due_at "$LATER")
    assertEquals "would scrub" "$due" "$(json_get '$.would_scrub' < "$TEST_TMP/dry.out")"
    n=$(sql "SELECT count(*) FROM events WHERE kind = 'interaction' AND scrub_after IS NOT NULL AND scrubbed_at IS NULL")
    assertEquals "interaction rows" "$n" "$(json_get '$.by_kind.interaction.rows' < "$TEST_TMP/dry.out")"
    assertEquals "device.name: its operator" drop "$(json_get '$.by_kind.interaction.fields."device.name".op' < "$TEST_TMP/dry.out")"
    assertEquals "location: its operator" generalise "$(json_get '$.by_kind.interaction.fields.location.op' < "$TEST_TMP/dry.out")"
    # then the real run changes what the dry run said it would
    scrub "$LATER"
    assertEquals "scrubbed, as the dry run said" "$due" "$(json_get '$.scrubbed' < "$TEST_TMP/scrub.out")"
    assertEquals "fields, as the dry run said" "$(json_get '$.fields' < "$TEST_TMP/dry.out")" \
        "$(json_get '$.fields' < "$TEST_TMP/scrub.out")"
}

test_a_second_run_changes_nothing_and_rows_not_yet_due_stay() {
    long_policy
    gen "$TEST_TMP/in.ndjson" -n 400 -u 10 -s 13 --start "$T0"
    store_at "$T0" "$TEST_TMP/in.ndjson"
    # 1 ms before the first row's scrub age: nothing is due
    first=$(sql "SELECT min(scrub_after) FROM events WHERE scrubbed_at IS NULL")
    arrival=$(scrubbed)
    CTXVAULT_NOW=$((first - 1)) ctxvault-scrub --once > "$TEST_TMP/scrub.out" 2> "$TEST_TMP/scrub.err"
    assert_status scrub 0 $?
    assertEquals "scrubbed 1 ms before the first is due" 0 "$(json_get '$.scrubbed' < "$TEST_TMP/scrub.out")"
    assertEquals "rows scrubbed (on arrival only)" "$arrival" "$(scrubbed)"

    scrub "$LATER"
    assert_status scrub 0 $?
    once=$(bodies)
    audit=$(sql "SELECT count(*) FROM audit")
    scrub "$LATER"
    assert_status scrub 0 $?
    assertEquals "scrubbed by the second run" 0 "$(json_get '$.scrubbed' < "$TEST_TMP/scrub.out")"
    assertEquals "rows after the second run" "$once" "$(bodies)"
    assertEquals "audit entries after the second run" "$audit" "$(sql "SELECT count(*) FROM audit")"
}

test_scrub_killed_mid_run_leaves_each_row_whole_and_the_next_run_finishes() {
    long_policy
    gen "$TEST_TMP/in.ndjson" -n 20000 -u 50 -s 14 --start "$T0"
    store_at "$T0" "$TEST_TMP/in.ndjson"
    due=$(due_at "$LATER")
    arrival=$(scrubbed)
    sql "SELECT id, body FROM events WHERE scrub_after IS NOT NULL ORDER BY id" > "$TEST_TMP/orig.txt"
    CTXVAULT_NOW=$LATER ctxvault-scrub --once --batch 100 --pause 10ms > /dev/null 2> "$TEST_TMP/killed.err" &
    pid=$!
    bg_track "$pid"
    wait_until 30 sh -c "[ \$(sqlite3 '$DB' 'SELECT count(*) FROM events WHERE scrubbed_at IS NOT NULL') -gt $((arrival + 1000)) ]"
    kill -9 "$pid"
    wait "$pid" 2> /dev/null
    done_rows=$(($(scrubbed) - arrival))
    assertTrue "the kill came mid-run ($done_rows of $due)" "[ $done_rows -gt 0 ] && [ $done_rows -lt $due ]"
    # untouched rows are byte for byte what they were
    sql "SELECT id, body FROM events WHERE scrub_after IS NOT NULL AND scrubbed_at IS NULL ORDER BY id" > "$TEST_TMP/untouched.txt"
    assertEquals "untouched rows changed" "" "$(comm -13 "$TEST_TMP/orig.txt" "$TEST_TMP/untouched.txt" | head -c 300)"
    # scrubbed rows are fully scrubbed: the rules change none of them
    CTXVAULT_NOW=$LATER ctxvault verify --scrub > "$TEST_TMP/verify.out" 2> "$TEST_TMP/verify.err"
    assert_grep "$TEST_TMP/verify.out" ", 0 not fully scrubbed" "a row half scrubbed: $(head -c 400 "$TEST_TMP/verify.err")"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?

    scrub "$LATER"
    assert_status scrub 0 $?
    # a kill between the journal's write and the COMMIT leaves one batch
    # that the next run replays from the journal rather than scrubs again
    next=$(json_get '$.scrubbed' < "$TEST_TMP/scrub.out")
    assertTrue "the next run scrubbed $next of the $((due - done_rows)) left" \
        "[ $next -eq $((due - done_rows)) ] || { [ $next -eq $((due - done_rows - 100)) ] && grep -q 'replayed 1 batches' '$TEST_TMP/scrub.err'; }"
    assertEquals "every due row scrubbed once" "$((arrival + due))" "$(scrubbed)"
    CTXVAULT_NOW=$LATER ctxvault verify --scrub > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    ctxvault audit verify > /dev/null 2> "$TEST_TMP/audit.err"
    assert_status audit 0 $?
}

test_a_bad_rule_fails_config_check_and_scrub_refuses_to_start_naming_the_line() {
    cp "$TOP/etc/policy.conf" "$HOME_DIR/policy.conf"
    printf '[scrub fields interaction]\n**.a = vanish\n**..b = drop\n' >> "$HOME_DIR/policy.conf"
    line=$(grep -n 'vanish' "$HOME_DIR/policy.conf" | cut -d: -f1)
    ctxvault config check > /dev/null 2> "$TEST_TMP/check.err"
    assert_status check 78 $?
    assert_grep "$TEST_TMP/check.err" "policy\.conf:$line: unknown operator 'vanish'"
    assert_grep "$TEST_TMP/check.err" "policy\.conf:$((line + 1)): pattern '\*\*\.\.b' has an empty segment"
    CTXVAULT_NOW=$LATER ctxvault-scrub --interval 1s > "$TEST_TMP/scrub.out" 2> "$TEST_TMP/scrub.err"
    assert_status scrub 78 $?
    assert_grep "$TEST_TMP/scrub.err" "policy\.conf:$line: unknown operator 'vanish'"
    assert_grep "$TEST_TMP/scrub.err" "not scrubbing"
}

test_an_anonymous_users_rows_are_scrubbed_on_arrival() {
    {
        event 0 user-anon profile ',"privacy_level":"anonymous","display_name":"Ann Onymous"'
        event 1 user-anon interaction ',"custom":{"pet":"Whiskers-777"},"location":{"city":"Rome","country":"IT","lat":41.9028,"lon":12.4964},"device":{"name":"Anns Pixel"}'
        event 2 user-pub interaction ',"custom":{"pet":"Rex-888"},"device":{"os":"RexOS-888"}'
    } > "$TEST_TMP/in.ndjson"
    store_at 2026-11-01T00:00:05Z "$TEST_TMP/in.ndjson"
    anon=$(ctxvault query --user user-anon --limit 1 | json_get '$.user_id')
    # the profile stays the user's; the rest is anonymised too (test_levels)
    assertEquals "anonymous rows scrubbed on arrival" 2 \
        "$(sql "SELECT count(*) FROM events_v WHERE (user_id = '$anon' OR user_id LIKE 'anon:%') AND scrubbed_at = created_at")"
    assertEquals "other rows not scrubbed" 1 "$(sql "SELECT count(*) FROM events WHERE scrubbed_at IS NULL")"
    for f in "$DB" "$DB-wal"; do
        [ -f "$f" ] || continue
        assert_no_grep "$f" 'Whiskers-777|Anns Pixel|41\.9|Ann Onymous' "$(basename "$f") should hold no raw anonymous value"
    done
    assert_grep "$DB" 'RexOS-888' "a public user's clear data stays until its scrub age"
    CTXVAULT_NOW=2026-11-01T00:00:05Z ctxvault verify --scrub > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

test_the_service_scrubs_through_store_with_an_audit_entry_per_batch() {
    long_policy
    gen "$TEST_TMP/in.ndjson" -n 300 -u 10 -s 15 --start "$T0"
    store_at "$T0" "$TEST_TMP/in.ndjson"
    due=$(due_at "$LATER")
    all=$(($(scrubbed) + due))
    batches=$(( (due + 49) / 50 ))
    serve_store || return
    spid=$SERVE_PID
    CTXVAULT_NOW=$LATER ctxvault-scrub --interval 1s --batch 50 \
        > "$TEST_TMP/service.out" 2> "$TEST_TMP/service.err" &
    pid=$!
    bg_track "$pid"
    wait_until 20 sh -c "[ \$(sqlite3 '$DB' 'SELECT count(*) FROM events WHERE scrubbed_at IS NOT NULL') -eq $all ]" ||
        fail "the service did not scrub: $(cat "$TEST_TMP/service.err")"
    wait_until 10 grep -q '"scrubbed"' "$TEST_TMP/service.out"
    kill -TERM "$pid"
    wait "$pid"
    assertEquals "the service's exit status on SIGTERM" 0 $?
    assertEquals "audit entries, one per batch" "$batches" "$(sql "SELECT count(*) FROM audit WHERE action = 'scrub'")"
    assertEquals "rows in the audit entries" "$due" "$(sql "SELECT sum(rows) FROM audit WHERE action = 'scrub'")"
    sql "SELECT * FROM audit" > "$TEST_TMP/audit.rows"
    assert_no_grep "$TEST_TMP/audit.rows" 'user-0|example\.org|hash:v1' "the audit entries should hold no personal data"
    "$CV_BUILD/cvproduce" --ping --timeout 10 > "$TEST_TMP/ping.json" 2> /dev/null
    assertEquals "store's rows_scrubbed counter" "$due" "$(json_get '$.counters.rows_scrubbed' < "$TEST_TMP/ping.json")"
    ctxvault audit verify > /dev/null 2> "$TEST_TMP/audit.err"
    assert_status audit 0 $?
    kill -0 "$spid" || fail "store died"
}

. shunit2
