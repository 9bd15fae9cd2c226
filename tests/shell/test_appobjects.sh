#!/bin/sh
# test_appobjects.sh - events as applications write them: the storage
# requirements' TypeScript interfaces sent by a JavaScript app (camelCase,
# userId, timestamp in epoch ms, privacyLevel, dataRetentionDays, no kind),
# and field names in the spellings people use (snake_case, camelCase,
# kebab-case). Ingest maps applications' members to the canonical ones, the
# policy matches names however they are spelled, and deny by default seals
# every string no rule names: nothing personal reaches any file of the
# instance in clear (database, WAL, journal, spool, dead letters, backups,
# logs), while reads still give it back and non-personal members stay
# readable.
SUITE=appobjects
. "$CV_TOP/tests/shell/lib.sh"

CTXVAULT_BIN=$CV_BIN
export CTXVAULT_BIN
unset CTXVAULT_SUPERVISORD_CONF

# 2026-12-07T10:00:00Z, as JavaScript's Date.now() gives it
TS_RFC=2026-12-07T10:00:00Z
TS_MS=1796637600000
DAY_MS=86400000

# Three events as an application sends them.
EX_A='{"kind":"context","userId":"alice","timestamp":"2026-12-07T10:00:00Z","recentSearches":["hiv test clinic near me"]}'
EX_B='{"kind":"context","user_id":"alice","recentSearches":["hiv test clinic near me"],"recentVisits":["https://clinic.example/appointments"],"emailAddress":"alice@example.org","ipAddress":"81.2.69.160","deviceId":"dev-1234"}'
EX_C='{"kind":"profile","user_id":"alice","privacyLevel":"anonymous","dataRetentionDays":30}'

suite_tearDown() {
    sv_kill_all
}

# ---- helpers -----------------------------------------------------------------

# secrets_b FILE: the values of example (b), one a line (fixed strings)
secrets_b() {
    printf '%s\n' 'hiv test clinic' 'clinic.example' 'alice@example.org' \
        '81.2.69.160' 'dev-1234' > "$1"
}

# instance_files: every file of the instance but its keys (keyring,
# data keys, CURVE certificates) and the configuration `ctxvault init`
# wrote (ctxvault.conf, policy.conf: no program writes data there, and the
# policy's comments may quote examples), one a line
instance_files() {
    find "$HOME_DIR" -path "$HOME_DIR/keys" -prune -o -type f -print |
        grep -v -x -F -e "$HOME_DIR/ctxvault.conf" -e "$HOME_DIR/policy.conf" | sort
}

# assert_nowhere WHAT FIXED-FILE [ERE-FILE] [MORE FILES...]: no line of
# FIXED-FILE (fixed strings) nor of ERE-FILE (extended regexps; '-' or ''
# for none) is in any file of the instance (but keys) nor in MORE FILES,
# read as bytes; the files looked at are named in the failure
assert_nowhere() {
    _an_what=$1 _an_fixed=$2 _an_ere=${3:-}
    shift 2
    [ $# -gt 0 ] && shift
    assertTrue "no $_an_what to look for" "[ -s '$_an_fixed' ]"
    instance_files > "$TEST_TMP/files"
    for _f in "$@"; do [ -f "$_f" ] && echo "$_f" >> "$TEST_TMP/files"; done
    assertTrue "the instance holds a database" "grep -q '/data/ctxvault.db\$' '$TEST_TMP/files'"
    _an_hits=
    while IFS= read -r _f; do
        if grep -a -q -F -f "$_an_fixed" "$_f" 2> /dev/null; then
            _an_hits="$_an_hits
  $_f: $(grep -a -o -F -f "$_an_fixed" "$_f" | sort -u | head -n 5 | tr '\n' '|')"
        fi
        if [ -n "$_an_ere" ] && [ "$_an_ere" != - ] &&
            grep -a -q -E -f "$_an_ere" "$_f" 2> /dev/null; then
            _an_hits="$_an_hits
  $_f: $(grep -a -o -E -f "$_an_ere" "$_f" | sort -u | head -n 5 | tr '\n' '|')"
        fi
    done < "$TEST_TMP/files"
    [ -z "$_an_hits" ] ||
        fail "plaintext $_an_what on disk (of $(wc -l < "$TEST_TMP/files") files):$_an_hits"
}

# one_row_id: the id of the only row
one_row_id() {
    sql "SELECT id FROM events_v LIMIT 1"
}

# stop_serve: SIGTERM to the store started by serve_store; waits for it
stop_serve() {
    kill -TERM "$SERVE_PID" 2> /dev/null
    wait "$SERVE_PID" 2> /dev/null
}

# profile_of USER: `ctxvault profile get --user USER` from a store
# started for it; the reply in $TEST_TMP/profile.json
profile_of() {
    serve_store || return 1
    ctxvault profile get --user "$1" > "$TEST_TMP/profile.json" 2> "$TEST_TMP/profile.err"
    assert_status profile 0 $?
    stop_serve
}

# ---- 1. the three examples through the filter pipeline ----------------------

test_userId_and_rfc3339_timestamp_are_user_and_ts() {
    printf '%s\n' "$EX_A" > "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status encrypt 0 "$STATUS_ENCRYPT"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows" 1 "$(rows)"
    assertEquals "the row's ts (ms)" "$TS_MS" "$(sql 'SELECT ts FROM events_v')"
    ctxvault query --user alice > "$TEST_TMP/q.out" 2> "$TEST_TMP/q.err"
    assert_status q 0 $?
    assertEquals "events of alice" 1 "$(grep -c . "$TEST_TMP/q.out")"
    assert_grep "$TEST_TMP/q.out" "\"ts\":\"2026-12-07T10:00:00(\\.000)?Z\"" "ts should be the timestamp"
    assert_no_grep "$TEST_TMP/q.out" '"(userId|timestamp)":' "the applications' names should be rewritten"
    ctxvault get "$(one_row_id)" > "$TEST_TMP/get.out" 2> "$TEST_TMP/get.err"
    assert_status get 0 $?
    assertEquals "get: kind" context "$(json_get '$.kind' < "$TEST_TMP/get.out")"
    assert_grep "$TEST_TMP/get.out" '"user_id":"hash:' "user_id should be the pseudonym of alice"
}

test_epoch_ms_timestamp_is_ts() {
    printf '%s\n' "$EX_A" | sed "s/\"$TS_RFC\"/$TS_MS/" > "$TEST_TMP/in.ndjson"
    assert_grep "$TEST_TMP/in.ndjson" "\"timestamp\":$TS_MS," "the input should hold epoch ms"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "the row's ts (ms)" "$TS_MS" "$(sql 'SELECT ts FROM events_v')"
    ctxvault query --user alice > "$TEST_TMP/q.out" 2> "$TEST_TMP/q.err"
    assertEquals "events of alice" 1 "$(grep -c . "$TEST_TMP/q.out")"
    assert_grep "$TEST_TMP/q.out" "\"ts\":\"2026-12-07T10:00:00(\\.000)?Z\"" "ts should be the timestamp"
    assert_no_grep "$TEST_TMP/q.out" '"timestamp":' "timestamp should be rewritten to ts"
}

test_app_values_are_in_no_file_of_the_instance() {
    secrets_b "$TEST_TMP/secrets"
    # the example, and a line cut off mid-object holding the same values,
    # which ingest dead-letters
    { printf '%s\n' "$EX_B"
      printf '%s\n' "$EX_B" | sed 's/}$//'
    } > "$TEST_TMP/in.ndjson"
    protect "$TEST_TMP/in.ndjson" "$TEST_TMP/enc.ndjson"
    assertEquals "dead-letter records of ingest" 1 "$(dl_count ingest)"
    # store kept running, so its WAL holds the row
    store_start
    store_feed "$TEST_TMP/enc.ndjson"
    wait_until 30 rows_at_least 1 || fail "the store did not commit"
    mkdir "$TEST_TMP/live"
    cp "$DB" "$TEST_TMP/live/ctxvault.db"
    cp "$DB-wal" "$TEST_TMP/live/ctxvault.db-wal" 2> /dev/null
    store_close
    assertEquals "store exit status" 0 "$STATUS_BGSTORE"
    assertTrue "the live WAL is there" "[ -s '$TEST_TMP/live/ctxvault.db-wal' ]"
    assertTrue "grep reads the WAL (pseudonyms are in it)" \
        "grep -a -q 'hash:' '$TEST_TMP/live/ctxvault.db-wal'"
    ctxvault-backup create > "$TEST_TMP/backup.out" 2> "$TEST_TMP/backup.err"
    assert_status backup 0 $?
    assertNotNull "a backup in backups/" "$(find "$HOME_DIR/backups" -type f)"
    assertNotNull "a journal in journal/" "$(find "$HOME_DIR/journal" -type f)"
    assert_nowhere "value of example (b)" "$TEST_TMP/secrets" - \
        "$TEST_TMP/live/ctxvault.db" "$TEST_TMP/live/ctxvault.db-wal"
    # read back with the keys: sealed values decrypted, pseudonyms stay
    ctxvault query --user alice --decrypt > "$TEST_TMP/q.out" 2> "$TEST_TMP/q.err"
    assert_status q 0 $?
    assert_grep "$TEST_TMP/q.out" '"recentSearches":\["hiv test clinic near me"\]' "searches decrypted"
    assert_grep "$TEST_TMP/q.out" '"recentVisits":\["https://clinic.example/appointments"\]' "visits decrypted"
    for m in emailAddress ipAddress deviceId; do
        assert_grep "$TEST_TMP/q.out" "\"$m\":\"hash:" "$m should be a pseudonym"
    done
    ctxvault export --user alice --format json -o "$TEST_TMP/export.json" 2> "$TEST_TMP/export.err"
    assert_status export 0 $?
    assert_grep "$TEST_TMP/export.json" 'hiv test clinic near me' "export should decrypt"
    assert_grep "$TEST_TMP/export.json" '"emailAddress":{"pseudonym":"hash:' "export: email marked as a pseudonym"
    ctxvault query --user alice > "$TEST_TMP/q2.out" 2> /dev/null
    assert_no_grep "$TEST_TMP/q2.out" 'hiv test|clinic\.example|alice@|81\.2\.69|dev-1234' \
        "query without --decrypt shows plaintext"
    ctxvault deadletter --decrypt ingest > "$TEST_TMP/dl.out" 2> /dev/null
    assert_grep "$TEST_TMP/dl.out" 'hiv test clinic near me' "the dead letter gives the line back"
}

test_app_profile_sets_privacy_level_and_retention() {
    printf '%s\n' "$EX_C" > "$TEST_TMP/p.ndjson"
    pipeline "$TEST_TMP/p.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    # later rows of kinds kept longer than 30 days by the policy
    printf '%s\n' '{"kind":"replay","user_id":"alice","frames":120}' \
        '{"kind":"audit","userId":"alice","action":"login"}' > "$TEST_TMP/later.ndjson"
    pipeline "$TEST_TMP/later.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "later rows" 2 "$(rows "kind IN ('replay','audit')")"
    assertEquals "later rows expiring within 30 days of their ts" 2 \
        "$(rows "kind IN ('replay','audit') AND expires_at IS NOT NULL AND expires_at - ts <= 30 * $DAY_MS")"
    profile_of alice || return
    assertEquals "privacy level ($(cat "$TEST_TMP/profile.json"))" anonymous \
        "$(json_get '$.profile.privacy_level' < "$TEST_TMP/profile.json")"
    assertEquals "retention days" 30 "$(json_get '$.profile.retention_days' < "$TEST_TMP/profile.json")"
}

test_app_profile_retention_forever() {
    printf '%s\n' '{"kind":"profile","userId":"bob","timestamp":"2026-12-07T09:00:00Z","privacyLevel":"private","dataRetentionDays":30}' \
        > "$TEST_TMP/p1.ndjson"
    printf '%s\n' '{"kind":"profile","userId":"bob","timestamp":"2026-12-07T09:30:00Z","privacyLevel":"private","dataRetentionDays":"forever"}' \
        > "$TEST_TMP/p2.ndjson"
    pipeline "$TEST_TMP/p1.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    pipeline "$TEST_TMP/p2.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "profile rows" 2 "$(rows "kind = 'profile'")"
    # the profile in force is kept until erased; the 30-day one it
    # superseded as long as bob now says: forever
    assertEquals "expiry of the superseded 30-day profile (none)" "" \
        "$(sql "SELECT COALESCE(expires_at, '') FROM events_v WHERE ts = $((TS_MS - DAY_MS / 24))")"
    assertEquals "expiry of the 'forever' profile (none)" "" \
        "$(sql "SELECT COALESCE(expires_at, '') FROM events_v WHERE ts = $((TS_MS - DAY_MS / 48))")"
    assertEquals "rows at 09:30 (the 'forever' profile)" 1 "$(rows "ts = $((TS_MS - DAY_MS / 48))")"
    profile_of bob || return
    assertEquals "privacy level ($(cat "$TEST_TMP/profile.json"))" private \
        "$(json_get '$.profile.privacy_level' < "$TEST_TMP/profile.json")"
    assertEquals "retention: forever" forever \
        "$(json_get '$.profile.retention_days' < "$TEST_TMP/profile.json")"
}

# ---- 2. the same through the supervised pipeline -----------------------------

test_app_examples_through_the_supervised_pipeline() {
    secrets_b "$TEST_TMP/secrets"
    printf '%s\n' "$EX_A" "$EX_B" > "$TEST_TMP/ab.ndjson"
    printf '%s\n' "$EX_C" > "$TEST_TMP/c.ndjson"
    printf '%s\n' '{"kind":"replay","userId":"alice","frames":7}' > "$TEST_TMP/later.ndjson"
    sv_start || return
    ctxvault-ingest --timeout 60 "$TEST_TMP/ab.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    assertEquals "rows after (a) and (b)" 2 "$(sqlite3 -readonly "$DB" 'SELECT COUNT(*) FROM events')"
    assertEquals "(a)'s ts" 1 "$(sqlite3 -readonly "$DB" "SELECT COUNT(*) FROM events WHERE ts = $TS_MS")"
    ctxvault query --user alice --decrypt > "$TEST_TMP/q.out" 2> "$TEST_TMP/q.err"
    assert_status q 0 $?
    assertEquals "events of alice" 2 "$(grep -c . "$TEST_TMP/q.out")"
    assert_grep "$TEST_TMP/q.out" '"recentVisits":\["https://clinic.example/appointments"\]' "visits decrypted"
    assert_grep "$TEST_TMP/q.out" '"emailAddress":"hash:' "email as a pseudonym"
    # while everything runs: spool, live WAL, logs
    assert_nowhere "value of example (b), pipeline running" "$TEST_TMP/secrets"
    ctxvault-ingest --timeout 60 "$TEST_TMP/c.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    ctxvault-ingest --timeout 60 "$TEST_TMP/later.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    ctxvault profile get --user alice > "$TEST_TMP/profile.json" 2> "$TEST_TMP/profile.err"
    assert_status profile 0 $?
    assertEquals "privacy level ($(cat "$TEST_TMP/profile.json"))" anonymous \
        "$(json_get '$.profile.privacy_level' < "$TEST_TMP/profile.json")"
    assertEquals "retention days" 30 "$(json_get '$.profile.retention_days' < "$TEST_TMP/profile.json")"
    assertEquals "the later replay expires within 30 days" 1 \
        "$(sqlite3 -readonly "$DB" "SELECT COUNT(*) FROM events WHERE kind = 'replay' AND expires_at IS NOT NULL AND expires_at - ts <= 30 * $DAY_MS")"
    ctxvault-backup create > "$TEST_TMP/backup.out" 2> "$TEST_TMP/backup.err"
    assert_status backup 0 $?
    SUPERVISE_TIMEOUT=60 sh "$SUPERVISE" stop > "$TEST_TMP/stop.out" 2>&1
    assertEquals "every program exits 0 on SIGTERM: $(cat "$TEST_TMP/stop.out")" 0 $?
    assert_nowhere "value of example (b), pipeline stopped" "$TEST_TMP/secrets"
}

# ---- 3. the names people use, in three spellings ----------------------------

test_sensitive_names_in_three_spellings_are_sealed() {
    cat > "$TEST_TMP/in.ndjson" <<'EOF'
{"kind":"context","user_id":"sam","ssn":"900-11-1111","bank_account":"GB00CTXV11111111111111","salary":9876511,"medical_condition":"narcolepsy with cataplexy one","email_address":"snake.case@example.org","mac_address":"02:00:5e:11:11:11","note":"biopsy results friday one"}
{"kind":"context","userId":"sam","SSN":"900-22-2222","bankAccount":"GB00CTXV22222222222222","Salary":9876522,"medicalCondition":"narcolepsy with cataplexy two","emailAddress":"camel.case@example.org","macAddress":"02:00:5e:22:22:22","extraDetail":"biopsy results friday two"}
{"kind":"context","user_id":"sam","Ssn":"900-33-3333","bank-account":"GB00CTXV33333333333333","SALARY":9876533,"medical-condition":"narcolepsy with cataplexy three","email-address":"kebab.case@example.org","mac-address":"02:00:5e:33:33:33","free-form":"biopsy results friday three"}
EOF
    grep -o '"[^"]*":"[^"]*"' "$TEST_TMP/in.ndjson" | cut -d'"' -f4 |
        grep -v -x -E 'context|sam' > "$TEST_TMP/secrets"
    # salaries: numbers, bounded as JSON writes them (never inside base64)
    printf '%s\n' ':98765(11|22|33)[^0-9]' > "$TEST_TMP/numbers"
    assertEquals "values to look for" 18 "$(wc -l < "$TEST_TMP/secrets")"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status encrypt 0 "$STATUS_ENCRYPT"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows" 3 "$(rows)"
    assert_nowhere "ssn, bank account, salary, health, email, MAC or note" \
        "$TEST_TMP/secrets" "$TEST_TMP/numbers"
    # sealed, not lost: the keys give them back
    ctxvault query --user sam --decrypt > "$TEST_TMP/q.out" 2> "$TEST_TMP/q.err"
    assert_status q 0 $?
    for v in 900-11-1111 900-22-2222 900-33-3333 GB00CTXV22222222222222 9876533 \
        'narcolepsy with cataplexy two' 'biopsy results friday three'; do
        assert_grep "$TEST_TMP/q.out" "$v" "--decrypt should give $v back"
    done
}

# ---- 4. both spellings of one member ----------------------------------------

test_conflicting_spellings_are_rejected_alone() {
    data_clock
    {
        event 1 a context ',"topic":"first"'
        printf '%s\n' '{"kind":"context","userId":"a","user_id":"b"}'
        event 3 a context ',"topic":"third"'
    } > "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 65 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows: the lines around it" 2 "$(rows)"
    ctxvault query --user a > "$TEST_TMP/qa.out" 2> /dev/null
    assertEquals "events of a" 2 "$(grep -c . "$TEST_TMP/qa.out")"
    ctxvault query --user b > "$TEST_TMP/qb.out" 2> /dev/null
    assertEquals "events of b" 0 "$(grep -c . "$TEST_TMP/qb.out")"
    assert_grep "$TEST_TMP/ingest.err" 'in\.ndjson:2: .*(userId.*user_id|user_id.*userId)' \
        "the reason should name line 2 and both spellings"
    assertEquals "dead-letter records" 1 "$(dl_count ingest)"
    assertEquals "dead-letter line" 2 "$(dl_field ingest 1 '$.line')"
    dl_field ingest 1 '$.reason' > "$TEST_TMP/reason"
    assert_grep "$TEST_TMP/reason" 'userId' "the dead letter's reason names userId"
    assert_grep "$TEST_TMP/reason" 'user_id' "the dead letter's reason names user_id"
    assert_grep "$TEST_TMP/ingest.err" '1 of 3 lines rejected' "the summary counts it"
}

test_conflicting_spellings_are_counted_as_rejections() {
    metrics_start --expect ""
    services_start
    {
        event 1 a context ',"topic":"first"'
        printf '%s\n' '{"kind":"context","userId":"a","user_id":"b"}'
        printf '%s\n' '{"kind":"context","user_id":"a","timestamp":1796637600000,"ts":"2026-12-07T11:00:00Z"}'
        event 3 a context ',"topic":"third"'
    } > "$TEST_TMP/in.ndjson"
    ctxvault-ingest --timeout 30 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 65 $?
    assertEquals "rows" 2 "$(sqlite3 -readonly "$DB" 'SELECT COUNT(*) FROM events')"
    assertEquals "dead-letter records" 2 "$(dl_count ingest)"
    wait_until 10 eval '[ "$(metric_sum ctxvault_events_rejected_total "program=\"ctxvault-ingest\"")" = 2 ]' ||
        fail "ingest's rejected_total should be 2: $(curl -s "$URL/metrics" | grep rejected_total)"
}

test_both_spellings_with_the_same_value_are_accepted() {
    printf '%s\n' \
        '{"kind":"context","userId":"a","user_id":"a","timestamp":1796637600000,"ts":"2026-12-07T10:00:00Z","topic":"x"}' \
        > "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows" 1 "$(rows)"
    assertEquals "the row's ts" "$TS_MS" "$(sql 'SELECT ts FROM events_v')"
    ctxvault query --user a > "$TEST_TMP/q.out" 2> /dev/null
    assertEquals "events of a" 1 "$(grep -c . "$TEST_TMP/q.out")"
    assert_no_grep "$TEST_TMP/q.out" '"(userId|timestamp)":' "one canonical member each"
}

test_different_timestamps_in_both_spellings_are_rejected() {
    printf '%s\n' \
        '{"kind":"context","user_id":"a","timestamp":1796637600000,"ts":"2026-12-07T11:00:00Z"}' \
        > "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 65 "$STATUS_INGEST"
    assertEquals "rows" 0 "$(rows)"
    assert_grep "$TEST_TMP/ingest.err" 'in\.ndjson:1: .*(timestamp.*ts|ts.*timestamp)' \
        "the reason should name both spellings"
}

# ---- 5. objects without kind ------------------------------------------------

test_object_without_kind_is_rejected_without_kind_option() {
    printf '%s\n' '{"userId":"alice","recentSearches":["hiv test clinic near me"]}' > "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 65 "$STATUS_INGEST"
    assertEquals "rows" 0 "$(rows)"
    assert_grep "$TEST_TMP/ingest.err" 'in\.ndjson:1: .*kind.* missing' "the reason: kind is missing"
    assert_grep "$TEST_TMP/ingest.err" '--kind' "the reason should suggest --kind"
    assertEquals "dead-letter records" 1 "$(dl_count ingest)"
}

test_object_without_kind_is_accepted_with_kind_option() {
    printf '%s\n' '{"userId":"alice","recentSearches":["hiv test clinic near me"]}' > "$TEST_TMP/in.ndjson"
    pipeline --kind context "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "context rows" 1 "$(rows "kind = 'context'")"
    ctxvault query --user alice --decrypt > "$TEST_TMP/q.out" 2> /dev/null
    assert_grep "$TEST_TMP/q.out" '"kind":"context"' "the kind from --kind"
    assert_grep "$TEST_TMP/q.out" 'hiv test clinic near me' "stored, and decrypted"
}

test_generated_application_objects_are_stored_and_nothing_personal_in_clear() {
    gen "$TEST_TMP/profiles.ndjson" --app profile -n 200 -u 8 -s 51
    gen "$TEST_TMP/contexts.ndjson" --app context -n 200 -u 8 -s 52
    # identified users only: an anonymous user's contexts are stored under
    # pseudonyms of the day with ids of their own (test_levels.sh)
    sed -i 's/"privacyLevel":"anonymous"/"privacyLevel":"private"/' "$TEST_TMP/profiles.ndjson"
    assertEquals "objects with a kind in the input" 0 \
        "$(cat "$TEST_TMP/profiles.ndjson" "$TEST_TMP/contexts.ndjson" | grep -c '"kind"')"
    pipeline --kind profile "$TEST_TMP/profiles.ndjson"
    assert_status "ingest (profiles)" 0 "$STATUS_INGEST"
    assert_status "store (profiles)" 0 "$STATUS_STORE"
    pipeline --kind context "$TEST_TMP/contexts.ndjson"
    assert_status "ingest (contexts)" 0 "$STATUS_INGEST"
    assert_status "encrypt (contexts)" 0 "$STATUS_ENCRYPT"
    assert_status "store (contexts)" 0 "$STATUS_STORE"
    assertEquals "profile rows" 200 "$(rows "kind = 'profile'")"
    assertEquals "context rows" 200 "$(rows "kind = 'context'")"
    assertEquals "users" 8 "$(sql 'SELECT COUNT(DISTINCT user_id) FROM events_v')"
    # the contexts' UUIDs are their event ids
    grep -o '^{"id":"[^"]*"' "$TEST_TMP/contexts.ndjson" | cut -d'"' -f4 | sort > "$TEST_TMP/want"
    sql "SELECT id FROM events_v WHERE kind = 'context' ORDER BY id" > "$TEST_TMP/got"
    assertEquals "context ids" 200 "$(wc -l < "$TEST_TMP/got")"
    assertEquals "input ids not stored as the event id, or stored ids not in the input" "" \
        "$(comm -3 "$TEST_TMP/want" "$TEST_TMP/got" | head -n 5 | tr '\n' ' ')"
    # every search, email, IP, device id and device name
    {
        grep -o '"recentSearches":\[[^]]*\]' "$TEST_TMP/contexts.ndjson" |
            sed 's/^[^[]*\[//; s/\]$//' | tr ',' '\n' | tr -d '"'
        for m in emailAddress ipAddress deviceId deviceName; do
            grep -o "\"$m\":\"[^\"]*\"" "$TEST_TMP/contexts.ndjson" | cut -d'"' -f4
        done
    } | sort -u > "$TEST_TMP/secrets"
    assertTrue "health searches in the input" "grep -q -x 'hiv test clinic near me' '$TEST_TMP/secrets'"
    assertTrue "emails in the input" "grep -q '@example\.org\$' '$TEST_TMP/secrets'"
    assertTrue "device names in the input" "grep -q \"'s \" '$TEST_TMP/secrets'"
    assert_nowhere "search, email, IP, device id or device name" "$TEST_TMP/secrets"
}

# ---- 6. what is not personal stays readable ---------------------------------

test_non_personal_members_stay_readable() {
    printf '%s\n' \
        '{"kind":"context","userId":"alice","timestamp":1796637600000,"recentSearches":["hiv test clinic near me"],"userSegment":"tech-savvy","confidenceScore":0.87,"deviceInfo":{"os":"iOS 17.1","browser":"Safari","screenSize":"390x844","deviceId":"dev-1234"}}' \
        > "$TEST_TMP/ctx.ndjson"
    printf '%s\n' \
        '{"userId":"alice","privacyLevel":"private","dataRetentionDays":90,"language":"en-US","theme":"dark","timezone":"Europe/Berlin"}' \
        > "$TEST_TMP/prof.ndjson"
    pipeline --kind profile "$TEST_TMP/prof.ndjson"
    assert_status "ingest (profile)" 0 "$STATUS_INGEST"
    pipeline "$TEST_TMP/ctx.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    ctxvault query --user alice --kind context > "$TEST_TMP/c.out" 2> "$TEST_TMP/c.err"
    assert_status c 0 $?
    assertEquals "deviceInfo.os" "iOS 17.1" "$(json_get '$.deviceInfo.os' < "$TEST_TMP/c.out")"
    assertEquals "deviceInfo.browser" Safari "$(json_get '$.deviceInfo.browser' < "$TEST_TMP/c.out")"
    assertEquals "deviceInfo.screenSize" 390x844 "$(json_get '$.deviceInfo.screenSize' < "$TEST_TMP/c.out")"
    assertEquals "userSegment" tech-savvy "$(json_get '$.userSegment' < "$TEST_TMP/c.out")"
    assertEquals "confidenceScore" 0.87 "$(json_get '$.confidenceScore' < "$TEST_TMP/c.out")"
    assert_no_grep "$TEST_TMP/c.out" 'hiv test|dev-1234' "searches and device id must not be readable"
    assert_grep "$TEST_TMP/c.out" '"recentSearches":("enc:|\["enc:)' "recentSearches should be sealed"
    assert_grep "$TEST_TMP/c.out" '"deviceId":"hash:' "the device id should be a pseudonym"
    ctxvault query --user alice --kind profile > "$TEST_TMP/p.out" 2> "$TEST_TMP/p.err"
    assert_status p 0 $?
    assertEquals "language" en-US "$(json_get '$.language' < "$TEST_TMP/p.out")"
    assertEquals "theme" dark "$(json_get '$.theme' < "$TEST_TMP/p.out")"
    assertEquals "privacy_level" private "$(json_get '$.privacy_level' < "$TEST_TMP/p.out")"
    assertEquals "retention_days" 90 "$(json_get '$.retention_days' < "$TEST_TMP/p.out")"
}

# ---- the control socket takes application-shaped objects too -----------------------

test_control_socket_takes_application_objects() {
    serve_store || return
    printf '%s\n' '{"recentSearches":["hiv test clinic near me"],"emailAddress":"alice@example.org","ipAddress":"81.2.69.160","deviceId":"dev-1234","recentVisits":["https://clinic.example/appointments"]}' |
        ctxvault context save --user alice --name app > "$TEST_TMP/save.out" 2> "$TEST_TMP/save.err"
    assert_status save 0 $?
    api '{"op":"profile.set","user":"alice","privacyLevel":"private","dataRetentionDays":30}'
    assertEquals "profile.set with the applications' names ($REPLY $(cat "$TEST_TMP/api.err"))" 0 "$STATUS_API"
    ctxvault profile get --user alice > "$TEST_TMP/profile.json" 2> "$TEST_TMP/profile.err"
    assert_status profile 0 $?
    assertEquals "privacy level ($(cat "$TEST_TMP/profile.json"))" private \
        "$(json_get '$.profile.privacy_level' < "$TEST_TMP/profile.json")"
    assertEquals "retention days" 30 "$(json_get '$.profile.retention_days' < "$TEST_TMP/profile.json")"
    stop_serve
    assertEquals "context rows" 1 "$(rows "kind = 'context'")"
    secrets_b "$TEST_TMP/secrets"
    assert_nowhere "value saved through context.save" "$TEST_TMP/secrets"
}

# ---- one rule per word: twins are named -------------------------------------

test_config_check_warns_on_two_rules_for_the_same_fields() {
    printf '**.deviceID = drop\n' >> "$HOME_DIR/policy.conf"
    n=$(wc -l < "$HOME_DIR/policy.conf")
    ctxvault config check > "$TEST_TMP/check.out" 2> "$TEST_TMP/check.err"
    assert_status "config check (a warning is no error)" 0 $?
    assert_grep "$TEST_TMP/check.err" "policy.conf:$n: pattern '\*\*\.deviceID' names the same fields as '\*\*\.device_id'" \
        "the warning names the file, the line and the rule that wins"
    # and the rule that wins is the first: a device id is still hashed
    printf '%s\n' '{"kind":"context","userId":"bob","deviceId":"dev-5678"}' |
        ctxvault-ingest --stdout 2> /dev/null | ctxvault-encrypt 2> /dev/null > "$TEST_TMP/enc.ndjson"
    assert_grep "$TEST_TMP/enc.ndjson" '"deviceId":"hash:' "the first rule applies"
}

. shunit2
