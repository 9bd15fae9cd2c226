#!/bin/sh
# test_cli.sh - the command line says what it does: every program's --help
# and every ctxvault command's help work (and its man page has the
# command), the exit statuses a program can return are each listed once in
# its --help and the same in its man page, a missing instance gets one
# message from every program, and the filter's summary is printed on a
# first run too.
SUITE=cli
. "$CV_TOP/tests/shell/lib.sh"

PROGRAMS="ctxvault ctxvault-ingest ctxvault-encrypt ctxvault-store ctxvault-ttl-sweep ctxvault-scrub ctxvault-backup ctxvault-metrics ctxvault-sync"

# codes: the sysexits statuses (0, 64 to 78) named in the text on stdin,
# sorted, one per line, duplicates kept
codes() {
    grep -o -E '(^|[^0-9.])(0|6[4-9]|7[0-8])([^0-9]|$)' | grep -o -E '[0-9]+' | sort -n
}

# help_codes FILE: the statuses after "Exit status:" in a --help text
help_codes() {
    sed -n '/Exit status:/,$p' "$1" | codes
}

# man_codes PROGRAM: the statuses in the man page's EXIT STATUS section
man_codes() {
    awk '/^\.SH EXIT STATUS/ { f = 1; next } /^\.SH/ { f = 0 } f' "$TOP/man/$1.1" | codes
}

# sources PROGRAM: its main's source files, bin/PROGRAM.c or, for ctxvault,
# every file of bin/ctxvault_cmd/
sources() {
    ls "$TOP/bin/$1.c" "$TOP/bin/$1_cmd/"*.c 2> /dev/null
}

# source_codes PROGRAM: the statuses its main's sources return (EX_ names)
source_codes() {
    for _n in $(cat $(sources "$1") | grep -o 'EX_[A-Z]*' | sort -u); do
        awk -v n="$_n" '$1 == "#define" && $2 == n { print $3 }' /usr/include/sysexits.h
    done | sort -n
}

test_every_program_lists_each_exit_status_once_and_as_its_man_page() {
    for p in $PROGRAMS; do
        assertNotNull "the sources of $p" "$(sources "$p")"
        "$p" --help > "$TEST_TMP/$p.help" 2> "$TEST_TMP/$p.err"
        assert_status "$p --help" 0 $?
        help_codes "$TEST_TMP/$p.help" > "$TEST_TMP/$p.codes"
        assertTrue "$p --help lists exit statuses" "[ -s '$TEST_TMP/$p.codes' ]"
        assertEquals "$p --help lists a status twice" "" "$(uniq -d "$TEST_TMP/$p.codes" | tr '\n' ' ')"
        man_codes "$p" | uniq > "$TEST_TMP/$p.man"
        assertEquals "$p: --help and man page list the same statuses" \
            "$(tr '\n' ' ' < "$TEST_TMP/$p.man")" "$(uniq "$TEST_TMP/$p.codes" | tr '\n' ' ')"
        for c in 0 64 $(source_codes "$p"); do
            grep -q "^$c\$" "$TEST_TMP/$p.codes" ||
                fail "$p returns $c ($(sources "$p" | sed "s|^$TOP/||" | tr '\n' ' ' | sed 's/ $//')) but its --help does not list it"
        done
    done
}

test_ctxvault_help_of_every_command() {
    env -u CTXVAULT_HOME ctxvault --help > "$TEST_TMP/all.help"
    assert_status "ctxvault --help" 0 $?
    cmds=$(sed -n '/^commands:/,/^$/p' "$TEST_TMP/all.help" | grep -o -E '^  [a-z]+' | sort -u)
    assertTrue "commands listed" "[ $(echo "$cmds" | grep -c .) -ge 20 ]"
    for c in $cmds; do
        # no instance needed to ask
        CTXVAULT_HOME=$TEST_TMP/none ctxvault help "$c" > "$TEST_TMP/h.out" 2> "$TEST_TMP/h.err"
        assert_status "ctxvault help $c" 0 $?
        assert_grep "$TEST_TMP/h.out" "^  $c( |$)" "ctxvault help $c should show $c"
        grep -q -E "^\.B (ctxvault )?$c( |\\\\|\$)" "$TOP/man/ctxvault.1" ||
            fail "ctxvault $c has no entry in man/ctxvault.1"
        CTXVAULT_HOME=$TEST_TMP/none ctxvault "$c" --help > "$TEST_TMP/c.out" 2> "$TEST_TMP/c.err"
        assert_status "ctxvault $c --help" 0 $?
        assertEquals "ctxvault $c --help is ctxvault help $c" "$(cat "$TEST_TMP/h.out")" "$(cat "$TEST_TMP/c.out")"
        assertEquals "ctxvault help $c: every status" "$(help_codes "$TEST_TMP/all.help" | tr '\n' ' ')" \
            "$(help_codes "$TEST_TMP/h.out" | tr '\n' ' ')"
    done
    ctxvault keys rewrap --help > "$TEST_TMP/kr.out"
    assert_status "a subcommand's --help" 0 $?
    assert_grep "$TEST_TMP/kr.out" 'keys rewrap'
    ctxvault help nosuch > /dev/null 2> "$TEST_TMP/bad.err"
    assert_status "help of no command" 64 $?
    assert_grep "$TEST_TMP/bad.err" "unknown command 'nosuch'"
}

test_a_missing_instance_gets_one_message_from_every_program() {
    missing=$TEST_TMP/nowhere
    for p in "ctxvault stats" "ctxvault query --user u" "ctxvault context u" \
        "ctxvault status" "ctxvault-ingest $DATA/sample.ndjson" "ctxvault-encrypt" \
        "ctxvault-store" "ctxvault-ttl-sweep --once" "ctxvault-scrub --once" \
        "ctxvault-backup verify" "ctxvault-metrics" "ctxvault-sync --once"; do
        CTXVAULT_HOME=$missing timeout 60 $p < /dev/null > /dev/null 2> "$TEST_TMP/m.err"
        assert_status "$p without an instance" 78 $?
        assertEquals "$p without an instance" \
            "${p%% *}: error: no ctxvault instance at $missing: run \`ctxvault init\` to create it (or name another with --home or CTXVAULT_HOME)" \
            "$(cat "$TEST_TMP/m.err")"
    done
    # what needs no instance still works: init makes one
    CTXVAULT_HOME=$missing ctxvault config check > /dev/null 2>&1
    assert_status "config check of the built-in files" 0 $?
    CTXVAULT_HOME=$missing ctxvault init > /dev/null 2>&1
    assert_status init 0 $?
}

test_first_filter_run_prints_its_summary_and_messages_read_as_english() {
    event 1 > "$TEST_TMP/one.ndjson"
    pipeline "$TEST_TMP/one.ndjson"
    assert_status store 0 "$STATUS_STORE"
    assert_grep "$TEST_TMP/store.err" '^ctxvault-store: 1 stored, 0 duplicates, 0 rejected$'
    pipeline "$TEST_TMP/one.ndjson"
    assert_grep "$TEST_TMP/store.err" '^ctxvault-store: 0 stored, 1 duplicate, 0 rejected$'
    # one expired row: "1 row", not "1 rows"
    CTXVAULT_NOW=2040-01-01T00:00:00Z ctxvault-ttl-sweep --once > /dev/null 2> "$TEST_TMP/sweep.err"
    assert_status sweep 0 $?
    assert_grep "$TEST_TMP/sweep.err" 'swept 1 row and 0 audit entries'
    assert_no_grep "$TEST_TMP/sweep.err" '1 rows'
}

. shunit2
