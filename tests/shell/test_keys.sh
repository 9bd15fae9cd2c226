#!/bin/sh
# test_keys.sh - the keyring's versions: list (never the keys), rotate (new
# writes under the new version once restarted, every older one still
# decrypts and verifies, through backups too), and no core files from a
# process holding keys.
SUITE=keys
. "$CV_TOP/tests/shell/lib.sh"

# This suite is about the keyring's versions, so fields are sealed under
# the keyring itself; test_datakeys.sh covers per-user data keys (whose
# rewrap is a rewrap of the keys, checked at the end of rewrap_then_retire).
suite_setUp() {
    conf_set data_keys instance
}

test_rotate_makes_a_new_primary_and_old_rows_still_read() {
    pipeline "$DATA/sample.ndjson"
    assert_status store 0 "$STATUS_STORE"
    n1=$(rows)
    ctxvault keys rotate > "$TEST_TMP/rotate.out" 2> "$TEST_TMP/rotate.err"
    assert_status rotate 0 $?
    assertEquals "the new primary" 2 "$(json_get '$.primary' < "$TEST_TMP/rotate.out")"
    assert_grep "$TEST_TMP/rotate.err" 'restart the pipeline'
    assertEquals "the keyring's mode" 600 "$(stat -c %a "$HOME_DIR/keys/keyring")"
    gen "$TEST_TMP/more.ndjson" -n 300 -s 95 -u 10
    pipeline "$TEST_TMP/more.ndjson"
    assert_status store 0 "$STATUS_STORE"
    ctxvault keys list > "$TEST_TMP/list.json" 2> "$TEST_TMP/list.err"
    assert_status list 0 $?
    assertEquals "versions" 2 "$(json_q "json_array_length(j)" < "$TEST_TMP/list.json")"
    assertEquals "rows under version 1" "$n1" "$(json_get '$[0].rows' < "$TEST_TMP/list.json")"
    assertEquals "rows under version 2" 300 "$(json_get '$[1].rows' < "$TEST_TMP/list.json")"
    assertEquals "version 2 is the primary" 1 "$(json_get '$[1].primary' < "$TEST_TMP/list.json")"
    # never key material: no base64 key of the file appears in the listing
    for k in $(sed 's/"key":"/\n/g' "$HOME_DIR/keys/keyring" | sed -n '2,$s/".*//p'); do
        assert_no_grep "$TEST_TMP/list.json" "$k" "keys list printed a key"
    done
    assertEquals "new fields are sealed under version 2" 0 \
        "$(rows "body LIKE '%enc:v1:%' AND seq > $n1")"
    assertTrue "new fields are sealed under version 2 ($(rows "body LIKE '%enc:v2:%'") rows)" \
        "[ $(rows "body LIKE '%enc:v2:%'") -gt 0 ]"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    # a row from before the rotation still decrypts (its display_name was
    # sealed under version 1)
    ctxvault query --user user-00001 --limit 1000 > "$TEST_TMP/u1.sealed"
    assert_grep "$TEST_TMP/u1.sealed" '"display_name":"enc:v1:' "user-00001's profile is under version 1"
    ctxvault query --user user-00001 --limit 1000 --decrypt > "$TEST_TMP/u1.ndjson"
    assert_grep "$TEST_TMP/u1.ndjson" '"display_name":"Felix Santos"' "an old row should decrypt"
    # and through a backup and a restore
    ctxvault-backup create > /dev/null 2> "$TEST_TMP/create.err"
    assert_status create 0 $?
    rm -f "$DB"
    ctxvault-backup restore > /dev/null 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status "verify after the restore" 0 $?
}

test_a_process_holding_keys_leaves_no_core_file() {
    serve_store
    assert_grep "/proc/$SERVE_PID/limits" '^Max core file size +0 +0 ' \
        "store holds keys: its core size limit should be 0"
    kill -TERM "$SERVE_PID"
    wait "$SERVE_PID"
}

# rotate, rewrap, retire: retire is refused while rows need the old
# version (with counts) and accepted after a rewrap; afterwards every row
# still verifies and decrypts, and pseudonyms under the old version still
# find the user
test_rewrap_then_retire() {
    pipeline "$DATA/sample.ndjson"
    assert_status store 0 "$STATUS_STORE"
    n=$(rows)
    ctxvault keys rotate > /dev/null 2>&1
    ctxvault keys retire 1 > "$TEST_TMP/r1.out" 2> "$TEST_TMP/r1.err"
    assert_status "retire before the rewrap" 65 $?
    assert_grep "$TEST_TMP/r1.err" "still needed: $n rows"
    assertEquals "rows counted" "$n" "$(json_get '$.rows' < "$TEST_TMP/r1.out")"
    ctxvault keys retire 2 > /dev/null 2> "$TEST_TMP/r2.err"
    assert_status "retire the primary" 65 $?
    assert_grep "$TEST_TMP/r2.err" 'is the primary'
    ctxvault keys rewrap --batch 7 > "$TEST_TMP/rw.json" 2> "$TEST_TMP/rw.err"
    assert_status rewrap 0 $?
    assertEquals "rows examined" "$n" "$(json_get '$.examined' < "$TEST_TMP/rw.json")"
    assertEquals "rows rewrapped" "$n" "$(json_get '$.rewrapped' < "$TEST_TMP/rw.json")"
    assertTrue "fields re-sealed" "[ $(json_get '$.fields' < "$TEST_TMP/rw.json") -gt 0 ]"
    assertEquals "nothing sealed under version 1" 0 "$(rows "body LIKE '%\"enc:v1:%'")"
    assertEquals "no checksum under version 1" 0 "$(rows "hex(substr(checksum,1,1)) = '01'")"
    assertTrue "pseudonyms stay under version 1" "[ $(rows "body LIKE '%\"hash:v1:%'") -gt 0 ]"
    ctxvault keys rewrap > "$TEST_TMP/rw2.json" 2>&1
    assert_status "second rewrap" 0 $?
    assertEquals "a second run finds nothing" 0 "$(json_get '$.rewrapped' < "$TEST_TMP/rw2.json")"
    ctxvault keys retire 1 > "$TEST_TMP/r3.out" 2> "$TEST_TMP/r3.err"
    assert_status "retire after the rewrap" 0 $?
    ctxvault keys list > "$TEST_TMP/list.json" 2> /dev/null
    assertEquals "version 1's status" retired "$(json_get '$[0].status' < "$TEST_TMP/list.json")"
    ctxvault verify > "$TEST_TMP/verify.out" 2> "$TEST_TMP/verify.err"
    assert_status "verify after the retirement" 0 $?
    ctxvault query --user user-00001 --limit 1000 --decrypt > "$TEST_TMP/u1.ndjson"
    assert_grep "$TEST_TMP/u1.ndjson" '"display_name":"Felix Santos"' "a rewrapped row should decrypt"
    # a value still sealed under the retired version is refused, not opened
    sql "UPDATE events SET body = json_set(body, '$.note', 'enc:v1:xchacha20poly1305:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:AA:AAAAAAAAAAAAAAAAAAAAAA') WHERE seq = 1"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify2.err"
    assert_status "verify with a field under the retired version" 65 $?
    assert_grep "$TEST_TMP/verify2.err" 'field note: key version 1 is retired'
}

# rewrap through a running store while events keep coming: none lost,
# none stored twice, and every row ends under the primary
test_rewrap_while_the_pipeline_ingests() {
    gen "$TEST_TMP/a.ndjson" -n 3000 -s 11 -u 50
    pipeline "$TEST_TMP/a.ndjson"
    assert_status store 0 "$STATUS_STORE"
    ctxvault keys rotate > /dev/null 2>&1
    services_start
    gen "$TEST_TMP/b.ndjson" -n 3000 -s 12 -u 50
    ctxvault-ingest --timeout 60 "$TEST_TMP/b.ndjson" > /dev/null 2> "$TEST_TMP/client.err" &
    client=$!
    ctxvault keys rewrap --batch 100 > "$TEST_TMP/rw.json" 2> "$TEST_TMP/rw.err"
    assert_status "rewrap through store" 0 $?
    wait "$client"
    assert_status "ingest during the rewrap" 0 $?
    assertEquals "every event stored once" 6000 "$(rows)"
    assertEquals "distinct ids" 6000 "$(distinct_ids)"
    assertTrue "rows were rewrapped ($(cat "$TEST_TMP/rw.json"))" \
        "[ $(json_get '$.rewrapped' < "$TEST_TMP/rw.json") -ge 3000 ]"
    assertEquals "nothing left under version 1" 0 \
        "$(rows "body LIKE '%\"enc:v1:%' OR hex(substr(checksum,1,1)) = '01'")"
    kill -TERM "$STORE_PID" "$ENCRYPT_PID"
    wait "$STORE_PID"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

# a backup from before the rewrap holds rows under the old version: retire
# is refused until it is gone (the operator prunes or deletes old backups)
test_retire_refused_while_an_old_backup_exists() {
    pipeline "$DATA/sample.ndjson"
    ctxvault-backup create > /dev/null 2> "$TEST_TMP/create.err"
    assert_status backup 0 $?
    ctxvault keys rotate > /dev/null 2>&1
    ctxvault keys rewrap > /dev/null 2> "$TEST_TMP/rw.err"
    assert_status rewrap 0 $?
    ctxvault keys retire 1 > "$TEST_TMP/r.out" 2> "$TEST_TMP/r.err"
    assert_status "retire with an old backup" 65 $?
    # English, and only the advice that still applies: the rewrap is done
    assert_grep "$TEST_TMP/r.err" '0 rows, 1 backup, 0 archives'
    assert_grep "$TEST_TMP/r.err" 'take a new backup'
    assert_no_grep "$TEST_TMP/r.err" 'keys rewrap|dead-letter'
    assertEquals "backups counted" 1 "$(json_get '$.backups' < "$TEST_TMP/r.out")"
    rm -f "$HOME_DIR"/backups/*
    ctxvault-backup create > /dev/null 2> "$TEST_TMP/create2.err"
    assert_status "a new backup" 0 $?
    ctxvault keys retire 1 > /dev/null 2> "$TEST_TMP/r2.err"
    assert_status "retire once only new backups remain" 0 $?
}

# verify opens every sealed field: an altered ciphertext and an unknown
# key version are each reported with their row and field
test_verify_reports_fields_that_do_not_open() {
    pipeline "$DATA/sample.ndjson"
    ctxvault verify > /dev/null 2>&1
    assert_status "verify before" 0 $?
    # flip one ciphertext character (to another base64url one) of row 1's
    # first sealed field, and name version 99 in row 2's; the checksums are
    # then wrong too, which verify also says
    sql "UPDATE events SET body = replace(body, substr(body, instr(body, '\"enc:v1:') + 1, 60),
           substr(body, instr(body, '\"enc:v1:') + 1, 59) ||
           CASE substr(body, instr(body, '\"enc:v1:') + 60, 1) WHEN 'A' THEN 'B' ELSE 'A' END)
         WHERE seq = (SELECT min(seq) FROM events WHERE body LIKE '%\"enc:v1:%')"
    sql "UPDATE events SET body = replace(body, '\"enc:v1:', '\"enc:v99:')
         WHERE seq = (SELECT max(seq) FROM events WHERE body LIKE '%\"enc:v1:%')"
    ctxvault verify > "$TEST_TMP/v.out" 2> "$TEST_TMP/v.err"
    assert_status "verify after" 65 $?
    assert_grep "$TEST_TMP/v.err" 'row [0-9]* .event [^)]*.: field [a-z_.]*: authentication failed .tampered or wrong key.'
    assert_grep "$TEST_TMP/v.err" 'row [0-9]* .event [^)]*.: field [a-z_.]*: unknown key version 99'
    assert_grep "$TEST_TMP/v.out" 'sealed fields, [1-9][0-9]* that do not open'
}

test_keys_usage() {
    ctxvault keys > /dev/null 2> "$TEST_TMP/usage.err"
    assert_status "keys without a command" 64 $?
    assert_grep "$TEST_TMP/usage.err" 'usage: ctxvault keys list|rotate|rewrap'
}

. shunit2
