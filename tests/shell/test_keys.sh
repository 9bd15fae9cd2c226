#!/bin/sh
# test_keys.sh - the keyring's versions: list (never the keys), rotate (new
# writes under the new version once restarted, every older one still
# decrypts and verifies, through backups too), and no core files from a
# process holding keys.
SUITE=keys
. "$CV_TOP/tests/shell/lib.sh"

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

test_keys_usage() {
    ctxvault keys > /dev/null 2> "$TEST_TMP/usage.err"
    assert_status "keys without a command" 64 $?
    assert_grep "$TEST_TMP/usage.err" 'usage: ctxvault keys list|rotate'
}

. shunit2
