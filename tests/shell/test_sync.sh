#!/bin/sh
# test_sync.sh - ctxvault-sync between three real instances on loopback
# (doc/SYNC.md): devices a and b and a relay r, each its own store and
# ctxvault-sync over tcp:// with CURVE and pinned keys (tools/sync-group.sh).
# A change reaches the other device through a relay that cannot read it;
# concurrent edits merge by the policy's [merge] rules, and what no rule
# settles is kept as siblings that `ctxvault conflicts` lists and resolves;
# a deletion and an erasure remove the record everywhere and a stale
# version does not bring it back; a partition heals to identical state;
# a device killed with SIGKILL mid-sync (under supervisord) converges once
# it is restarted, with nothing stored twice; bad versions are refused.
SUITE=sync
. "$CV_TOP/tests/shell/lib.sh"

CTXVAULT_BIN=$CV_BIN
export CTXVAULT_BIN
SYNCTOOL=$CV_BUILD/cvsynctool

suite_setUp() {
    G=$TEST_TMP/g
    PORT=$(free_port)
}

# group [--relay]: instances a and b (and the relay r) in $G, quick retries
group() {
    if [ "${1:-}" = --relay ]; then
        sh "$TOP/tools/sync-group.sh" "$G" "$PORT" --relay r a b || fail "sync-group failed"
        NAMES="r a b"
    else
        sh "$TOP/tools/sync-group.sh" "$G" "$PORT" a b || fail "sync-group failed"
        NAMES="a b"
    fi
    for n in $NAMES; do
        sed -i 's|^retry_max .*|retry_max = 1s|; s|^control_decrypt .*|control_decrypt = yes|' \
            "$G/$n/ctxvault.conf"
    done
}

# at NAME CMD...: CMD with CTXVAULT_HOME the instance NAME
at() {
    _n=$1
    shift
    CTXVAULT_HOME=$G/$_n "$@"
}

# up NAME...: store --serve, then ctxvault-sync, of each instance; their
# pids in STORE_<NAME> and SYNC_<NAME>
up() {
    for n in "$@"; do
        # a simple command, not a function, in the background: $! is then
        # the program itself, which down and tearDown kill
        CTXVAULT_HOME=$G/$n ctxvault-store --serve 2>> "$G/$n.store.err" &
        bg_track $!
        eval "STORE_$n=$!"
    done
    for n in "$@"; do
        wait_until 10 test -S "$G/$n/run/control.sock" ||
            fail "store $n did not start: $(cat "$G/$n.store.err")"
        sync_up "$n"
    done
}
sync_up() {
    CTXVAULT_HOME=$G/$1 ctxvault-sync 2>> "$G/$1.sync.err" &
    bg_track $!
    eval "SYNC_$1=$!"
}
# down NAME...: SIGKILL to the instance's store and ctxvault-sync
down() {
    for n in "$@"; do
        eval "kill -9 \$STORE_$n \$SYNC_$n 2> /dev/null; wait \$STORE_$n \$SYNC_$n 2> /dev/null"
    done
}

# save NAME USER CTX JSON: context.save on instance NAME
save() {
    echo "$4" | at "$1" ctxvault context save --user "$2" --name "$3" > /dev/null 2>> "$TEST_TMP/save.err" ||
        fail "save on $1 failed: $(tail -n 2 "$TEST_TMP/save.err")"
}
# field NAME USER CTX PATH: a member of the user's context on instance NAME
field() {
    _f=$(at "$1" ctxvault context "$2" --name "$3" --decrypt 2> /dev/null)
    [ -n "$_f" ] && echo "$_f" | json_get "$4"
}
# state NAME PATH: a member of sync.state (with the checksum)
state() {
    _st=$(at "$1" ctxvault sync status --checksum 2> /dev/null)
    [ -n "$_st" ] && echo "$_st" | json_get "$2"
}
# converged NAME...: the instances hold identical sync state
converged() {
    _first=$(state "$1" '$.checksum')
    [ -n "$_first" ] || return 1
    for _n in "$@"; do
        [ "$(state "$_n" '$.checksum')" = "$_first" ] || return 1
    done
}
vsql() { sqlite3 "$G/$1/data/ctxvault.db" "$2"; }

test_a_change_reaches_the_other_device_through_a_relay_that_cannot_read_it() {
    group --relay
    assertFalse "the relay holds no end-to-end key" "[ -e '$G/r/keys/sync.key' ]"
    up r a b
    save a alice trip '{"summary":"planning a trip to Lisbon","recentSearches":["lisbon hotels"]}'
    wait_until 10 eval '[ "$(field b alice trip "\$.summary")" = "planning a trip to Lisbon" ]' ||
        fail "b never got the context: $(tail -n 3 "$G/b.sync.err")"
    assertEquals "the searches on b" '["lisbon hotels"]' "$(field b alice trip '$.recentSearches')"
    wait_until 10 converged r a b || fail "the three did not converge"
    assertEquals "one version on the relay" 1 "$(vsql r 'SELECT count(*) FROM sync_versions')"
    assertEquals "its vector" '{"a":1}' "$(vsql r 'SELECT vv FROM sync_versions')"
    # the relay stores ciphertext: no field, no user, in any of its files
    assertEquals "nothing readable on the relay" "" \
        "$(grep -r -a -l -e 'Lisbon' -e 'lisbon' -e 'alice' "$G/r" 2> /dev/null)"
    assertEquals "and no context row there" 0 "$(vsql r 'SELECT count(*) FROM events')"
    at r ctxvault conflicts > /dev/null 2> "$TEST_TMP/relay.err"
    assert_status "conflicts on the relay" 77 $?
    assert_grep "$TEST_TMP/relay.err" 'relay cannot read'
    # an edit on b goes back to a, and descends from a's: one version
    save b alice trip '{"summary":"booked","recentSearches":["lisbon hotels"]}'
    wait_until 10 eval '[ "$(field a alice trip "\$.summary")" = booked ]' ||
        fail "a never got b's edit: $(tail -n 3 "$G/a.sync.err")"
    wait_until 10 converged r a b || fail "the three did not converge after b's edit"
    assertEquals "still one version, descending from both" '{"a":1,"b":1}' \
        "$(vsql r 'SELECT vv FROM sync_versions')"
    assertEquals "no conflict on a" 0 "$(state a '$.conflicts')"
    # a peer whose key is not pinned gets nothing
    CTXVAULT_HOME=$TEST_TMP/stranger ctxvault init > /dev/null
    sed -i "s|^device .*|device = x|; s|^retry_max .*|retry_max = 1s|" "$TEST_TMP/stranger/ctxvault.conf"
    echo "peer.r = tcp://127.0.0.1:$PORT $(at r ctxvault sync key)" >> "$TEST_TMP/stranger/ctxvault.conf"
    CTXVAULT_HOME=$TEST_TMP/stranger ctxvault-store --serve 2> "$TEST_TMP/stranger.err" &
    bg_track $!
    wait_until 10 test -S "$TEST_TMP/stranger/run/control.sock"
    CTXVAULT_HOME=$TEST_TMP/stranger timeout 20 ctxvault-sync --once 2> "$TEST_TMP/stranger.sync.err"
    assert_status "an unpinned peer" 69 $?
    wait_until 10 grep -q 'not pinned' "$G/r.sync.err" || fail "no refusal logged by the relay: $(cat "$G/r.sync.err")"
    assertEquals "it got nothing" 0 "$(sqlite3 "$TEST_TMP/stranger/data/ctxvault.db" 'SELECT count(*) FROM sync_versions')"
}

test_concurrent_edits_on_two_devices_merge_as_the_rules_say() {
    group --relay
    for n in a b; do # notes: no rule settles two different notes
        sed -i 's|^default        = lww|notes = siblings\ndefault = lww|' "$G/$n/policy.conf"
    done
    up r a b
    save a bob prefs '{"theme":"light","recentSearches":["a1"],"sessionCount":3,"notes":"x"}'
    wait_until 10 converged r a b || fail "the first save did not reach everyone"
    # a partition: the relay's sync is gone while both devices edit
    kill -9 "$SYNC_r"
    save a bob prefs '{"theme":"dark","recentSearches":["a2","a1"],"sessionCount":5,"notes":"x"}'
    sleep 0.05 # b's edit is the later one
    save b bob prefs '{"theme":"blue","recentSearches":["b2","a1"],"sessionCount":4,"notes":"x"}'
    sync_up r
    wait_until 15 converged r a b || fail "no convergence after the heal: $(tail -n 3 "$G/a.sync.err")"
    assertEquals "two siblings everywhere" 2 "$(vsql r 'SELECT count(*) FROM sync_versions')"
    for n in a b; do
        assertEquals "lww by clock on $n" blue "$(field $n bob prefs '$.theme')"
        assertEquals "union on $n, the later first" '["b2","a1","a2"]' "$(field $n bob prefs '$.recentSearches')"
        assertEquals "max on $n" 5 "$(field $n bob prefs '$.sessionCount')"
        assertEquals "equal notes settle on $n" x "$(field $n bob prefs '$.notes')"
    done
    at a ctxvault conflicts > "$TEST_TMP/none.out" 2> "$TEST_TMP/none.err"
    assert_status "conflicts" 0 $?
    assertEquals "the rules settled everything" 0 "$(wc -l < "$TEST_TMP/none.out")"
    # now notes differ: kept as siblings, listed, then resolved
    kill -9 "$SYNC_r"
    save a bob prefs '{"theme":"blue","recentSearches":["b2","a1","a2"],"sessionCount":5,"notes":"from a"}'
    save b bob prefs '{"theme":"blue","recentSearches":["b2","a1","a2"],"sessionCount":5,"notes":"from b"}'
    sync_up r
    wait_until 15 converged r a b || fail "no convergence after the second heal"
    at b ctxvault conflicts --user bob > "$TEST_TMP/c.out" 2> "$TEST_TMP/c.err"
    assert_status "conflicts --user" 0 $?
    assertEquals "one conflict listed" 1 "$(wc -l < "$TEST_TMP/c.out")"
    assertEquals "on notes" '["notes"]' "$(json_get '$.unsettled' < "$TEST_TMP/c.out")"
    assertEquals "two siblings" 2 "$(json_get '$.siblings' < "$TEST_TMP/c.out" | jq length)"
    assertEquals "the same on a" 1 "$(at a ctxvault conflicts | wc -l)"
    rid=$(json_get '$.rid' < "$TEST_TMP/c.out")
    dot=$(jq -r '.siblings[] | select(.fields.notes == "from a") | .dot | "\(.[0]):\(.[1])"' < "$TEST_TMP/c.out")
    at b ctxvault conflicts resolve "$rid" --pick "$dot" > "$TEST_TMP/r.out" 2> "$TEST_TMP/r.err"
    assert_status resolve 0 $?
    assertEquals "resolved" 1 "$(json_get '$.resolved' < "$TEST_TMP/r.out")"
    wait_until 10 converged r a b || fail "no convergence after the resolution"
    assertEquals "one version again" 1 "$(vsql r 'SELECT count(*) FROM sync_versions')"
    for n in a b; do
        assertEquals "the pick on $n" "from a" "$(field $n bob prefs '$.notes')"
        assertEquals "no conflict left on $n" 0 "$(at $n ctxvault conflicts | wc -l)"
    done
}

test_a_deletion_on_one_device_removes_the_record_everywhere() {
    group --relay
    up r a b
    save a carol draft '{"summary":"secret plans"}'
    save a carol keep '{"summary":"stays"}'
    save a dave draft '{"summary":"dave stays too"}'
    wait_until 10 eval '[ "$(field b carol draft "\$.summary")" = "secret plans" ]' || fail "b never got it"
    wait_until 10 converged r a b || fail "not converged before the deletion"
    # the version as it was, to send again later
    at b ctxvault api '{"op":"sync.changes","limit":100}' > "$TEST_TMP/old.json"
    at a ctxvault context delete --user carol --name draft > /dev/null 2> "$TEST_TMP/del.err"
    assert_status delete 0 $?
    wait_until 10 eval '! at b ctxvault context carol --name draft > /dev/null 2>&1' ||
        fail "the context is still on b"
    wait_until 10 converged r a b || fail "not converged after the deletion"
    assertEquals "a tombstone everywhere" 1 "$(state b '$.tombstones')"
    assertEquals "carol's other context kept" stays "$(field b carol keep '$.summary')"
    assertEquals "dave's kept" "dave stays too" "$(field b dave draft '$.summary')"
    # the old version sent again (a stale peer): held already, no resurrection
    jq -c '{op:"sync.apply",versions:.versions}' < "$TEST_TMP/old.json" > "$TEST_TMP/stale.json"
    at b ctxvault api - < "$TEST_TMP/stale.json" > "$TEST_TMP/stale.out" 2>&1
    assertEquals "nothing applied" 0 "$(json_get '$.applied' < "$TEST_TMP/stale.out")"
    assertFalse "still deleted on b" "at b ctxvault context carol --name draft"
    # an erasure on b: every record of the user goes, everywhere
    at b ctxvault delete --user carol > /dev/null 2> "$TEST_TMP/erase.err"
    assert_status erase 0 $?
    wait_until 10 eval '! at a ctxvault context carol --name keep > /dev/null 2>&1' ||
        fail "the erasure did not reach a"
    wait_until 10 converged r a b || fail "not converged after the erasure"
    assertEquals "two tombstones" 2 "$(state a '$.tombstones')"
    assertEquals "dave untouched" "dave stays too" "$(field a dave draft '$.summary')"
    assertEquals "only dave's version is not a tombstone" 1 \
        "$(vsql b "SELECT count(*) FROM sync_versions WHERE deleted = 0")"
}

test_a_partition_then_heal_converges_all_three_without_loss_or_duplication() {
    group --relay
    sed -i 's|^report_interval .*|report_interval = 200ms|' "$G/a/ctxvault.conf"
    up r a b
    MPORT=$(free_port)
    # not through at(): a function in the background is a subshell, and
    # killing it would leave ctxvault-metrics behind
    CTXVAULT_HOME=$G/a ctxvault-metrics --listen "127.0.0.1:$MPORT" 2> "$TEST_TMP/metrics.err" &
    bg_track $!
    URL=http://127.0.0.1:$MPORT
    save a u1 base '{"n":0}'
    wait_until 10 converged r a b || fail "not converged before the partition"
    down r # the relay, store and sync, gone: SIGKILL
    for i in 1 2 3 4 5 6 7 8 9 10; do
        save a "u$i" "from-a" "{\"n\":$i}"
        save b "u$i" "from-b" "{\"n\":$((i * 10))}"
    done
    save a u1 base '{"n":"a"}'
    save b u1 base '{"n":"b"}'
    wait_until 10 eval '[ "$(metric_sum ctxvault_sync_failures_total peer=\"r\")" -gt 0 ]' ||
        fail "no failed exchange counted: $(curl -s "$URL/metrics" | grep sync_)"
    ratio=$(curl -s "$URL/metrics" | grep '^ctxvault_sync_success_ratio{' | sed 's/.* //')
    assertTrue "the success ratio fell below 1 ($ratio)" "awk -v r='$ratio' 'BEGIN { exit !(r < 1) }'"
    # the gauge comes with a later report than the first failure's
    wait_until 10 eval '[ "$(sample ctxvault_sync_peer_up '"'"'peer="r"'"'"')" = 0 ]' ||
        fail "the peer down: $(curl -s "$URL/metrics" | grep sync_peer_up)"
    up r
    wait_until 30 converged r a b || fail "no convergence after the heal: $(tail -n 3 "$G/a.sync.err")"
    # the health record: every peer's exchanges together, the last good one
    wait_until 10 sh -c "curl -s '$URL/status?format=json' | grep -q '\"last_sync\": \"20'" ||
        fail "no last_sync: $(curl -s "$URL/status?format=json")"
    curl -s "$URL/status?format=json" > "$TEST_TMP/record.json"
    rate=$(json_get '$.reliability.sync_success_rate' < "$TEST_TMP/record.json")
    assertTrue "the sync success rate ($rate) is a percentage, below 100 after the failures" \
        "awk -v r='$rate' 'BEGIN { exit !(r > 0 && r < 100) }'"
    last=$(json_get '$.meta.last_sync' < "$TEST_TMP/record.json")
    assertTrue "last_sync ($last) is recent" "[ $(($(date +%s) - $(date -d "$last" +%s))) -lt 60 ]"
    # every change on each side, once: 21 records, one with two siblings
    assertEquals "records" 21 "$(state r '$.records')"
    assertEquals "versions" 22 "$(state r '$.versions')"
    for n in a b; do
        for i in 1 5 10; do
            assertEquals "a's u$i on $n" "$i" "$(field $n "u$i" from-a '$.n')"
            assertEquals "b's u$i on $n" "$((i * 10))" "$(field $n "u$i" from-b '$.n')"
        done
    done
    # each record one version, so one context row wherever it arrived
    assertEquals "a's records on b, once each" 10 \
        "$(vsql b "SELECT count(*) FROM events WHERE kind = 'context' AND type = 'from-a'")"
    assertEquals "b's records on a, once each" 10 \
        "$(vsql a "SELECT count(*) FROM events WHERE kind = 'context' AND type = 'from-b'")"
    assertEquals "the concurrent base: the later writer" b "$(field a u1 base '$.n')"
    wait_until 10 eval '[ "$(sample ctxvault_sync_peer_up peer=\"r\")" = 1 ]' || fail "the peer never came back up"
}

test_a_device_killed_with_sigkill_mid_sync_converges_after_restart() {
    group --relay
    "$SYNCTOOL" seed --home "$G/a" --records 20000 > /dev/null || fail "seed failed"
    up r a
    wait_until 60 eval '[ "$(vsql r "SELECT count(*) FROM sync_versions")" -eq 20000 ]' ||
        fail "the relay did not get the seed"
    # b under supervisord: its store and ctxvault-sync restarted when killed;
    # small pages, so the pull is still going once supervisord reports
    # every program up
    sed -i 's|^batch .*|batch = 100|' "$G/b/ctxvault.conf"
    HOME_DIR=$G/b
    CTXVAULT_HOME=$HOME_DIR
    sv_start || return
    n=0
    wait_until 60 eval 'n=$(vsql b "SELECT count(*) FROM sync_versions" 2> /dev/null); [ "${n:-0}" -gt 0 ]' ||
        fail "b never started pulling"
    pids=$(sh "$SUPERVISE" info ctxvault:ctxvault-sync | cut -d' ' -f2)
    spid=$(sh "$SUPERVISE" info ctxvault:ctxvault-store | cut -d' ' -f2)
    kill -9 "$pids" "$spid"
    got=$(vsql b "SELECT count(*) FROM sync_versions")
    echo "  (killed b's store and ctxvault-sync with $got of 20000 records pulled)"
    assertTrue "killed mid-sync ($got of 20000)" "[ $got -lt 20000 ]"
    wait_until 90 converged r a b || fail "b did not converge after the restart: $(tail -n 5 "$G/b/run/ctxvault-sync.log")"
    assertEquals "every record on b" 20000 "$(vsql b 'SELECT count(*) FROM sync_versions')"
    assertEquals "one context per record, none twice" 20000 \
        "$(vsql b "SELECT count(*) FROM events WHERE kind = 'context'")"
    assertEquals "distinct" 20000 \
        "$(vsql b "SELECT count(DISTINCT uid || '/' || type) FROM events WHERE kind = 'context'")"
    assertEquals "a record's fields" "user-00007" \
        "$(at b ctxvault context user-00007 --name ctx-3 --decrypt | json_get '$.recentSearches[1]')"
    sh "$SUPERVISE" stop > /dev/null 2>&1
}

test_once_exits_after_one_exchange_and_nonzero_without_the_relay() {
    group --relay
    up r
    for n in a b; do
        CTXVAULT_HOME=$G/$n ctxvault-store --serve 2>> "$G/$n.store.err" &
        bg_track $!
        wait_until 10 test -S "$G/$n/run/control.sock" || fail "store $n did not start"
    done
    save a dora trip '{"summary":"once to Porto"}'
    # timeout only bounds a hang: --once itself must end (124 otherwise)
    at a timeout 30 ctxvault-sync --once 2> "$TEST_TMP/once-a.err"
    assert_status "a's --once ($(tail -n 2 "$TEST_TMP/once-a.err"))" 0 $?
    assertEquals "the change on the relay" '{"a":1}' "$(vsql r 'SELECT vv FROM sync_versions')"
    at b timeout 30 ctxvault-sync --once 2> "$TEST_TMP/once-b.err"
    assert_status "b's --once ($(tail -n 2 "$TEST_TMP/once-b.err"))" 0 $?
    assertEquals "and on b" "once to Porto" "$(field b dora trip '$.summary')"
    # nothing new: --once still ends at once
    at b timeout 30 ctxvault-sync --once 2> /dev/null
    assert_status "b's --once with nothing to do" 0 $?
    # no relay: six failures in a row (retry_max 1s), then 69
    down r
    save a dora other '{"summary":"never sent"}'
    at a timeout 60 ctxvault-sync --once 2> "$TEST_TMP/once-down.err"
    assert_status "--once with the relay down" 69 $?
    assert_grep "$TEST_TMP/once-down.err" 'peer r'
}

test_bad_versions_are_refused_alone_and_counted() {
    group
    up a b
    save a erin notes '{"summary":"fine"}'
    wait_until 10 converged a b || fail "not converged"
    at a ctxvault api '{"op":"sync.changes","limit":10}' > "$TEST_TMP/v.json"
    # three bad ones (an altered payload, a vector without its own dot,
    # not a version) around one good new one from a, which b has not seen
    down b
    save a erin other '{"summary":"second"}'
    at a ctxvault api '{"op":"sync.changes","knowledge":{"a":1}}' > "$TEST_TMP/v2.json"
    jq -c --slurpfile good "$TEST_TMP/v2.json" '.versions[0] as $v |
        {op:"sync.apply", versions:[
            ($v | .dot = ["a", 7] | .vv = {"a":7} | .payload = ("AAAA" + .payload[4:])),
            ($v | .dot = ["a", 8] | .vv = {"b":1}),
            "nonsense",
            $good[0].versions[0]]}' < "$TEST_TMP/v.json" > "$TEST_TMP/bad.json"
    CTXVAULT_HOME=$G/b ctxvault-store --serve 2>> "$G/b.store.err" &
    bg_track $!
    wait_until 10 test -S "$G/b/run/control.sock"
    at b ctxvault api - < "$TEST_TMP/bad.json" > "$TEST_TMP/bad.out" 2>&1
    assert_status "apply with bad versions" 0 $?
    assertEquals "the good one applied ($(cat "$TEST_TMP/bad.out"))" 1 "$(json_get '$.applied' < "$TEST_TMP/bad.out")"
    assertEquals "three rejected" 3 "$(json_get '$.rejected' < "$TEST_TMP/bad.out" | jq length)"
    assertEquals "the altered payload, by index" 0 "$(json_get '$.rejected[0].index' < "$TEST_TMP/bad.out")"
    assert_grep "$TEST_TMP/bad.out" 'does not open'
    assert_grep "$TEST_TMP/bad.out" 'does not hold the dot'
    assertEquals "the good one's context on b" second "$(field b erin other '$.summary')"
    assertEquals "nothing of the bad ones stored" 2 "$(vsql b 'SELECT count(*) FROM sync_versions')"
    assert_grep "$G/b.store.err" 'rejected: the payload does not open'
    # sync is off on an instance without [sync]: refused, and --once says so
    serve_store || return
    ctxvault sync status > /dev/null 2> "$TEST_TMP/off.err"
    assert_status "sync.state without sync" 77 $?
    assert_grep "$TEST_TMP/off.err" 'sync is off'
    ctxvault-sync --once 2> "$TEST_TMP/once.err"
    assert_status "--once without sync" 78 $?
}

. shunit2
