#!/bin/sh
# test_writefail.sh - an answer that cannot be written is an I/O error
# (74) with the reason, never a silent success: a full device on stdout
# (/dev/full), an export file in a directory that is not there or where
# a directory is; and an export file never left half-written.
SUITE=writefail
. "$CV_TOP/tests/shell/lib.sh"

suite_setUp() {
    data_clock
    event 1 u-w > "$TEST_TMP/ev"
    event 2 u-w >> "$TEST_TMP/ev"
    store_at 2026-11-01T01:00:00Z "$TEST_TMP/ev"
}

# fails74 ERE ARGS...: `ctxvault ARGS` exits 74 and says ERE on stderr,
# with stdout on /dev/full (always "no space left on device")
fails74() {
    _re=$1
    shift
    ctxvault "$@" > /dev/full 2> "$TEST_TMP/err"
    assertEquals "ctxvault $* > /dev/full (stderr: $(head -c 300 "$TEST_TMP/err"))" 74 $?
    assert_grep "$TEST_TMP/err" "$_re"
}

test_a_full_stdout_is_an_io_error() {
    fails74 'cannot write the export: No space left on device' export --user u-w --format json
    fails74 'cannot write the export: No space left on device' export --user u-w --format csv
    fails74 'cannot write to stdout' query --user u-w
    fails74 'cannot write to stdout' stats
    fails74 'cannot write to stdout' keys list
    # the same commands to a file that takes them succeed
    ctxvault query --user u-w > "$TEST_TMP/q.out" 2> "$TEST_TMP/q.err"
    assert_status q 0 $?
    assertEquals "rows printed" 2 "$(nonblank "$TEST_TMP/q.out")"
}

test_an_export_file_that_cannot_be_made_leaves_nothing() {
    ctxvault export --user u-w --format json -o "$TEST_TMP/no/such/dir/u.json" \
        > /dev/null 2> "$TEST_TMP/err"
    assertEquals "into a missing directory" 74 $?
    assert_grep "$TEST_TMP/err" "cannot create .*no/such/dir/u.json.tmp.[0-9]+: No such file or directory"
    mkdir -p "$TEST_TMP/adir/inside"
    ctxvault export --user u-w --format csv -o "$TEST_TMP/adir" > /dev/null 2> "$TEST_TMP/err"
    assertEquals "onto a directory" 74 $?
    assert_grep "$TEST_TMP/err" "cannot write .*adir: Is a directory"
    assertTrue "the directory is as it was" "[ -d '$TEST_TMP/adir/inside' ]"
    assertEquals "no temporary file left" "" "$(ls "$TEST_TMP" | grep '\.tmp\.')"
    # and a file that can be written is whole: the CSV's header and 2 rows
    ctxvault export --user u-w --format csv -o "$TEST_TMP/u.csv" > /dev/null 2> "$TEST_TMP/err"
    assertEquals "into a file" 0 $?
    assertEquals "header and rows" 3 "$(nonblank "$TEST_TMP/u.csv")"
    assertEquals "0600" 600 "$(stat -c %a "$TEST_TMP/u.csv")"
}

. shunit2
