#!/bin/sh
# test_archive.sh - ctxvault-backup archive: old rows move into a sealed,
# verified file and out of the database; restore --archive puts them back
# once (not those past their retention, nor an erased user's); a damaged
# archive is refused; an archive goes when its rows' retention ends.
SUITE=archive
. "$CV_TOP/tests/shell/lib.sh"

# the clock of every program in these tests: events of 2026-11-01
# 00:00-01:40 arrive at 02:00, and the archive runs at 03:00
T_STORE=2026-11-01T02:00:00Z
T_RUN=2026-11-01T03:00:00Z
CUT=2026-11-01T00:50:00Z
CUT_MS=1793494200000
RUN_MS=1793502000000
# rows an archive at T_RUN takes: old enough, and not past their retention
# (an ephemeral user's rows are kept an hour)
ARCHIVABLE="ts < $CUT_MS AND (expires_at IS NULL OR expires_at > $RUN_MS)"

fill() {
    gen "$TEST_TMP/in.ndjson" -n 2000 -s 81 -u 50
    store_at "$T_STORE" "$TEST_TMP/in.ndjson"
}

# idsums [WHERE]: every row's id and keyed checksum, as one digest
idsums() {
    sql "SELECT id, hex(checksum) FROM events ${1:+WHERE $1} ORDER BY id" | sha256sum
}

archive() {
    CTXVAULT_NOW=$T_RUN ctxvault-backup archive --older-than "$CUT" "$@"
}

restore_archive() {
    CTXVAULT_NOW=$T_RUN ctxvault-backup restore --archive "$@"
}

test_archive_moves_old_rows_out_and_restore_puts_them_back_once() {
    fill
    old=$(rows "$ARCHIVABLE")
    left=$(rows "ts < $CUT_MS AND NOT ($ARCHIVABLE)")
    all=$(idsums)
    assertTrue "rows old enough to archive ($old)" "[ $old -gt 100 ]"
    archive > "$TEST_TMP/archive.out" 2> "$TEST_TMP/archive.err"
    assert_status archive 0 $?
    a=$(json_get '$.path' < "$TEST_TMP/archive.out")
    assertEquals "rows archived" "$old" "$(json_get '$.rows' < "$TEST_TMP/archive.out")"
    assertEquals "rows deleted" "$old" "$(json_get '$.deleted' < "$TEST_TMP/archive.out")"
    assertEquals "rows left" "$((2000 - old))" "$(rows)"
    assertEquals "older than the cut, only rows past retention left" "$left" "$(rows "ts < $CUT_MS")"
    assertEquals "the archive's mode" 600 "$(stat -c %a "$a")"
    assertEquals "the archive directory's mode" 700 "$(stat -c %a "$HOME_DIR/archives")"
    assert_no_grep "$a" '@example\.org|user-000|"kind"' "an archive should hold nothing readable"
    assertEquals "listed as verified" 1 "$(ctxvault-backup list --archives | json_get '$[0].verified')"
    CTXVAULT_NOW=$T_RUN ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    ctxvault audit list | grep '"action":"archive"' > "$TEST_TMP/audit"
    assertEquals "the archive is in the audit trail" "$old" "$(json_get '$.rows' < "$TEST_TMP/audit")"
    restore_archive "$a" > "$TEST_TMP/restore.out" 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    assertEquals "rows put back" "$old" "$(json_get '$.restored' < "$TEST_TMP/restore.out")"
    assertEquals "every row as it was stored" "$all" "$(idsums)"
    CTXVAULT_NOW=$T_RUN ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    restore_archive "$a" > "$TEST_TMP/restore.out" 2> "$TEST_TMP/restore.err"
    assertEquals "a second restore puts nothing back" 0 "$(json_get '$.restored' < "$TEST_TMP/restore.out")"
    assertEquals "its rows are duplicates" "$old" "$(json_get '$.duplicates' < "$TEST_TMP/restore.out")"
    assertEquals "rows" 2000 "$(rows)"
}

test_rows_past_retention_are_not_archived_and_an_archive_goes_with_its_rows() {
    # 30 interactions (kept 30 days) and 20 snapshots (kept 7 days)
    for i in $(seq 1 30); do event "$i" user-test interaction; done > "$TEST_TMP/in.ndjson"
    for i in $(seq 31 50); do event "$i" user-test snapshot; done >> "$TEST_TMP/in.ndjson"
    store_at "$T_STORE" "$TEST_TMP/in.ndjson"
    # by 2026-11-09 the snapshots are past their retention: the sweep's
    CTXVAULT_NOW=2026-11-09T00:00:00Z ctxvault-backup archive --older-than "$CUT" > "$TEST_TMP/archive.out" 2> /dev/null
    assert_status archive 0 $?
    assertEquals "rows archived" 30 "$(json_get '$.rows' < "$TEST_TMP/archive.out")"
    assertEquals "expired rows left to the sweep" 20 "$(rows "kind = 'snapshot'")"
    a=$(json_get '$.path' < "$TEST_TMP/archive.out")
    assertEquals "the archive ends with its last row (ts + 30 days)" "2026-12-01T00:00:30.000Z" \
        "$(json_get '$.manifest.expires_at' < "${a%.cvb}.json")"
    CTXVAULT_NOW=2027-06-01T00:00:00Z ctxvault-backup prune --dry-run > "$TEST_TMP/prune.out"
    assert_grep "$TEST_TMP/prune.out" "$(basename "$a")" "prune should name the expired archive"
    assertTrue "a dry run keeps it" "[ -e '$a' ]"
    CTXVAULT_NOW=2026-11-20T00:00:00Z ctxvault-backup prune > "$TEST_TMP/prune.out"
    assertTrue "not before its rows expire" "[ -e '$a' ]"
    CTXVAULT_NOW=2027-06-01T00:00:00Z ctxvault-backup prune > "$TEST_TMP/prune.out"
    assertFalse "gone once they have" "[ -e '$a' ]"
    assertFalse "with its sidecar" "[ -e '${a%.cvb}.json' ]"
}

test_an_erased_users_archived_rows_stay_erased() {
    fill
    archive > "$TEST_TMP/archive.out" 2> /dev/null
    a=$(json_get '$.path' < "$TEST_TMP/archive.out")
    sqlite3 -readonly "$DB" "SELECT count(*) FROM events" > /dev/null
    CTXVAULT_NOW=$T_RUN ctxvault delete --user user-00001 > /dev/null 2> "$TEST_TMP/delete.err"
    assert_status delete 0 $?
    restore_archive "$a" > "$TEST_TMP/restore.out" 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    assertTrue "rows of the erased user skipped" "[ $(json_get '$.erased' < "$TEST_TMP/restore.out") -gt 0 ]"
    assertEquals "the erased user's rows" 0 "$(ctxvault query --user user-00001 --limit 10000 | grep -c .)"
    assertTrue "other users' rows are back" "[ $(ctxvault query --user user-00002 --limit 10000 | grep -c .) -gt 0 ]"
}

test_a_damaged_archive_is_refused_and_nothing_changes() {
    fill
    archive > "$TEST_TMP/archive.out" 2> /dev/null
    a=$(json_get '$.path' < "$TEST_TMP/archive.out")
    before=$(idsums)
    size=$(stat -c %s "$a")
    cp "$a" "$TEST_TMP/altered.cvb"
    flip_byte "$TEST_TMP/altered.cvb" $((size / 2))
    restore_archive "$TEST_TMP/altered.cvb" > /dev/null 2> "$TEST_TMP/restore.err"
    assert_status restore 65 $?
    assert_grep "$TEST_TMP/restore.err" 'not touched'
    assertEquals "rows after a refused restore" "$before" "$(idsums)"
    # a backup is not an archive
    ctxvault-backup create > "$TEST_TMP/create.out" 2> /dev/null
    restore_archive "$(json_get '$.path' < "$TEST_TMP/create.out")" > /dev/null 2> "$TEST_TMP/restore.err"
    assert_status "restore --archive of a backup" 64 $?
    assert_grep "$TEST_TMP/restore.err" 'is not an archive'
    # with nothing that old, no file is written
    CTXVAULT_NOW=$T_RUN ctxvault-backup archive --older-than 2020-01-01T00:00:00Z > "$TEST_TMP/none.out" 2> /dev/null
    assert_status "archive of nothing" 0 $?
    assertEquals "rows archived" 0 "$(json_get '$.rows' < "$TEST_TMP/none.out")"
    assertEquals "archives" 1 "$(ls "$HOME_DIR/archives/"*.cvb | grep -c .)"
    ctxvault-backup archive > /dev/null 2> "$TEST_TMP/usage.err"
    assert_status "archive without --older-than" 64 $?
}

test_archive_runs_through_a_running_store() {
    fill
    serve_store
    archive > "$TEST_TMP/archive.out" 2> "$TEST_TMP/archive.err"
    assert_status archive 0 $?
    old=$(json_get '$.rows' < "$TEST_TMP/archive.out")
    assertEquals "deleted through store" "$old" "$(json_get '$.deleted' < "$TEST_TMP/archive.out")"
    restore_archive "$(json_get '$.path' < "$TEST_TMP/archive.out")" > "$TEST_TMP/restore.out" 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    assertEquals "put back through store" "$old" "$(json_get '$.restored' < "$TEST_TMP/restore.out")"
    kill -TERM "$SERVE_PID"
    wait "$SERVE_PID"
    assert_status "store after SIGTERM" 0 $?
    assertEquals "rows" 2000 "$(rows)"
}

. shunit2
