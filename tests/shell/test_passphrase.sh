#!/bin/sh
# test_passphrase.sh - a keyring sealed under a passphrase: set (from
# stdin), the pipeline given it by CTXVAULT_PASSPHRASE_FD and by
# key_command, a wrong one refused, never a passphrase in a log or an argv,
# change, rotate and remove.
SUITE=passphrase
. "$CV_TOP/tests/shell/lib.sh"

KR() { echo "$HOME_DIR/keys/keyring"; }

# keys_b64: the base64 keys of the (plain) keyring, id key too, one a line
keys_b64() {
    sed 's/key":"/\n/g' "$(KR)" | sed -n '2,$s/".*//p'
}

# has_key KEY: the keyring file holds KEY (base64: a fixed string, not an ERE)
has_key() {
    grep -q -F -- "$1" "$(KR)"
}

# seal PASS: ctxvault keys passphrase set, PASS on stdin; PASS also goes to
# $TEST_TMP/pass (what the programs are given)
seal() {
    printf '%s\n' "$1" > "$TEST_TMP/pass"
    printf '%s\n' "$1" | ctxvault keys passphrase set > "$TEST_TMP/set.out" 2> "$TEST_TMP/set.err"
    assert_status set 0 $?
}

# pipeline_fd FILE: the pipeline, every program given the passphrase file
# through descriptor 7
pipeline_fd() {
    CTXVAULT_PASSPHRASE_FD=7
    export CTXVAULT_PASSPHRASE_FD
    exec 7< "$TEST_TMP/pass"
    pipeline "$@"
    exec 7<&-
    unset CTXVAULT_PASSPHRASE_FD
}

test_sealed_keyring_runs_the_pipeline_by_fd_and_by_key_command() {
    keys_b64 > "$TEST_TMP/keyring-copy.b64"
    assertEquals "keys in the fresh keyring (id key, version 1)" 2 "$(grep -c . "$TEST_TMP/keyring-copy.b64")"
    seal 'correct horse battery staple'
    assertEquals "set prints" '{"protected":true}' "$(cat "$TEST_TMP/set.out")"
    assertEquals "the keyring's mode" 600 "$(stat -c %a "$(KR)")"
    assert_grep "$(KR)" '"format":2,"kdf":\{"alg":"argon2id13"'
    while read -r k; do
        assertFalse "a sealed keyring holds a key in plain" "has_key '$k'"
    done < "$TEST_TMP/keyring-copy.b64"

    # no passphrase to be had: each program says what to set
    pipeline "$DATA/sample.ndjson"
    assert_status ingest 78 "$STATUS_INGEST"
    assert_status encrypt 78 "$STATUS_ENCRYPT"
    assert_grep "$TEST_TMP/ingest.err" 'keyring is protected by a passphrase; set key_command or CTXVAULT_PASSPHRASE_FD'
    assertEquals "rows without the key" 0 "$(rows)"

    pipeline_fd "$DATA/sample.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status encrypt 0 "$STATUS_ENCRYPT"
    assert_status store 0 "$STATUS_STORE"
    n1=$(rows)
    assertTrue "rows stored with the passphrase from a descriptor ($n1)" "[ $n1 -gt 0 ]"

    conf_set key_command "cat $TEST_TMP/pass"
    gen "$TEST_TMP/more.ndjson" -n 200 -s 7 -u 5
    pipeline "$TEST_TMP/more.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status encrypt 0 "$STATUS_ENCRYPT"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows stored with key_command" $((n1 + 200)) "$(rows)"
    ctxvault query --user user-00001 --limit 1000 --decrypt > "$TEST_TMP/u1.ndjson" 2> "$TEST_TMP/query.err"
    assert_status query 0 $?
    assert_grep "$TEST_TMP/u1.ndjson" '"display_name":"Felix Santos"' "a sealed field should decrypt"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    # keys list keeps its shape, and says on stderr that the file is sealed
    ctxvault keys list > "$TEST_TMP/list.json" 2> "$TEST_TMP/list.err"
    assert_status list 0 $?
    assertEquals "versions" 1 "$(json_q "json_array_length(j)" < "$TEST_TMP/list.json")"
    assertEquals "rows under version 1" $((n1 + 200)) "$(json_get '$[0].rows' < "$TEST_TMP/list.json")"
    assert_grep "$TEST_TMP/list.err" 'keyring is protected by a passphrase'
}

test_a_wrong_passphrase_or_a_failing_command_is_refused() {
    seal 'the right one'
    printf 'the wrong one\n' > "$TEST_TMP/wrong"
    conf_set key_command "cat $TEST_TMP/wrong"
    pipeline "$DATA/sample.ndjson"
    assert_status ingest 78 "$STATUS_INGEST"
    assert_status encrypt 78 "$STATUS_ENCRYPT"
    assert_status store 78 "$STATUS_STORE"
    assert_grep "$TEST_TMP/ingest.err" 'keys/keyring: wrong passphrase \(or the file was altered\)'
    assert_grep "$TEST_TMP/store.err" 'wrong passphrase'
    assertEquals "rows with a wrong passphrase" 0 "$(rows)"
    ctxvault query --user user-00001 > /dev/null 2> "$TEST_TMP/query.err"
    assert_status query 78 $?
    assert_grep "$TEST_TMP/query.err" 'wrong passphrase \(or the file was altered\)'

    conf_set key_command "echo 'the right one'; exit 3"
    pipeline "$DATA/sample.ndjson"
    assert_status ingest 78 "$STATUS_INGEST"
    assert_grep "$TEST_TMP/ingest.err" "key_command 'echo 'the right one'; exit 3' failed with exit status 3"

    # a descriptor comes before key_command: a wrong one on the descriptor
    # fails even though key_command would print the right one
    cp "$TEST_TMP/pass" "$TEST_TMP/right"
    conf_set key_command "cat $TEST_TMP/right"
    cp "$TEST_TMP/wrong" "$TEST_TMP/pass"
    pipeline_fd "$DATA/sample.ndjson"
    assert_status ingest 78 "$STATUS_INGEST"
    assert_grep "$TEST_TMP/ingest.err" 'wrong passphrase'
}

test_the_passphrase_is_never_logged_nor_in_an_argv() {
    seal 'Zq9-do-not-print-me-7Fh'
    # the programs run from descriptor 7 (store and encrypt serving), and a
    # pipeline, a rotation and a query with key_command
    CTXVAULT_PASSPHRASE_FD=7
    export CTXVAULT_PASSPHRASE_FD
    exec 7< "$TEST_TMP/pass"
    services_start
    exec 7<&-
    unset CTXVAULT_PASSPHRASE_FD
    # grep -f: the pattern must not be in grep's own argv either
    for pid in $STORE_PID $ENCRYPT_PID; do
        assertTrue "program $pid runs" "[ -r /proc/$pid/cmdline ]"
    done
    if grep -a -l -F -f "$TEST_TMP/pass" /proc/[0-9]*/cmdline > "$TEST_TMP/argv.hits" 2> /dev/null; then
        fail "the passphrase is in an argv: $(cat "$TEST_TMP/argv.hits")"
    fi
    for pid in $STORE_PID $ENCRYPT_PID; do
        if grep -a -q -F -f "$TEST_TMP/pass" "/proc/$pid/environ"; then
            fail "the passphrase is in the environment of $pid"
        fi
    done
    ps -eo args > "$TEST_TMP/ps.out"
    if grep -a -q -F -f "$TEST_TMP/pass" "$TEST_TMP/ps.out"; then
        fail "the passphrase is in ps output"
    fi
    kill -TERM "$STORE_PID" "$ENCRYPT_PID"
    wait "$STORE_PID" "$ENCRYPT_PID"

    conf_set key_command "cat $TEST_TMP/pass"
    pipeline "$DATA/sample.ndjson"
    assert_status store 0 "$STATUS_STORE"
    ctxvault keys rotate > /dev/null 2> "$TEST_TMP/rotate.err"
    assert_status rotate 0 $?
    printf 'not it\n' > "$TEST_TMP/wrong"
    conf_set key_command "cat $TEST_TMP/wrong"
    ctxvault keys list > /dev/null 2> "$TEST_TMP/wronglist.err"
    assert_status wronglist 78 $?
    # no log, dead letter or other file of the test holds it
    for f in "$TEST_TMP"/*.err "$TEST_TMP"/*.out $(find "$HOME_DIR" -type f); do
        if grep -a -q -F -f "$TEST_TMP/pass" "$f"; then
            fail "the passphrase is in $f"
        fi
    done
}

test_change_rotate_then_remove() {
    keys_b64 > "$TEST_TMP/keyring-copy.b64"
    assertEquals "keys in the fresh keyring" 2 "$(grep -c . "$TEST_TMP/keyring-copy.b64")"
    seal 'first passphrase'
    # change: the current one, then the new one, on stdin; a wrong current
    # one changes nothing
    cp "$(KR)" "$TEST_TMP/before"
    printf 'not the first\nsecond passphrase\n' | ctxvault keys passphrase change > /dev/null 2> "$TEST_TMP/change.err"
    assert_status change 78 $?
    assert_grep "$TEST_TMP/change.err" 'wrong passphrase'
    assertTrue "a failed change leaves the file" "cmp -s '$TEST_TMP/before' '$(KR)'"
    printf 'first passphrase\nsecond passphrase\n' | ctxvault keys passphrase change > "$TEST_TMP/change.out" 2> "$TEST_TMP/change.err"
    assert_status change 0 $?
    assertEquals "change prints" '{"protected":true}' "$(cat "$TEST_TMP/change.out")"
    printf 'second passphrase\n' > "$TEST_TMP/pass"
    conf_set key_command "cat $TEST_TMP/pass"
    pipeline "$DATA/sample.ndjson"
    assert_status store 0 "$STATUS_STORE"
    n1=$(rows)
    # rotation keeps the seal
    ctxvault keys rotate > "$TEST_TMP/rotate.out" 2> "$TEST_TMP/rotate.err"
    assert_status rotate 0 $?
    assertEquals "the new primary" 2 "$(json_get '$.primary' < "$TEST_TMP/rotate.out")"
    assert_grep "$(KR)" '"format":2'
    while read -r k; do
        assertFalse "a sealed keyring holds a key in plain" "has_key '$k'"
    done < "$TEST_TMP/keyring-copy.b64"
    printf 'first passphrase\n' > "$TEST_TMP/old"
    conf_set key_command "cat $TEST_TMP/old"
    ctxvault keys list > /dev/null 2> "$TEST_TMP/old.err"
    assert_status old 78 $?
    # remove: plain again, no passphrase needed
    conf_set key_command ""
    printf 'second passphrase\n' | ctxvault keys passphrase remove > "$TEST_TMP/remove.out" 2> "$TEST_TMP/remove.err"
    assert_status remove 0 $?
    assertEquals "remove prints" '{"protected":false}' "$(cat "$TEST_TMP/remove.out")"
    assert_grep "$(KR)" '^\{"format":1,'
    assertEquals "the keyring's mode" 600 "$(stat -c %a "$(KR)")"
    while read -r k; do
        assertTrue "the original keys are back" "has_key '$k'"
    done < "$TEST_TMP/keyring-copy.b64"
    gen "$TEST_TMP/more.ndjson" -n 100 -s 9 -u 5
    pipeline "$TEST_TMP/more.ndjson"
    assert_status store 0 "$STATUS_STORE"
    ctxvault keys list > "$TEST_TMP/list.json" 2> "$TEST_TMP/list.err"
    assert_status list 0 $?
    assertEquals "rows under version 1" "$n1" "$(json_get '$[0].rows' < "$TEST_TMP/list.json")"
    assertEquals "rows under version 2" 100 "$(json_get '$[1].rows' < "$TEST_TMP/list.json")"
    assert_grep "$TEST_TMP/list.err" 'is not protected by a passphrase'
}

test_passphrase_command_refusals() {
    printf 'x\n' | ctxvault keys passphrase remove > /dev/null 2> "$TEST_TMP/remove.err"
    assert_status remove 65 $?
    assert_grep "$TEST_TMP/remove.err" 'is not protected by a passphrase'
    ctxvault keys passphrase set < /dev/null > /dev/null 2> "$TEST_TMP/empty.err"
    assert_status empty 66 $?
    assert_grep "$TEST_TMP/empty.err" 'end of input'
    printf '\n' | ctxvault keys passphrase set > /dev/null 2> "$TEST_TMP/blank.err"
    assert_status blank 66 $?
    assert_grep "$TEST_TMP/blank.err" 'empty'
    assert_grep "$(KR)" '^\{"format":1,'
    seal 'once'
    printf 'twice\n' | ctxvault keys passphrase set > /dev/null 2> "$TEST_TMP/twice.err"
    assert_status twice 65 $?
    assert_grep "$TEST_TMP/twice.err" 'already protected'
    ctxvault keys passphrase > /dev/null 2> "$TEST_TMP/usage.err"
    assert_status usage 64 $?
    assert_grep "$TEST_TMP/usage.err" 'passphrase set\|change\|remove'
}

. shunit2
