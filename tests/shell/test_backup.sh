#!/bin/sh
# test_backup.sh - ctxvault-backup: a restore equal row for row to the
# source, a backup taken while store writes, a wrong key, a cut or altered
# backup (detected, never half restored), SIGKILL during create (and the
# leftovers cleared), restore refused under a running store, the
# corruption drill, the journal (replay after kill -9, to a time, pruned by
# verified backups, torn and damaged, an erasure replayed), backups on
# stdout, pruning, the service, and a backup after an erasure.
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
    ctxvault-backup restore --no-replay > /dev/null 2> "$TEST_TMP/restore.err"
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
    flip_byte "$TEST_TMP/altered.cvb" $((size / 2))
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
        # its own snapshot (a new create first clears the last one's)
        wait_until 10 test -e "$HOME_DIR/backups/.snapshot-$pid.tmp"
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
    # acknowledged after the backup: only the journal has these
    gen "$TEST_TMP/later.ndjson" -n 700 -s 139 -u 50
    pipeline "$TEST_TMP/later.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    want=$(sums)
    pages=$(( $(stat -c %s "$DB") / 4096 ))
    # overwrite pages in the middle of the file
    dd if=/dev/urandom of="$DB" bs=4096 seek=$((pages / 2)) count=8 conv=notrunc 2> /dev/null
    : | ctxvault-store > /dev/null 2> "$TEST_TMP/store.err"
    rc=$?
    assertTrue "store refuses the damaged database (exit $rc)" "[ $rc -ne 0 ]"
    assert_grep "$TEST_TMP/store.err" 'ctxvault-backup restore'
    ctxvault-backup restore > "$TEST_TMP/restore.out" 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    assertEquals "rows after the restore and replay" "$want" "$(sums)"
    assertEquals "rows" 3700 "$(rows)"
    assertTrue "batches replayed" "[ $(json_get '$.replayed.batches' < "$TEST_TMP/restore.out") -ge 1 ]"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    # and the pipeline resumes
    event 1 user-after > "$TEST_TMP/after.ndjson"
    pipeline "$TEST_TMP/after.ndjson"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows after new events" 3701 "$(rows)"
    want=$(sums)
    # the same when the file is gone altogether: store will not start
    # on an empty database while the journal holds batches
    rm -f "$DB" "$DB-wal" "$DB-shm"
    : | ctxvault-store > /dev/null 2> "$TEST_TMP/store.err"
    assert_status store 66 $?
    assert_grep "$TEST_TMP/store.err" 'is missing.*ctxvault-backup restore'
    assertFalse "no empty database is left behind" "[ -e '$DB' ]"
    ctxvault-backup restore > /dev/null 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    assertEquals "rows after restoring a deleted database" "$want" "$(sums)"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

test_events_acknowledged_around_a_kill_9_of_store_are_all_restored() {
    gen "$TEST_TMP/in.ndjson" -n 20000 -s 151 -u 200
    protect "$TEST_TMP/in.ndjson" "$TEST_TMP/in.enc"
    store_start
    store_feed "$TEST_TMP/in.enc" &
    feeder=$!
    wait_until 20 sh -c "[ \$(sqlite3 '$DB' 'SELECT count(*) FROM events') -gt 3000 ]"
    ctxvault-backup create > /dev/null 2> "$TEST_TMP/create.err" # mid-stream
    assert_status create 0 $?
    kill -9 "$STORE_PID"
    store_wait
    kill "$feeder" 2> /dev/null
    wait "$feeder" 2> /dev/null
    exec 8>&-
    # the rerun stores what the kill cut off, once
    pipeline "$TEST_TMP/in.ndjson"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows before the disaster" 20000 "$(rows)"
    want=$(sums)
    rm -f "$DB" "$DB-wal" "$DB-shm"
    ctxvault-backup restore > "$TEST_TMP/restore.out" 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    assertEquals "every row, once, as it was" "$want" "$(sums)"
    assertEquals "distinct ids" 20000 "$(distinct_ids)"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

# now_ms: the time in RFC 3339 with milliseconds
now_rfc3339() {
    date -u +%Y-%m-%dT%H:%M:%S.%3NZ
}

test_restore_to_a_time_stops_there_and_sets_the_rest_aside() {
    fill 1000 43
    ctxvault-backup create > /dev/null 2> "$TEST_TMP/create.err"
    gen "$TEST_TMP/b.ndjson" -n 300 -s 44 -u 50
    pipeline "$TEST_TMP/b.ndjson"
    want=$(sums)
    sleep 0.05
    t=$(now_rfc3339)
    sleep 0.05
    gen "$TEST_TMP/c.ndjson" -n 200 -s 45 -u 50
    pipeline "$TEST_TMP/c.ndjson"
    assertEquals "rows before" 1500 "$(rows)"
    ctxvault-backup restore --to-time "$t" > "$TEST_TMP/restore.out" 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    assertEquals "rows as they were at $t" "$want" "$(sums)"
    assertEquals "batches set aside" 1 "$(json_get '$.set_aside.batches' < "$TEST_TMP/restore.out")"
    aside=$(json_get '$.set_aside.dir' < "$TEST_TMP/restore.out")
    assertTrue "the set-aside batches are kept in $aside" "ls '$aside'/*.cvj > /dev/null"
    # store starts on it and goes on from there
    event 1 user-after > "$TEST_TMP/after.ndjson"
    pipeline "$TEST_TMP/after.ndjson"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows after new events" 1301 "$(rows)"
    ctxvault-backup restore --no-replay --to-time 2001-01-01T00:00:00Z > /dev/null 2> "$TEST_TMP/restore.err"
    assert_status "restore before any backup" 66 $?
    assert_grep "$TEST_TMP/restore.err" 'no verified backup .* taken at or before that time'

    ctxvault-backup restore --to-time yesterday > /dev/null 2> "$TEST_TMP/restore.err"
    assert_status "restore with a bad time" 64 $?
}

test_journal_segments_go_once_a_verified_backup_covers_them() {
    conf_set journal_segment 8KiB
    fill 200 61
    ctxvault-backup create > "$TEST_TMP/a.out" 2> /dev/null
    fill 200 62
    fill 200 63
    ls "$HOME_DIR/journal/" > "$TEST_TMP/before"
    n=$(grep -c cvj "$TEST_TMP/before")
    assertTrue "a segment per batch at least ($n)" "[ $n -ge 3 ]"
    assertEquals "journal files' mode" 600 "$(stat -c %a "$(ls "$HOME_DIR/journal/"*.cvj | head -n 1)")"
    assertEquals "journal directory's mode" 700 "$(stat -c %a "$HOME_DIR/journal")"
    ctxvault-backup create --no-verify > /dev/null 2> /dev/null
    for f in $(cat "$TEST_TMP/before"); do
        assertTrue "an unverified backup removes nothing ($f)" "[ -e '$HOME_DIR/journal/$f' ]"
    done
    ctxvault-backup create > "$TEST_TMP/b.out" 2> /dev/null
    gone=$(json_get '$.journal_pruned.segments' < "$TEST_TMP/b.out")
    assertTrue "segments removed ($gone of $n)" "[ $gone -ge $((n - 1)) ]"
    lsn=$(json_get '$.manifest.journal_lsn' < "$TEST_TMP/b.out")
    first=$(ls "$HOME_DIR/journal/" | head -n 1 | sed 's/^0*//; s/\.cvj$//')
    assertTrue "the journal still goes on from the backup (segment $first, backup $lsn)" \
        "[ $first -le $((lsn + 1)) ]"
    fill 200 64
    ctxvault stats > "$TEST_TMP/stats.out"
    assertEquals "stats: the database's batch is the journal's last" \
        "$(json_get '$.journal_batch' < "$TEST_TMP/stats.out")" "$(json_get '$.journal.last_batch' < "$TEST_TMP/stats.out")"
    assertTrue "stats: the journal starts after the first backup" \
        "[ $(json_get '$.journal.first_batch' < "$TEST_TMP/stats.out") -gt 1 ]"
    want=$(sums)
    rm -f "$DB"
    ctxvault-backup restore > "$TEST_TMP/restore.out" 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    assertEquals "rows after the restore" "$want" "$(sums)"
    # the first backup cannot be brought up to date past the removed segments
    ctxvault-backup restore "$(json_get '$.path' < "$TEST_TMP/a.out")" > /dev/null 2> "$TEST_TMP/restore.err"
    assert_status "restore of the older backup" 65 $?
    assert_grep "$TEST_TMP/restore.err" 'journal cannot bring it up to date.*--no-replay'
    assertEquals "the database was not touched" "$want" "$(sums)"
}

test_store_replays_batches_its_database_lacks() {
    fill 500 71
    cp "$DB" "$TEST_TMP/old.db"
    fill 300 72
    want=$(sums)
    # the database loses its last commit (as a crash between the journal's
    # write and COMMIT leaves it)
    cp "$TEST_TMP/old.db" "$DB"
    rm -f "$DB-wal" "$DB-shm"
    : | ctxvault-store > /dev/null 2> "$TEST_TMP/store.err"
    assert_status store 0 $?
    assert_grep "$TEST_TMP/store.err" 'replayed 1 batches'
    assertEquals "rows after the replay" "$want" "$(sums)"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

test_a_torn_journal_end_is_dropped_and_damage_inside_refused() {
    conf_set journal_segment 8KiB
    fill 300 73
    fill 300 74
    want=$(sums)
    last=$(ls "$HOME_DIR/journal/"*.cvj | tail -n 1)
    first=$(ls "$HOME_DIR/journal/"*.cvj | head -n 1)
    size=$(stat -c %s "$last")
    printf 'half a record' >> "$last"
    : | ctxvault-store > /dev/null 2> "$TEST_TMP/store.err"
    assert_status store 0 $?
    assert_grep "$TEST_TMP/store.err" 'torn record'
    assertEquals "the torn end is cut off" "$size" "$(stat -c %s "$last")"
    # one changed byte inside: found, and nothing is half restored
    flip_byte "$first" 400
    rm -f "$DB"
    ctxvault-backup restore > /dev/null 2> "$TEST_TMP/restore.err"
    assert_status restore 65 $?
    assert_grep "$TEST_TMP/restore.err" 'damaged at byte'
    assertFalse "no database was put in place" "[ -e '$DB' ]"
}

test_an_erasure_is_replayed_too() {
    pipeline "$DATA/sample.ndjson"
    ctxvault-backup create > /dev/null 2> "$TEST_TMP/create.err"
    n=$(ctxvault query --user user-00001 --limit 1000 | grep -c .)
    assertTrue "user-00001 has rows ($n)" "[ $n -gt 0 ]"
    ctxvault delete --user user-00001 > /dev/null 2> "$TEST_TMP/delete.err"
    assert_status delete 0 $?
    want=$(sums)
    rm -f "$DB"
    ctxvault-backup restore > /dev/null 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    assertEquals "the user's rows after restoring a backup from before the erasure" \
        0 "$(ctxvault query --user user-00001 --limit 1000 | grep -c .)"
    assertEquals "rows" "$want" "$(sums)"
    ctxvault audit list > "$TEST_TMP/audit.ndjson"
    assert_grep "$TEST_TMP/audit.ndjson" '"action":"erase"' "the erasure stays in the audit trail"
    # without the journal (--no-replay), the replaced database's tombstones
    # still keep the user erased
    ctxvault-backup restore --no-replay > "$TEST_TMP/restore.out" 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    assertTrue "the user's rows were erased again" \
        "[ $(json_get '$.erasures_carried.rows' < "$TEST_TMP/restore.out") -eq $n ]"
    assertEquals "the user's rows after restoring without the journal" \
        0 "$(ctxvault query --user user-00001 --limit 1000 | grep -c .)"
    assertEquals "and after a restart of store" \
        0 "$(: | ctxvault-store 2> /dev/null; ctxvault query --user user-00001 --limit 1000 | grep -c .)"
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
