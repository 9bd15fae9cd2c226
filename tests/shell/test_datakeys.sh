#!/bin/sh
# test_datakeys.sh - per-user and hourly data keys: each user's fields
# under the user's own key; an erasure destroys it, so a backup taken
# before the erasure, restored with today's keys, no longer shows that
# user's encrypted fields while everyone else's still open; an ephemeral
# user's hour key is destroyed once the hour's data has expired; encrypt
# waits for a key it cannot load (ingest keeps the events, the health
# report says why) and resumes; no key material in any log or argv.
SUITE=datakeys
. "$CV_TOP/tests/shell/lib.sh"

# keys_sql SQL: a query on the data-key store
keys_sql() {
    sqlite3 "$HOME_DIR/keys/datakeys.db" "$1"
}

# restore_elsewhere BACKUP: a second instance with this one's keys as they
# are now (after whatever was destroyed) and BACKUP restored into it; its
# home in HOME2
restore_elsewhere() {
    HOME2=$TEST_TMP/home2
    CTXVAULT_HOME=$HOME2 ctxvault init > /dev/null 2>&1
    rm -f "$HOME2/data/ctxvault.db"*
    cp -a "$HOME_DIR/ctxvault.conf" "$HOME2/"
    cp -a "$HOME_DIR/keys/." "$HOME2/keys/"
    CTXVAULT_HOME=$HOME2 ctxvault-backup restore --no-replay "$1" \
        > /dev/null 2> "$TEST_TMP/restore2.err"
    assert_status "restore into a second instance" 0 $?
}

test_an_erasure_destroys_the_users_key_and_old_backups_stay_unreadable() {
    pipeline "$DATA/sample.ndjson"
    assert_status store 0 "$STATUS_STORE"
    # every user has a key of their own, and their fields name it
    users=$(sqlite3 "$DB" "SELECT COUNT(DISTINCT user_id) FROM events_v WHERE user_id NOT LIKE 'anon:%'")
    assertTrue "a data key per user ($(keys_sql "SELECT COUNT(*) FROM keys WHERE owner LIKE 'u:%'") for $users users)" \
        "[ $(keys_sql "SELECT COUNT(*) FROM keys WHERE owner LIKE 'u:%'") -ge $users ]"
    assertEquals "the data-key store's mode" 600 "$(stat -c %a "$HOME_DIR/keys/datakeys.db")"
    ctxvault query --user user-00001 --limit 1000 > "$TEST_TMP/u1.sealed"
    kid=$(grep -o '"display_name":"enc:d[A-Za-z0-9_-]*' "$TEST_TMP/u1.sealed" | head -n 1 | sed 's/.*enc:d//')
    assertEquals "user-00001's display_name is under a data key" 16 "${#kid}"
    assertEquals "no field is left under the keyring" 0 "$(rows "body LIKE '%enc:v%'")"
    ctxvault-backup create > /dev/null 2> "$TEST_TMP/create.err"
    assert_status "backup before the erasure" 0 $?
    old=$(ls "$HOME_DIR/backups/"*.cvb)

    ctxvault delete --user user-00001 > "$TEST_TMP/delete.out" 2> "$TEST_TMP/delete.err"
    assert_status delete 0 $?
    assertEquals "the key is gone" 0 "$(keys_sql "SELECT COUNT(*) FROM keys WHERE id = '$kid'")"
    assertEquals "the other users keep theirs" "$((users - 1))" \
        "$(keys_sql "SELECT COUNT(*) FROM keys WHERE owner LIKE 'u:%'")"
    # nothing of the destroyed row is left in the file or its WAL
    for f in "$HOME_DIR/keys/datakeys.db"*; do
        assertFalse "$f still holds the destroyed key's id" "grep -q -a '$kid' '$f'"
    done

    # the old backup, restored elsewhere with the keys as they are now
    restore_elsewhere "$old"
    CTXVAULT_HOME=$HOME2 ctxvault query --user user-00001 --limit 1000 --decrypt \
        > "$TEST_TMP/u1.after" 2> "$TEST_TMP/u1.err"
    assertTrue "the backup still holds user-00001's rows" "[ -s '$TEST_TMP/u1.after' ]"
    assert_no_grep "$TEST_TMP/u1.after" 'Felix Santos' "an erased user's field was read from an old backup"
    assert_grep "$TEST_TMP/u1.after" '"display_name":"enc:d' "the field should stay sealed"
    CTXVAULT_NOW=2026-11-01T00:50:00Z CTXVAULT_HOME=$HOME2 ctxvault query --user user-00005 --limit 1000 --decrypt \
        > "$TEST_TMP/u5.after" 2> /dev/null
    assert_grep "$TEST_TMP/u5.after" '"display_name":"Jade Nguyen"' "another user's field should still open"
    CTXVAULT_HOME=$HOME2 ctxvault verify > /dev/null 2> "$TEST_TMP/verify2.err"
    assert_status "verify of the old backup" 65 $?
    assert_grep "$TEST_TMP/verify2.err" "data key $kid was destroyed" "verify names the destroyed key per row"
}

test_an_ephemeral_users_hour_key_is_destroyed_when_the_hour_expires() {
    store_at 2026-11-01T00:30:00Z "$DATA/sample.ndjson"
    assertEquals "one hour key, for the hour of the events" "h:$((1793491200 / 3600))" \
        "$(keys_sql "SELECT owner FROM keys WHERE owner LIKE 'h:%'")"
    CTXVAULT_NOW=2026-11-01T00:30:00Z ctxvault query --user user-00004 --limit 1000 --decrypt \
        > "$TEST_TMP/u4.ndjson" 2> /dev/null
    assert_grep "$TEST_TMP/u4.ndjson" '"display_name":"' "an ephemeral user's fields open while the hour lasts"
    assert_no_grep "$TEST_TMP/u4.ndjson" '"display_name":"enc:' "an ephemeral user's fields open while the hour lasts"
    CTXVAULT_NOW=2026-11-01T00:40:00Z ctxvault-backup create > /dev/null 2> "$TEST_TMP/create.err"
    assert_status "a copy taken within the hour" 0 $?
    copy=$(ls "$HOME_DIR/backups/"*.cvb)
    # not yet: the hour's data is kept an hour ([privacy] ephemeral)
    CTXVAULT_NOW=2026-11-01T01:30:00Z ctxvault-ttl-sweep --once > /dev/null 2> "$TEST_TMP/sweep1.err"
    assert_status "sweep within the hour" 0 $?
    assertEquals "the hour key stays while its rows may live" 1 \
        "$(keys_sql "SELECT COUNT(*) FROM keys WHERE owner LIKE 'h:%'")"
    CTXVAULT_NOW=2026-11-01T03:00:00Z ctxvault-ttl-sweep --once > /dev/null 2> "$TEST_TMP/sweep2.err"
    assert_status "sweep after the hour" 0 $?
    assertEquals "the hour key is destroyed" 0 "$(keys_sql "SELECT COUNT(*) FROM keys WHERE owner LIKE 'h:%'")"
    # the copy taken in between no longer opens for the ephemeral users
    restore_elsewhere "$copy"
    # read as of the copy's hour: a read never returns a row past its expiry
    CTXVAULT_NOW=2026-11-01T00:50:00Z CTXVAULT_HOME=$HOME2 ctxvault query --user user-00004 --limit 1000 --decrypt \
        > "$TEST_TMP/u4.after" 2> /dev/null
    assertTrue "the copy holds user-00004's rows" "[ -s '$TEST_TMP/u4.after' ]"
    assert_grep "$TEST_TMP/u4.after" '"display_name":"enc:d' "an expired hour's field should stay sealed"
    CTXVAULT_NOW=2026-11-01T00:50:00Z CTXVAULT_HOME=$HOME2 ctxvault query --user user-00005 --limit 1000 --decrypt \
        > "$TEST_TMP/u5.after" 2> /dev/null
    assert_grep "$TEST_TMP/u5.after" '"display_name":"Jade Nguyen"' "a private user's field should still open"
}

# the data keys are wrapped under a keyring version: a rotation, a
# rewrap (of the keys, not the rows) and the old version retires
test_data_keys_are_rewrapped_and_the_old_version_retires() {
    pipeline "$DATA/sample.ndjson"
    nkeys=$(keys_sql "SELECT COUNT(*) FROM keys")
    ctxvault keys rotate > /dev/null 2>&1
    ctxvault keys retire 1 > "$TEST_TMP/r1.out" 2> "$TEST_TMP/r1.err"
    assert_status "retire before the rewrap" 65 $?
    assertEquals "data keys counted" "$nkeys" "$(json_get '$.data_keys' < "$TEST_TMP/r1.out")"
    ctxvault keys rewrap > "$TEST_TMP/rw.json" 2> "$TEST_TMP/rw.err"
    assert_status rewrap 0 $?
    assertEquals "data keys rewrapped" "$nkeys" "$(json_get '$.data_keys' < "$TEST_TMP/rw.json")"
    assertEquals "none left under version 1" 0 "$(keys_sql "SELECT COUNT(*) FROM keys WHERE kek = 1")"
    ctxvault keys list > "$TEST_TMP/list.json" 2> "$TEST_TMP/list.err"
    assertEquals "keys list: data keys under version 2" "$nkeys" "$(json_get '$[1].data_keys' < "$TEST_TMP/list.json")"
    assert_grep "$TEST_TMP/list.err" "data keys: $(keys_sql "SELECT COUNT(*) FROM keys WHERE owner LIKE 'u:%'") users"
    ctxvault keys retire 1 > /dev/null 2> "$TEST_TMP/r2.err"
    assert_status "retire after the rewrap" 0 $?
    ctxvault query --user user-00001 --limit 1000 --decrypt > "$TEST_TMP/u1.ndjson" 2> /dev/null
    assert_grep "$TEST_TMP/u1.ndjson" '"display_name":"Felix Santos"' "a field under a rewrapped data key should open"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status "verify after the retirement" 0 $?
}

test_encrypt_waits_for_a_missing_key_and_nothing_is_lost() {
    gen "$TEST_TMP/in.ndjson" -n 500 -s 17 -u 20
    conf_set report_interval 200ms
    conf_set stale_after 2s
    conf_set listen "127.0.0.1:$(free_port)"
    ctxvault-metrics --expect "ctxvault-encrypt" 2> "$TEST_TMP/metrics.err" &
    bg_track $!
    ctxvault-store --serve 2> "$TEST_TMP/store.err" &
    bg_track $!
    wait_until 10 grep -q 'ready in' "$TEST_TMP/store.err" || fail "store did not start"
    # encrypt's keyring is somewhere it is not yet
    sed 's|^keyring .*|keyring = keys/keyring.later|' "$HOME_DIR/ctxvault.conf" > "$TEST_TMP/encrypt.conf"
    ctxvault-encrypt --serve -c "$TEST_TMP/encrypt.conf" 2> "$TEST_TMP/encrypt.err" &
    bg_track $!
    ctxvault-ingest --timeout 60 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/client.err" &
    CLIENT=$!
    wait_until 10 grep -q 'cannot load keyring' "$TEST_TMP/encrypt.err"
    assert_grep "$TEST_TMP/encrypt.err" 'keyring.later does not exist' "encrypt should say which key is missing"
    wait_until 10 sh -c "ctxvault status 2>/dev/null | grep -q 'encryption key unavailable'"
    ctxvault status > "$TEST_TMP/status.txt" 2> /dev/null
    assert_status "status while the key is missing" 69 $?
    assert_grep "$TEST_TMP/status.txt" 'encryption key unavailable' "the health report should say why"
    assertEquals "nothing passes encrypt without its key" 0 "$(rows)"
    cp -p "$HOME_DIR/keys/keyring" "$HOME_DIR/keys/keyring.later"
    wait "$CLIENT"
    assert_status "ingest once the key is back" 0 $?
    assertEquals "every event stored" 500 "$(rows)"
    assertEquals "none twice" 500 "$(distinct_ids)"
    assert_grep "$TEST_TMP/encrypt.err" 'keys are available again' "encrypt should say it resumed"
}

test_a_wrong_passphrase_is_waited_out_too() {
    printf 'right horse battery\n' | ctxvault keys passphrase set > /dev/null 2> "$TEST_TMP/set.err"
    assert_status "passphrase set" 0 $?
    printf 'right horse battery\n' > "$TEST_TMP/right"
    printf 'wrong horse\n' > "$TEST_TMP/pass"
    chmod 600 "$TEST_TMP/right" "$TEST_TMP/pass"
    CTXVAULT_PASSPHRASE_FD=3 ctxvault-store --serve 3< "$TEST_TMP/right" 2> "$TEST_TMP/store.err" &
    bg_track $!
    wait_until 20 grep -q 'ready in' "$TEST_TMP/store.err" || fail "store did not start"
    CTXVAULT_PASSPHRASE_FD=3 ctxvault-encrypt --serve 3< "$TEST_TMP/pass" 2> "$TEST_TMP/encrypt.err" &
    bg_track $!
    gen "$TEST_TMP/in.ndjson" -n 200 -s 5 -u 10
    CTXVAULT_PASSPHRASE_FD=3 ctxvault-ingest --timeout 60 "$TEST_TMP/in.ndjson" \
        3< "$TEST_TMP/right" > /dev/null 2> "$TEST_TMP/client.err" &
    CLIENT=$!
    wait_until 20 grep -q 'wrong passphrase' "$TEST_TMP/encrypt.err"
    assert_grep "$TEST_TMP/encrypt.err" 'wrong passphrase' "encrypt should say why it waits"
    assertEquals "nothing passes encrypt without its key" 0 "$(rows)"
    cp "$TEST_TMP/right" "$TEST_TMP/pass" # the descriptor reads the file afresh
    wait "$CLIENT"
    assert_status "ingest once the passphrase is right" 0 $?
    assertEquals "every event stored once" 200 "$(distinct_ids)"
    assertEquals "and no more" 200 "$(rows)"
    assert_no_grep "$TEST_TMP/encrypt.err" 'horse' "a passphrase was logged"
}

test_no_key_material_in_logs_or_argv() {
    pipeline "$DATA/sample.ndjson"
    ctxvault keys rotate > /dev/null 2> "$TEST_TMP/rotate.err"
    services_start
    ctxvault-ingest --timeout 30 "$DATA/sample.ndjson" > /dev/null 2> "$TEST_TMP/client.err"
    ctxvault delete --user user-00002 > /dev/null 2> "$TEST_TMP/delete.err"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    ctxvault keys list > "$TEST_TMP/list.out" 2> "$TEST_TMP/list.err"
    ctxvault query --user user-00001 --decrypt > /dev/null 2> "$TEST_TMP/query.err"
    for pid in $STORE_PID $ENCRYPT_PID; do
        tr '\0' ' ' < "/proc/$pid/cmdline" >> "$TEST_TMP/argv.txt"
    done
    # every key of the keyring, base64 and hex; the data keys, which are
    # stored wrapped, are checked in their wrapped form
    keys=$(grep -o '"\(key\|id_key\)":"[^"]*"' "$HOME_DIR/keys/keyring" | sed 's/.*":"//; s/"$//')
    assertTrue "the keyring has keys to look for" "[ -n '$keys' ]"
    for k in $keys; do
        hex=$(printf '%s' "$k" | base64 -d | od -An -tx1 | tr -d ' \n')
        for f in "$TEST_TMP"/*.err "$TEST_TMP"/*.out "$TEST_TMP/argv.txt"; do
            assert_no_grep "$f" "$k" "a key (base64) in $f"
            assert_no_grep "$f" "$hex" "a key (hex) in $f"
        done
    done
    for w in $(keys_sql "SELECT hex(wrapped) FROM keys"); do
        for f in "$TEST_TMP"/*.err "$TEST_TMP"/*.out; do
            assert_no_grep "$f" "$w" "a wrapped data key in $f"
        done
    done
}

. shunit2
