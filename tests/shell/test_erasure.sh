#!/bin/sh
# test_erasure.sh - the user's rights and the audit trail: `ctxvault
# delete` leaves no trace of the user in the database file or its WAL,
# with or without a running store; `ctxvault rectify` corrects a field
# under the field policy and a fresh checksum; every change is in the
# hash-chained audit trail, and a changed or removed entry is detected.
SUITE=erasure
. "$CV_TOP/tests/shell/lib.sh"

# store_sample: the 40 sample events of 5 users (user-00002 is anonymous,
# so scrubbed on arrival: nothing of theirs is sealed)
store_sample() {
    pipeline "$DATA/sample.ndjson"
    assert_status store 0 "$STATUS_STORE"
}

# traces_of U FILE: what identifies user U in the stored rows (their
# pseudonym and every sealed value of theirs) into FILE, one per line
traces_of() {
    ctxvault query --user "$1" --limit 100000 > "$TEST_TMP/rows.ndjson"
    grep -o -E '"(hash|enc):(v[0-9]+|d[A-Za-z0-9_-]{16}):[^"]*"' "$TEST_TMP/rows.ndjson" | tr -d '"' | sort -u > "$2.all"
    # a pseudonym shared with other users (a device name) is not theirs alone
    ctxvault query --user "$1" --limit 1 | json_get '$.user_id' > "$2"
    grep '^enc:' "$2.all" >> "$2"
}

# assert_gone FILE: no line of FILE appears in the database or its WAL
assert_gone() {
    for f in "$DB" "$DB-wal"; do
        [ -f "$f" ] || continue
        if grep -a -q -F -f "$1" "$f"; then
            fail "$(basename "$f") still holds $(grep -a -o -F -f "$1" "$f" | head -n 3 | tr '\n' ' ')"
        fi
    done
    assertTrue "$(wc -l < "$1") traces checked" "[ $(wc -l < "$1") -ge 2 ]"
}

erase_and_check() {
    traces_of user-00001 "$TEST_TMP/traces"
    n=$(grep -c . "$TEST_TMP/rows.ndjson")
    others=$(rows)
    # the traces really are in the files before
    assertTrue "the user's pseudonym is in the database before" \
        "cat '$DB' '$DB-wal' 2> /dev/null | grep -a -q -F -f '$TEST_TMP/traces'"
    ctxvault delete --user user-00001 > "$TEST_TMP/delete.out" 2> "$TEST_TMP/delete.err"
    assert_status delete 0 $?
    assertEquals "rows deleted, as reported" "$n" "$(json_get '$.deleted' < "$TEST_TMP/delete.out")"
    assertEquals "rows left" "$((others - n))" "$(rows)"
    assertEquals "the user's rows" 0 "$(ctxvault query --user user-00001 | grep -c .)"
    assertEquals "the user's number" 0 "$(sql "SELECT count(*) FROM users WHERE user_id = '$(head -n 1 "$TEST_TMP/traces")'")"
    assert_gone "$TEST_TMP/traces"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

test_delete_leaves_no_trace_in_the_file_or_the_wal() {
    store_sample
    erase_and_check
}

test_delete_through_the_running_store_leaves_no_trace() {
    data_clock 2026-11-01T00:30:00Z # the sample's ephemeral users too
    store_sample
    serve_store || return
    pid=$SERVE_PID
    erase_and_check
    # store forgot the user's number: new events of theirs are stored afresh
    event 1 user-00001 > "$TEST_TMP/again.ndjson"
    ctxvault-ingest --timeout 20 "$TEST_TMP/again.ndjson" 2> "$TEST_TMP/again.err" &
    ipid=$!
    ctxvault-encrypt --serve 2> "$TEST_TMP/encrypt.err" &
    epid=$!
    bg_track "$epid"
    wait "$ipid"
    assert_status again 0 $?
    assertEquals "the user's rows after a new event" 1 "$(ctxvault query --user user-00001 | grep -c .)"
    kill -TERM "$pid" "$epid"
    wait "$pid"
    assertEquals "store's exit status" 0 $?
}

test_delete_is_audited_without_personal_data() {
    data_clock 2026-11-01T00:30:00Z # the sample's ephemeral users too
    store_sample
    traces_of user-00003 "$TEST_TMP/traces"
    ctxvault delete --user user-00003 > /dev/null 2>&1
    ctxvault audit list > "$TEST_TMP/audit.ndjson"
    assertEquals "audit entries" 1 "$(grep -c . "$TEST_TMP/audit.ndjson")"
    assertEquals "action" erase "$(json_get '$.action' < "$TEST_TMP/audit.ndjson")"
    assertEquals "rows" "$(grep -c . "$TEST_TMP/rows.ndjson")" "$(json_get '$.rows' < "$TEST_TMP/audit.ndjson")"
    assert_grep "$TEST_TMP/audit.ndjson" '"subject":"hash:v1:' "the subject should be a pseudonym"
    assert_grep "$TEST_TMP/audit.ndjson" '"actor":"[^"]+"' "the entry should say who asked"
    assert_no_grep "$TEST_TMP/audit.ndjson" 'user-00003' "the entry should not hold the user id"
    assert_no_grep "$TEST_TMP/audit.ndjson" "$(head -n 1 "$TEST_TMP/traces")" \
        "the entry should not hold the pseudonym the rows were stored under"
    sql "SELECT * FROM audit" > "$TEST_TMP/audit.rows"
    assert_no_grep "$TEST_TMP/audit.rows" 'user-00003|example\.org' "the audit table should hold no personal data"
}

stop_store() {
    kill "$SERVE_PID" 2> /dev/null
    wait "$SERVE_PID" 2> /dev/null
}

# notifier: a notify program that writes its stdin to $TEST_TMP/N.json
# and its argument count to N.argc, N counting its runs from 1, then exits
# with the status in $TEST_TMP/notify.exit (so a running store need not
# be restarted to see it fail)
notifier() {
    echo 0 > "$TEST_TMP/notify.exit"
    cat > "$TEST_TMP/notify.sh" <<EOF
#!/bin/sh
n=\$(( \$(cat "$TEST_TMP/notify.runs" 2> /dev/null || echo 0) + 1 ))
echo "\$n" > "$TEST_TMP/notify.runs"
echo "\$#" > "$TEST_TMP/\$n.argc"
cat > "$TEST_TMP/\$n.json"
exit \$(cat "$TEST_TMP/notify.exit")
EOF
    chmod +x "$TEST_TMP/notify.sh"
}

test_delete_returns_a_receipt_and_runs_the_notify_program() {
    store_sample
    notifier
    conf_set notify "$TEST_TMP/notify.sh"
    metrics_start
    serve_store || return
    n=$(ctxvault query --user user-00001 --limit 100000 | grep -c .)
    kinds=$(sql "SELECT json_group_object(kind, c) FROM (SELECT kind, count(*) c FROM events_v
                 WHERE user_id = '$(ctxvault query --user user-00001 --limit 1 | json_get '$.user_id')'
                 GROUP BY kind ORDER BY kind)")
    before=$(date -u +%s)
    ctxvault delete --user user-00001 > "$TEST_TMP/receipt.out" 2> "$TEST_TMP/delete.err"
    assert_status delete 0 $?
    r=$TEST_TMP/receipt.out
    assertEquals "rows" "$n" "$(json_get '$.deleted' < "$r")"
    assertEquals "rows by kind" "$kinds" "$(json_get '$.by_kind' < "$r")"
    assertEquals "the key destroyed, printed" 1 "$(json_get '$.key_destroyed' < "$r")"
    assertEquals "the audit entry" "$(sql "SELECT seq FROM audit WHERE action = 'erase'")" \
        "$(json_get '$.audit_id' < "$r")"
    done_at=$(json_get '$.completed_at' < "$r")
    assertTrue "completed_at is RFC 3339 ($done_at)" \
        "echo '$done_at' | grep -q -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$'"
    assertTrue "and now" "[ $(date -u -d "$done_at" +%s) -ge $before ]"
    assertEquals "the profile row" 1 "$(json_get '$.profiles' < "$r")"
    assertEquals "notified" ok "$(json_get '$.notify' < "$r")"
    # the program got the receipt on stdin, and no argument
    assertEquals "no argument" 0 "$(cat "$TEST_TMP/1.argc")"
    assertEquals "its receipt's audit entry" "$(json_get '$.audit_id' < "$r")" \
        "$(json_get '$.audit_id' < "$TEST_TMP/1.json")"
    assertEquals "its receipt's rows" "$n" "$(json_get '$.deleted' < "$TEST_TMP/1.json")"
    assertEquals "its receipt's time" "$done_at" "$(json_get '$.completed_at' < "$TEST_TMP/1.json")"
    # a failing program: logged and counted, the erasure stands
    echo 3 > "$TEST_TMP/notify.exit"
    ctxvault delete --user user-00003 > "$r" 2> "$TEST_TMP/delete.err"
    assert_status "delete with a failing notify" 0 $?
    assertEquals "notify failed" failed "$(json_get '$.notify' < "$r")"
    assertEquals "the user is gone all the same" 0 "$(ctxvault query --user user-00003 | grep -c .)"
    assertEquals "it ran" 2 "$(cat "$TEST_TMP/notify.runs")"
    assert_grep "$TEST_TMP/serve.err" 'notification failed: .*notify.sh failed with exit status 3'
    wait_until 5 eval '[ "$(sample ctxvault_erasure_notify_failures_total)" = 1 ]' ||
        fail "the failure counted: $(grep notify "$TEST_TMP/metrics.txt")"
    # with no store, ctxvault runs the erasure and the program itself
    stop_store
    echo 0 > "$TEST_TMP/notify.exit"
    ctxvault delete --user user-00004 > "$r" 2> "$TEST_TMP/delete.err"
    assert_status "delete without a store" 0 $?
    assertEquals "notified without a store" ok "$(json_get '$.notify' < "$r")"
    assertEquals "its receipt" "$(json_get '$.audit_id' < "$r")" "$(json_get '$.audit_id' < "$TEST_TMP/3.json")"
}

test_delete_of_an_unknown_user_exits_66() {
    store_sample
    ctxvault delete --user nobody-here > /dev/null 2> "$TEST_TMP/delete.err"
    assert_status delete 66 $?
    assert_grep "$TEST_TMP/delete.err" 'no data held about user nobody-here'
    assertEquals "rows" 40 "$(rows)"
}

test_rectify_corrects_a_field_under_the_policy_and_a_new_checksum() {
    data_clock 2026-11-01T00:30:00Z # the sample's ephemeral users too
    store_sample
    id=$(ctxvault query --user user-00004 --kind profile --limit 1 | json_get '$.id')
    ctxvault rectify "$id" --set 'display_name=Corrected, "Name"' --set email=fixed@example.net \
        --set preferences.theme=dark > "$TEST_TMP/rectify.out" 2> "$TEST_TMP/rectify.err"
    assert_status rectify 0 $?
    ctxvault get "$id" --decrypt > "$TEST_TMP/plain.json"
    ctxvault get "$id" > "$TEST_TMP/stored.json"
    assertEquals "display_name, decrypted" 'Corrected, "Name"' "$(json_get '$.display_name' < "$TEST_TMP/plain.json")"
    assertEquals "preferences.theme" dark "$(json_get '$.preferences.theme' < "$TEST_TMP/plain.json")"
    assert_grep "$TEST_TMP/stored.json" '"display_name":"enc:d' "display_name should be stored encrypted"
    assert_grep "$TEST_TMP/stored.json" '"email":"hash:d' "email should be stored as a pseudonym"
    assert_no_grep "$DB" 'fixed@example\.net|Corrected, ' "the plain values should not be in the file"
    [ -f "$DB-wal" ] && assert_no_grep "$DB-wal" 'fixed@example\.net|Corrected, ' "the plain values should not be in the WAL"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    ctxvault audit list > "$TEST_TMP/audit.ndjson"
    assert_grep "$TEST_TMP/audit.ndjson" '"action":"rectify"'
    assert_grep "$TEST_TMP/audit.ndjson" '"fields":\["display_name","email","preferences.theme"\]'
    assert_no_grep "$TEST_TMP/audit.ndjson" 'fixed@example|Corrected' "the audit entry should not hold the values"
}

test_rectify_refuses_reserved_fields_and_unknown_ids() {
    store_sample
    id=$(sql 'SELECT id FROM events LIMIT 1')
    before=$(sql "SELECT body FROM events WHERE id = '$id'")
    ctxvault rectify "$id" --set ts=2020-01-01T00:00:00Z > /dev/null 2> "$TEST_TMP/rectify.err"
    assert_status rectify 65 $?
    assert_grep "$TEST_TMP/rectify.err" "'ts' cannot be rectified"
    assertEquals "body after a refused rectification" "$before" "$(sql "SELECT body FROM events WHERE id = '$id'")"
    ctxvault rectify no-such-id --set a=1 > /dev/null 2> "$TEST_TMP/rectify.err"
    assert_status rectify 66 $?
    ctxvault rectify "$id" > /dev/null 2> "$TEST_TMP/rectify.err"
    assert_status rectify 64 $?
}

# three audited changes, for the tamper tests
three_entries() {
    store_sample
    for u in user-00001 user-00002 user-00003; do
        ctxvault delete --user "$u" > /dev/null 2>&1 || fail "delete $u failed"
    done
    ctxvault audit verify > "$TEST_TMP/verify.out" 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    assertEquals "entries" 3 "$(json_get '$.audit_entries' < "$TEST_TMP/verify.out")"
}

test_a_changed_audit_entry_is_detected() {
    three_entries
    sql "UPDATE audit SET rows = rows + 1 WHERE seq = 2"
    ctxvault audit verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 65 $?
    assert_grep "$TEST_TMP/verify.err" 'audit entry 2: its mac does not match'
    # the operator's one check covers the trail too
    ctxvault verify > "$TEST_TMP/verify.out" 2> "$TEST_TMP/verify.err"
    assert_status verify 65 $?
    assert_grep "$TEST_TMP/verify.out" 'audit trail BROKEN'
}

test_a_removed_audit_entry_is_detected() {
    three_entries
    sql "DELETE FROM audit WHERE seq = 2"
    ctxvault audit verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 65 $?
    assert_grep "$TEST_TMP/verify.err" 'entries 2 to 2 are missing'
}

test_a_removed_last_audit_entry_is_detected() {
    three_entries
    sql "DELETE FROM audit WHERE seq = 3"
    ctxvault audit verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 65 $?
    assert_grep "$TEST_TMP/verify.err" 'entries at the end were removed'
}

test_expired_audit_entries_leave_an_intact_chain() {
    three_entries
    # a year and a day on, all three go; a new sweep entry starts from them
    CTXVAULT_NOW=$(date -u -d '+366 days' +%Y-%m-%dT%H:%M:%SZ) ctxvault-ttl-sweep --once > "$TEST_TMP/sweep.out" 2> "$TEST_TMP/sweep.err"
    assert_status sweep 0 $?
    assertEquals "audit entries expired" 3 "$(json_get '$.audit_expired' < "$TEST_TMP/sweep.out")"
    ctxvault audit verify > "$TEST_TMP/verify.out" 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    assertEquals "entries left: the sweep's own" 1 "$(json_get '$.audit_entries' < "$TEST_TMP/verify.out")"
}

. shunit2
