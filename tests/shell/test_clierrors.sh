#!/bin/sh
# test_clierrors.sh - ctxvault refuses what it cannot do with one message
# and the status its --help names: a malformed option or argument is 64
# and nothing is read or changed, a damaged keyring or policy is 78, a
# primary key cannot be retired (65), and a request the store refuses
# comes back with its reason and status (66 for no such user).
SUITE=clierrors
. "$CV_TOP/tests/shell/lib.sh"

# refused STATUS ERE ARGS...: `ctxvault ARGS` exits STATUS and its stderr
# matches ERE
refused() {
    _st=$1 _re=$2
    shift 2
    ctxvault "$@" > "$TEST_TMP/out" 2> "$TEST_TMP/err" < /dev/null
    assertEquals "exit status of ctxvault $* (stderr: $(head -c 300 "$TEST_TMP/err"))" "$_st" "$?"
    assert_grep "$TEST_TMP/err" "$_re" "ctxvault $*: stderr should match /$_re/"
}

test_malformed_arguments_are_usage_errors() {
    long=$(printf 'x%.0s' $(seq 300))
    refused 64 'usage: ctxvault query' query
    refused 64 'usage: ctxvault query' query --user u extra
    refused 64 "--since 'yesterday' is not an RFC 3339 time" query --user u --since yesterday
    refused 64 "--until '2026-13-01' is not an RFC 3339 time" query --user u --until 2026-13-01
    refused 64 "--limit 'many' is not a number" query --user u --limit many
    refused 64 'unrecognized option' query --user u --bogus
    refused 64 'usage: ctxvault delete --user U' delete
    refused 64 'usage: ctxvault delete --user U' delete --user u extra
    refused 64 'usage: ctxvault verify \[--scrub\]' verify --deep
    refused 64 'usage: ctxvault audit verify\|list' audit
    refused 64 'usage: ctxvault audit verify\|list' audit show
    refused 64 'usage: ctxvault get ID' get
    refused 64 'usage: ctxvault get ID' get id1 id2
    refused 64 'usage: ctxvault config check' config
    refused 64 'usage: ctxvault deadletter' deadletter sender
    refused 64 'usage: ctxvault keys list' keys
    refused 64 'usage: ctxvault keys list' keys passphrase forget
    refused 64 "--batch '0' is not a number from 1 to 100000" keys rewrap --batch 0
    refused 64 'usage: ctxvault keys rewrap' keys rewrap --fast
    refused 64 'usage: ctxvault keys retire VERSION' keys retire
    refused 64 'usage: ctxvault keys retire VERSION' keys retire two
    refused 64 'usage: ctxvault init' init again
    refused 64 'usage: ctxvault status' status --yaml
    refused 64 'usage: ctxvault stats' stats --since never
    refused 64 'usage: ctxvault stats' stats today
    refused 64 'usage: ctxvault context USER' context
    refused 64 'usage: ctxvault context USER' context u --limit 5
    refused 64 'usage: ctxvault context USER' context u --id c1 --list
    refused 64 "--limit '0' is not a number from 1 to 1000" context u --list --limit 0
    refused 64 'usage: ctxvault context save' context save
    refused 64 "--id is longer than" context save --user u --id "$long"
    refused 64 "--ts 'noon' is not an RFC 3339 time" context save --user u --ts noon
    refused 64 'usage: ctxvault context delete' context delete --user u
    refused 64 'usage: ctxvault context delete' context delete --user u --id c1 --all
    refused 64 'usage: ctxvault interactions' interactions
    refused 64 "--since 'x' is not an RFC 3339 time" interactions --user u --since x
    refused 64 "--until 'x' is not an RFC 3339 time" interactions --user u --until x
    refused 64 "--limit '0' is not a number from 1" interactions --user u --limit 0
    refused 64 "--page '1001' is not a number from 1 to 1000" interactions --user u --page 1001
    refused 64 'usage: ctxvault interactions save' interactions save --user ''
    refused 64 'usage: ctxvault api JSON' api
    refused 64 "--retention-days 'forever' is not a number of days or 'none'" \
        profile set --user u --retention-days forever
    refused 64 '--preferences must be a JSON object' profile set --user u --preferences '[1]'
    refused 64 '--preferences must be a JSON object: ' profile set --user u --preferences '{'
    refused 64 'usage: ctxvault profile set' profile set --user u
    refused 64 'usage: ctxvault profile set' profile get --user u --privacy-level full
    # none of it touched the instance: no row, no audit entry
    assertEquals "rows" 0 "$(rows)"
    assertEquals "audit entries" 0 "$(sql 'SELECT COUNT(*) FROM audit')"
}

test_a_damaged_keyring_is_a_configuration_error() {
    printf 'not a keyring\n' > "$HOME_DIR/keys/keyring"
    for args in "query --user u" "get some-id" "audit verify" "deadletter --decrypt" \
        "keys rotate" "keys list" "keys retire 1"; do
        # shellcheck disable=SC2086 # the words of args are the arguments
        refused 78 'keys/keyring is not valid JSON' $args
    done
    assertEquals "the keyring is as it was" "not a keyring" "$(cat "$HOME_DIR/keys/keyring")"
}

test_every_program_refuses_an_unknown_option_and_a_stray_argument() {
    for p in ctxvault-ingest ctxvault-encrypt ctxvault-store ctxvault-ttl-sweep \
        ctxvault-scrub ctxvault-backup ctxvault-metrics ctxvault-sync; do
        "$p" --bogus < /dev/null > /dev/null 2> "$TEST_TMP/err"
        assertEquals "$p --bogus" 64 $?
        assert_grep "$TEST_TMP/err" "unrecognized option '--bogus'"
    done
    for p in ctxvault-encrypt ctxvault-store ctxvault-ttl-sweep ctxvault-scrub \
        ctxvault-metrics ctxvault-sync; do
        "$p" stray < /dev/null > /dev/null 2> "$TEST_TMP/err"
        assertEquals "$p stray" 64 $?
        assert_grep "$TEST_TMP/err" "usage: $p|unexpected argument 'stray'"
    done
    ctxvault-backup stray > /dev/null 2> "$TEST_TMP/err"
    assertEquals "ctxvault-backup stray" 64 $?
    assert_grep "$TEST_TMP/err" "unknown command 'stray'"
}

test_ingest_refuses_options_that_exclude_each_other_or_are_malformed() {
    event 1 u-i > "$TEST_TMP/ev"
    kind65=$(printf 'k%.0s' $(seq 65))
    for c in "--stdout --serve|--stdout and --serve exclude each other" \
        "--serve $TEST_TMP/ev|--serve takes no files" \
        "--stdout --source app $TEST_TMP/ev|--source is for client mode" \
        "--source bad/name $TEST_TMP/ev|--source 'bad/name' must be 1 to 64 letters" \
        "--kind $kind65 $TEST_TMP/ev|--kind '$kind65' must be 1 to 64 bytes" \
        "--kind a\"b $TEST_TMP/ev|--kind 'a\"b' may not hold quotes" \
        "--timeout soon $TEST_TMP/ev|--timeout 'soon' is not a number of seconds" \
        "--drain 5y --serve|--drain '5y' is not a number of seconds"; do
        # shellcheck disable=SC2086 # the words are the arguments
        ctxvault-ingest ${c%%|*} > "$TEST_TMP/out" 2> "$TEST_TMP/err" < /dev/null
        assertEquals "ctxvault-ingest ${c%%|*}" 64 $?
        assert_grep "$TEST_TMP/err" "${c#*|}"
    done
    assertEquals "nothing spooled or stored" 0 "$(rows)"
}

test_a_damaged_keyring_stops_every_stage_before_it_stores() {
    event 1 u-k > "$TEST_TMP/ev"
    printf 'junk\n' > "$HOME_DIR/keys/keyring"
    for p in "ctxvault-ingest --stdout $TEST_TMP/ev" ctxvault-encrypt ctxvault-store \
        "ctxvault-ttl-sweep --once" \
        "ctxvault-scrub --once" "ctxvault-backup create"; do
        # shellcheck disable=SC2086 # the words of p are the command
        $p < "$TEST_TMP/ev" > "$TEST_TMP/out" 2> "$TEST_TMP/err"
        assertEquals "$p" 78 $?
        assert_grep "$TEST_TMP/err" 'keys/keyring is not valid JSON'
        assertEquals "$p wrote nothing" 0 "$(nonblank "$TEST_TMP/out")"
    done
    assertEquals "rows" 0 "$(rows)"
    assertEquals "backups" 0 "$(find "$HOME_DIR/backups" -type f | grep -c .)"
}

test_a_policy_problem_stops_encrypt_and_store() {
    event 1 u-p > "$TEST_TMP/ev"
    echo 'this is no rule' >> "$HOME_DIR/policy.conf"
    ctxvault-encrypt < "$TEST_TMP/ev" > "$TEST_TMP/out" 2> "$TEST_TMP/err"
    assertEquals "encrypt" 78 $?
    assert_grep "$TEST_TMP/err" 'policy .*policy.conf has 1 problem; no events processed'
    assertEquals "encrypt wrote nothing" 0 "$(nonblank "$TEST_TMP/out")"
    ctxvault-store < "$TEST_TMP/ev" > /dev/null 2> "$TEST_TMP/err"
    assertEquals "store" 78 $?
    assert_grep "$TEST_TMP/err" 'policy.conf:[0-9]+: '
    assertEquals "rows" 0 "$(rows)"
    ctxvault-encrypt --policy "$TEST_TMP/absent.conf" < "$TEST_TMP/ev" > /dev/null 2> "$TEST_TMP/err"
    assertEquals "encrypt --policy of no file" 78 $?
    assert_grep "$TEST_TMP/err" "cannot read policy .*absent.conf: No such file"
}

test_a_policy_problem_fails_config_check_and_reads() {
    echo 'this is no rule' >> "$HOME_DIR/policy.conf"
    refused 78 'policy.conf:[0-9]+' config check
    assert_grep "$TEST_TMP/err" "1 problem in .*policy.conf"
    refused 78 'policy.conf:[0-9]+' query --user u
    refused 78 'policy.conf:[0-9]+' verify --scrub
}

test_the_primary_key_cannot_be_retired_and_rotate_makes_a_new_one() {
    refused 65 'key version 1 is the primary: rotate, rewrap, then retire it' keys retire 1
    ctxvault keys rotate > "$TEST_TMP/rot.out" 2> "$TEST_TMP/rot.err"
    assert_status rot 0 $?
    assertEquals "the new primary" 2 "$(json_get '$.primary' < "$TEST_TMP/rot.out")"
    refused 65 'key version 2 is the primary' keys retire 2
    refused 65 'key version 9 is not in the keyring' keys retire 9
}

test_an_empty_instance_verifies_and_lists_an_empty_audit() {
    ctxvault verify --scrub > "$TEST_TMP/v.out" 2> "$TEST_TMP/v.err"
    assert_status v 0 $?
    ctxvault audit list > "$TEST_TMP/a.out" 2> "$TEST_TMP/a.err"
    assert_status a 0 $?
    assertEquals "no audit entry" 0 "$(nonblank "$TEST_TMP/a.out")"
    ctxvault deadletter > "$TEST_TMP/d.out" 2> "$TEST_TMP/d.err"
    assert_status d 0 $?
    assertEquals "no dead letter" 0 "$(nonblank "$TEST_TMP/d.out")"
}

test_the_store_refusal_comes_back_with_its_reason_and_status() {
    serve_store || return
    refused 66 'no data held about user nobody' delete --user nobody
    # the receipt is printed all the same: the request is on record
    assertEquals "receipt's deleted" 0 "$(json_get '$.deleted' < "$TEST_TMP/out")"
    refused 65 "unknown op 'no.such.op'" api '{"op":"no.such.op"}'
    assertEquals "the reply printed" unknown_op "$(json_get '$.code' < "$TEST_TMP/out")"
    refused 65 'the request is not valid JSON' api 'not json'
    refused 66 'no such user' context nobody
    refused 66 'no such user' context delete --user nobody --all
    refused 66 'no such user' profile get --user nobody
    # a request from stdin
    echo '{"op":"stats"}' | ctxvault api - > "$TEST_TMP/s.out" 2> "$TEST_TMP/s.err"
    assert_status s 0 $?
    assertEquals "stats answered" 1 "$(json_get '$.ok' < "$TEST_TMP/s.out")"
}

. shunit2
