#!/bin/sh
# test_backup.sh - ctxvault-backup: a restore equal row for row to the
# source, a backup taken while store writes, a wrong key, a cut or altered
# backup (detected, never half restored), SIGKILL during create (and the
# leftovers cleared), restore refused under a running store, the
# corruption drill, backups on stdout, pruning, the service, and a backup
# after an erasure.
SUITE=backup
. "$CV_TOP/tests/shell/lib.sh"

# fill N SEED: N generated events, stored
fill() {
    gen "$TEST_TMP/in.ndjson" -n "$1" -s "$2" -u 50
    pipeline "$TEST_TMP/in.ndjson"
    assert_status store 0 "$STATUS_STORE"
}

# sums: every row's seq and keyed checksum, as one digest
sums() {
    sql "SELECT seq, hex(checksum) FROM events ORDER BY seq" | sha256sum
}

backups() {
    ls "$HOME_DIR/backups/"*.cvb 2> /dev/null | grep -c .
}

test_a_restore_gives_back_every_row_as_it_was() {
    fill 3000 31
    want=$(sums)
    ctxvault-backup create > "$TEST_TMP/create.out" 2> "$TEST_TMP/create.err"
    assert_status create 0 $?
    assertEquals "verified on creation" 1 "$(json_get '$.verified' < "$TEST_TMP/create.out")"
    assertEquals "rows in the manifest" 3000 "$(json_get '$.manifest.rows' < "$TEST_TMP/create.out")"
    b=$(json_get '$.path' < "$TEST_TMP/create.out")
    assertEquals "the backup's mode" 600 "$(stat -c %a "$b")"
    assertEquals "the directory's mode" 700 "$(stat -c %a "$HOME_DIR/backups")"
    assert_no_grep "$b" '@example\.org|user-000|"kind"' "a backup should hold nothing readable"
    sql "DELETE FROM events WHERE seq % 3 = 0"
    ctxvault-backup restore > "$TEST_TMP/restore.out" 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    assertEquals "rows and checksums after the restore" "$want" "$(sums)"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    ctxvault audit list > "$TEST_TMP/audit.ndjson"
    assert_grep "$TEST_TMP/audit.ndjson" '"action":"restore"' "the restore should be in the audit trail"
    ctxvault-backup list > "$TEST_TMP/list.out"
    assertEquals "listed as verified" 1 "$(json_get '$[0].verified' < "$TEST_TMP/list.out")"
}

test_a_backup_taken_while_store_writes_is_consistent() {
    fill 2000 32
    gen "$TEST_TMP/more.ndjson" -n 20000 -s 33 -u 50
    protect "$TEST_TMP/more.ndjson" "$TEST_TMP/more.enc"
    store_start
    store_feed "$TEST_TMP/more.enc" &
    feeder=$!
    wait_until 20 sh -c "[ \$(sqlite3 '$DB' 'SELECT count(*) FROM events') -gt 4000 ]"
    ctxvault-backup create > "$TEST_TMP/create.out" 2> "$TEST_TMP/create.err"
    assert_status create 0 $?
    wait "$feeder"
    store_close
    assertEquals "store's exit status" 0 "$STATUS_BGSTORE"
    n=$(json_get '$.manifest.rows' < "$TEST_TMP/create.out")
    assertTrue "a snapshot mid-stream ($n rows)" "[ $n -ge 2000 ] && [ $n -le 22000 ]"
    assertEquals "verified" 1 "$(json_get '$.verified' < "$TEST_TMP/create.out")"
}

test_a_wrong_key_is_refused_and_the_backup_does_not_count() {
    fill 500 34
    ctxvault-backup create > /dev/null 2> "$TEST_TMP/create.err"
    assert_status create 0 $?
    mv "$HOME_DIR/keys/keyring" "$TEST_TMP/keyring.orig"
    ctxvault init > /dev/null 2>&1 # a new keyring: another instance's keys
    ctxvault-backup verify > "$TEST_TMP/verify.out" 2> "$TEST_TMP/verify.err"
    assert_status verify 65 $?
    assert_grep "$TEST_TMP/verify.err" 'FAILED VERIFICATION: .*(authenticate|key)'
    assertEquals "listed as not verified" 0 "$(ctxvault-backup list | json_get '$[0].verified')"
    ctxvault-backup restore > /dev/null 2> "$TEST_TMP/restore.err"
    assert_status restore 66 $?
    assert_grep "$TEST_TMP/restore.err" 'no verified backup'
}

test_a_cut_or_altered_backup_is_detected_and_never_half_restored() {
    fill 3000 35
    ctxvault-backup create > "$TEST_TMP/create.out" 2> "$TEST_TMP/create.err"
    b=$(json_get '$.path' < "$TEST_TMP/create.out")
    size=$(stat -c %s "$b")
    cp "$b" "$TEST_TMP/cut.cvb"
    truncate -s $((size / 2)) "$TEST_TMP/cut.cvb"
    cp "$b" "$TEST_TMP/altered.cvb"
    printf 'Z' | dd of="$TEST_TMP/altered.cvb" bs=1 seek=$((size / 2)) conv=notrunc 2> /dev/null
    cp "$b" "$TEST_TMP/tail.cvb"
    truncate -s $((size - 3)) "$TEST_TMP/tail.cvb"
    sql "DELETE FROM events WHERE seq % 2 = 0"
    before=$(sums)
    for f in cut altered tail; do
        ctxvault-backup verify "$TEST_TMP/$f.cvb" > /dev/null 2> "$TEST_TMP/v.err"
        assert_status v 65 $?
        ctxvault-backup restore "$TEST_TMP/$f.cvb" > /dev/null 2> "$TEST_TMP/r.err"
        assert_status r 65 $?
        assert_grep "$TEST_TMP/r.err" 'the database was not touched'
    done
    assertEquals "the rows after three refused restores" "$before" "$(sums)"
    # each failed check is in the audit trail (the restores' too)
    assertEquals "failed checks audited" 6 "$(ctxvault audit list | grep -c '"action":"backup-verify-failed"')"
    assertEquals "no temporary file left" 0 "$(ls -a "$HOME_DIR/data" | grep -c tmp)"
}

test_sigkill_during_create_leaves_no_backup_that_counts() {
    fill 3000 36
    ctxvault-backup create > /dev/null 2>&1
    assert_status create 0 $?
    gen "$TEST_TMP/more.ndjson" -n 30000 -s 37 -u 50
    pipeline "$TEST_TMP/more.ndjson"
    good=$(ls "$HOME_DIR/backups/"*.cvb)
    killed=0
    for try in 1 2 3 4 5; do
        ctxvault-backup create > /dev/null 2>&1 &
        pid=$!
        wait_until 10 sh -c "ls -a '$HOME_DIR/backups' | grep -q 'tmp'"
        kill -9 "$pid" 2> /dev/null && killed=$((killed + 1))
        wait "$pid" 2> /dev/null
    done
    assertTrue "a create was killed ($killed)" "[ $killed -gt 0 ]"
    assertTrue "a killed create left its temporary files" "ls -a '$HOME_DIR/backups' | grep -q tmp"
    # only whole, verified backups count: the latest good is still the first
    for b in "$HOME_DIR/backups/"*.cvb; do
        [ "$b" = "$good" ] && continue
        ctxvault-backup verify "$b" > /dev/null 2>&1
        [ $? -eq 0 ] || fail "$b is named as a backup but does not verify"
    done
    ctxvault-backup restore > "$TEST_TMP/restore.out" 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    # the next backup clears what the killed ones left (a snapshot is as
    # large as the database)
    ctxvault-backup create > /dev/null 2> "$TEST_TMP/create.err"
    assert_status create 0 $?
    assert_grep "$TEST_TMP/create.err" 'removed .*left by a backup that was stopped'
    assertEquals "temporary files left" 0 "$(ls -a "$HOME_DIR/backups" | grep -c tmp)"
}

test_restore_is_refused_while_a_store_holds_the_database() {
    fill 500 38
    ctxvault-backup create > /dev/null 2>&1
    serve_store || return
    ctxvault-backup restore > /dev/null 2> "$TEST_TMP/restore.err"
    assert_status restore 75 $?
    assert_grep "$TEST_TMP/restore.err" 'ctxvault-store \(pid [0-9]+\).*stop it before restoring'
    kill -TERM "$SERVE_PID"
    wait "$SERVE_PID"
}

test_the_corruption_drill_restore_and_resume() {
    fill 3000 39
    ctxvault-backup create > /dev/null 2> "$TEST_TMP/create.err"
    assert_status create 0 $?
    want=$(sums)
    pages=$(( $(stat -c %s "$DB") / 4096 ))
    # overwrite pages in the middle of the file
    dd if=/dev/urandom of="$DB" bs=4096 seek=$((pages / 2)) count=8 conv=notrunc 2> /dev/null
    : | ctxvault-store > /dev/null 2> "$TEST_TMP/store.err"
    rc=$?
    assertTrue "store refuses the damaged database (exit $rc)" "[ $rc -ne 0 ]"
    assert_grep "$TEST_TMP/store.err" 'ctxvault-backup restore'
    ctxvault-backup restore > /dev/null 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    assertEquals "rows after the restore" "$want" "$(sums)"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    # and the pipeline resumes
    event 1 user-after > "$TEST_TMP/after.ndjson"
    pipeline "$TEST_TMP/after.ndjson"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows after new events" 3001 "$(rows)"
    # the same when the file is gone altogether
    rm -f "$DB" "$DB-wal" "$DB-shm"
    ctxvault-backup restore > /dev/null 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    assertEquals "rows after restoring a deleted database" "$want" "$(sums)"
}

test_a_backup_on_stdout_verifies_from_stdin() {
    fill 1000 40
    ctxvault-backup create -o - > "$TEST_TMP/piped.cvb" 2> "$TEST_TMP/create.err"
    assert_status create 0 $?
    assertEquals "no file in the backup directory" 0 "$(backups)"
    assert_grep "$TEST_TMP/create.err" '"rows":1000'
    ctxvault-backup verify - < "$TEST_TMP/piped.cvb" > "$TEST_TMP/verify.out" 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    sql "DELETE FROM events"
    ctxvault-backup restore "$TEST_TMP/piped.cvb" > /dev/null 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    assertEquals "rows restored from the piped backup" 1000 "$(rows)"
}

test_prune_keeps_one_a_day_and_a_dry_run_deletes_nothing() {
    fill 200 41
    for at in 01T12:00:00 02T09:00:00 02T18:00:00 03T12:00:00; do
        CTXVAULT_NOW=2026-11-${at}Z ctxvault-backup create > /dev/null 2> "$TEST_TMP/create.err" ||
            fail "create at $at: $(cat "$TEST_TMP/create.err")"
    done
    assertEquals "backups" 4 "$(backups)"
    ctxvault-backup prune --dry-run --daily 2 --monthly 0 > "$TEST_TMP/prune.out"
    assert_status prune 0 $?
    assertEquals "would delete" 2 "$(json_q "json_array_length(j, '$.would_delete')" < "$TEST_TMP/prune.out")"
    assertEquals "backups after a dry run" 4 "$(backups)"
    ctxvault-backup prune --daily 2 --monthly 0 > "$TEST_TMP/prune.out"
    assertEquals "backups after pruning" 2 "$(backups)"
    assertEquals "sidecars after pruning" 2 "$(ls "$HOME_DIR/backups/"*.json | grep -c .)"
}

test_the_service_backs_up_on_its_schedule_and_stops_on_sigterm() {
    fill 500 42
    ctxvault-backup serve --interval 1s > "$TEST_TMP/serve.out" 2> "$TEST_TMP/serve.err" &
    pid=$!
    bg_track "$pid"
    assertEquals "backups right after the start (the first comes one interval on)" 0 "$(backups)"
    wait_until 20 sh -c "ls '$HOME_DIR/backups/'*.json > /dev/null 2>&1 && grep -q '\"verified\": true' '$HOME_DIR/backups/'*.json" ||
        fail "no verified backup from the service: $(cat "$TEST_TMP/serve.err")"
    kill -TERM "$pid"
    wait "$pid"
    assertEquals "the service's exit status on SIGTERM" 0 $?
    assert_grep "$TEST_TMP/serve.out" '"verified":true' "each backup prints its result"
    assertEquals "listed as verified" 1 "$(ctxvault-backup list | json_get '$[0].verified')"
}

test_a_backup_taken_after_an_erasure_does_not_hold_the_user() {
    pipeline "$DATA/sample.ndjson"
    assert_status store 0 "$STATUS_STORE"
    ctxvault query --user user-00001 --limit 1000 > "$TEST_TMP/u1.ndjson"
    u1=$(head -n 1 "$TEST_TMP/u1.ndjson" | json_get '$.user_id')
    assertTrue "user-00001 has rows" "[ -n '$u1' ]"
    ctxvault-backup create > "$TEST_TMP/before.out" 2> /dev/null
    ctxvault delete --user user-00001 > /dev/null 2> "$TEST_TMP/delete.err"
    assert_status delete 0 $?
    ctxvault-backup create > "$TEST_TMP/after.out" 2> "$TEST_TMP/create.err"
    assert_status create 0 $?
    # restore each into an instance of its own (the same keys) and look
    for when in before after; do
        other=$TEST_TMP/$when-home
        mkdir -m 700 "$other"
        cp -a "$HOME_DIR/keys" "$other/keys"
        CTXVAULT_HOME=$other ctxvault init > /dev/null 2>&1
        CTXVAULT_HOME=$other ctxvault-backup restore "$(json_get '$.path' < "$TEST_TMP/$when.out")" \
            > /dev/null 2> "$TEST_TMP/restore.err"
        assert_status restore 0 $?
        eval "n_$when=\$(CTXVAULT_HOME=\$other ctxvault query --user user-00001 --limit 1000 | grep -c .)"
        if grep -a -q -F "$u1" "$other/data/ctxvault.db"; then eval "in_$when=yes"; else eval "in_$when=no"; fi
    done
    assertTrue "the backup before the erasure holds the user ($n_before rows)" "[ $n_before -gt 0 ]"
    assertEquals "the user's rows in the backup after the erasure" 0 "$n_after"
    assertEquals "the user's pseudonym in the file restored from it" no "$in_after"
    assertEquals "(and in the one from before)" yes "$in_before"
}

. shunit2
