#!/bin/sh
# test_init.sh - `ctxvault init`: what it creates, with which modes, and that
# running it again never touches the keys.
SUITE=init
. "$CV_TOP/tests/shell/lib.sh"

test_init_creates_config_policy_keyring_and_database() {
    for f in ctxvault.conf policy.conf keys/keyring data/ctxvault.db; do
        assertTrue "init should create $f" "[ -s '$HOME_DIR/$f' ]"
    done
    assertEquals "the new database has an events table, empty" 0 "$(rows)"
}

test_init_database_uses_wal_and_incremental_auto_vacuum() {
    assertEquals "journal_mode" wal "$(sql 'PRAGMA journal_mode')"
    # 2 = INCREMENTAL; it only takes effect if set before the first table
    assertEquals "auto_vacuum" 2 "$(sql 'PRAGMA auto_vacuum')"
}

test_init_creates_policy_with_the_default_retention() {
    # doc/DESIGN.md §4: the shipped defaults, in a readable file
    for rule in 'snapshot *= *7d' 'trace *= *30d' 'interaction *= *30d' \
        'replay *= *90d' 'audit *= *365d' 'email *= *hash' 'query *= *encrypt'; do
        assert_grep "$HOME_DIR/policy.conf" "^[^#]*$rule" "policy.conf should set $rule"
    done
}

test_init_directories_are_0700() {
    dirs=$(find "$HOME_DIR" -type d)
    assertNotNull "init made no directories" "$dirs"
    for d in $dirs; do
        assertEquals "mode of $d" 700 "$(stat -c %a "$d")"
    done
}

test_init_files_are_0600() {
    files=$(find "$HOME_DIR" -type f)
    assertNotNull "init made no files" "$files"
    for f in $files; do
        assertEquals "mode of $f" 600 "$(stat -c %a "$f")"
    done
}

test_init_twice_keeps_the_keyring_byte_identical() {
    cp "$HOME_DIR/keys/keyring" "$TEST_TMP/keyring.before"
    ctxvault init > "$TEST_TMP/init.out" 2> "$TEST_TMP/init.err"
    assert_status init 0 $?
    assertTrue "the keyring changed on the second init" \
        "cmp -s '$TEST_TMP/keyring.before' '$HOME_DIR/keys/keyring'"
    assertEquals "keyring mode after the second init" 600 \
        "$(stat -c %a "$HOME_DIR/keys/keyring")"
}

test_init_twice_keeps_edited_config_and_stored_events() {
    echo "# local edit" >> "$HOME_DIR/ctxvault.conf"
    event 1 | ctxvault-ingest --stdout | ctxvault-encrypt | ctxvault-store
    assertEquals "rows before the second init" 1 "$(rows)"
    ctxvault init > /dev/null 2>&1
    assert_status init 0 $?
    assert_grep "$HOME_DIR/ctxvault.conf" '^# local edit$' "init overwrote ctxvault.conf"
    assertEquals "init emptied the database" 1 "$(rows)"
}

test_init_with_home_option_works_without_ctxvault_home() {
    other=$TEST_TMP/other
    (unset CTXVAULT_HOME; ctxvault --home "$other" init > /dev/null 2> "$TEST_TMP/init.err")
    assert_status init 0 $?
    for f in ctxvault.conf policy.conf keys/keyring data/ctxvault.db; do
        assertTrue "--home should create $f" "[ -s '$other/$f' ]"
    done
    assertEquals "mode of $other" 700 "$(stat -c %a "$other")"
    # and the other programs find that instance through --home as well
    (unset CTXVAULT_HOME
     event 1 | ctxvault-ingest --stdout --home "$other" |
         ctxvault-encrypt --home "$other" | ctxvault-store --home "$other")
    assertEquals "rows stored through --home" 1 \
        "$(sqlite3 "$other/data/ctxvault.db" 'SELECT COUNT(*) FROM events')"
    assertEquals "nothing should reach the CTXVAULT_HOME instance" 0 "$(rows)"
}

test_init_with_ctxvault_home_creates_a_missing_parent() {
    nested=$TEST_TMP/a/b/home
    CTXVAULT_HOME=$nested ctxvault init > /dev/null 2> "$TEST_TMP/init.err"
    assert_status init 0 $?
    assertTrue "keyring under a new nested CTXVAULT_HOME" "[ -s '$nested/keys/keyring' ]"
}

test_init_tightens_the_modes_of_an_existing_home() {
    # a home made beforehand with a loose umask
    other=$TEST_TMP/premade
    mkdir -m 0755 "$other"
    mkdir -m 0777 "$other/keys"
    (umask 022; ctxvault --home "$other" init > /dev/null 2> "$TEST_TMP/init.err")
    assert_status init 0 $?
    assertEquals "mode of the existing home" 700 "$(stat -c %a "$other")"
    assertEquals "mode of the existing keys directory" 700 "$(stat -c %a "$other/keys")"
    assertEquals "mode of the keyring" 600 "$(stat -c %a "$other/keys/keyring")"
}

test_keyring_readable_by_others_is_refused_with_exit_78() {
    keyring=$HOME_DIR/keys/keyring
    chmod 0644 "$keyring"
    event 1 > "$TEST_TMP/one.ndjson"
    ctxvault-ingest --stdout "$TEST_TMP/one.ndjson" > "$TEST_TMP/one.out" 2> /dev/null

    ctxvault-encrypt < "$TEST_TMP/one.out" > "$TEST_TMP/encrypt.out" 2> "$TEST_TMP/encrypt.err"
    assert_status encrypt 78 $?
    assert_grep "$TEST_TMP/encrypt.err" "$keyring" "encrypt should name the keyring"
    assertEquals "encrypt must write nothing" 0 "$(wc -c < "$TEST_TMP/encrypt.out")"

    echo '{}' | ctxvault-store 2> "$TEST_TMP/store.err"
    assert_status store 78 $?
    assert_grep "$TEST_TMP/store.err" "$keyring" "store should name the keyring"

    ctxvault query --user user-test --decrypt > /dev/null 2> "$TEST_TMP/query.err"
    assert_status query 78 $?
    assert_grep "$TEST_TMP/query.err" "$keyring" "ctxvault query should name the keyring"
}

. shunit2
