#!/bin/sh
# test_instances.sh - two instances on one host: each supervised pipeline
# with the default metrics settings gets its own listener (a free loopback
# port, recorded in its run directory), both are healthy at once, and
# `ctxvault status` reports each one's own instance id and refuses another
# instance's listener; etc/supervisord.conf runs with CTXVAULT_HOME alone;
# `make run` (tools/run-demo.sh) that fails part-way stops what it started
# and names the cause.
SUITE=instances
. "$CV_TOP/tests/shell/lib.sh"

CTXVAULT_BIN=$CV_BIN
export CTXVAULT_BIN
unset CTXVAULT_SUPERVISORD_CONF

suite_tearDown() {
    sv_kill_all
}

# default_metrics HOME: the shipped [metrics] listen (lib.sh turns HTTP off),
# reports every 200 ms
default_metrics() {
    sed -i 's|^listen .*|listen = 127.0.0.1:auto|; s|^report_interval .*|report_interval = 200ms|' \
        "$1/ctxvault.conf"
}

# conf_tree: a copy of etc/ and pipelines/ with bin/ beside them holding the
# programs under test, as the repository lays them out
conf_tree() {
    mkdir -p "$TEST_TMP/tree"
    cp -r "$TOP/etc" "$TOP/pipelines" "$TEST_TMP/tree/"
    ln -s "$CV_BIN" "$TEST_TMP/tree/bin"
}

# start_bare HOME: supervisord of conf_tree with CTXVAULT_HOME alone in its
# environment, in a session of its own (tracked for clean-up); waits until
# every program is RUNNING
start_bare() {
    env -u CTXVAULT_BIN CTXVAULT_HOME="$1" setsid supervisord -n \
        -c "$TEST_TMP/tree/etc/supervisord.conf" < /dev/null > "$TEST_TMP/bare.out" 2>&1 &
    wait_until 30 test -s "$1/run/supervisord.pid" || {
        fail "supervisord did not start: $(cat "$TEST_TMP/bare.out")"
        return 1
    }
    SV_SIDS="$SV_SIDS $(cat "$1/run/supervisord.pid")"
    wait_until 60 env CTXVAULT_HOME="$1" sh "$SUPERVISE" running || {
        fail "not every program RUNNING: $(CTXVAULT_HOME="$1" sh "$SUPERVISE" status 2>&1; tail -n 5 "$1"/run/ctxvault-*.log)"
        return 1
    }
}

# healthy HOME: ctxvault status of HOME exits 0 (every service reported)
healthy() {
    CTXVAULT_HOME=$1 ctxvault status > /dev/null 2>&1
}

test_two_supervised_instances_with_default_metrics_are_each_healthy_and_named() {
    A=$HOME_DIR
    B=$TEST_TMP/b
    CTXVAULT_HOME=$B ctxvault init > /dev/null || fail "init of b"
    default_metrics "$A"
    default_metrics "$B"
    conf_tree
    # a: through supervise.sh; b: supervisord itself, given CTXVAULT_HOME alone
    sv_start || return
    start_bare "$B" || return
    # b's programs are those beside the configuration (%(here)s/../bin)
    pid=$(CTXVAULT_HOME=$B sh "$SUPERVISE" info ctxvault:ctxvault-store | cut -d ' ' -f 2)
    assertEquals "b's store is the program under test" \
        "$(readlink -f "$CV_BIN/ctxvault-store")" "$(readlink -f "/proc/$pid/exe")"
    # each listener on its own loopback port, recorded in its run directory
    wait_until 10 test -s "$A/run/metrics.listen" || fail "a recorded no listener"
    wait_until 10 test -s "$B/run/metrics.listen" || fail "b recorded no listener"
    addr_a=$(cat "$A/run/metrics.listen")
    addr_b=$(cat "$B/run/metrics.listen")
    case $addr_a in 127.0.0.1:[0-9]*) ;; *) fail "a listens on $addr_a" ;; esac
    case $addr_b in 127.0.0.1:[0-9]*) ;; *) fail "b listens on $addr_b" ;; esac
    assertNotEquals "two ports" "$addr_a" "$addr_b"
    # both healthy at once, each status naming its own instance
    wait_until 30 healthy "$A" || fail "a not healthy: $(CTXVAULT_HOME=$A ctxvault status 2>&1)"
    wait_until 30 healthy "$B" || fail "b not healthy: $(CTXVAULT_HOME=$B ctxvault status 2>&1)"
    id_a=$(cat "$A/instance-id")
    id_b=$(cat "$B/instance-id")
    assertNotEquals "two ids" "$id_a" "$id_b"
    CTXVAULT_HOME=$A ctxvault status > "$TEST_TMP/a.txt" 2>&1
    assert_status "status of a" 0 $?
    CTXVAULT_HOME=$B ctxvault status > "$TEST_TMP/b.txt" 2>&1
    assert_status "status of b" 0 $?
    assertEquals "a's status names a" "instance $id_a at $A" "$(sed -n 2p "$TEST_TMP/a.txt")"
    assertEquals "b's status names b" "instance $id_b at $B" "$(sed -n 2p "$TEST_TMP/b.txt")"
    assertEquals "a's record names a" "$id_a" \
        "$(CTXVAULT_HOME=$A ctxvault status --json | json_get '$.instance')"
    assertEquals "/health of b names b" "$id_b" "$(curl -s "$addr_b/health" | json_get '$.instance')"
    # events sent to each land in that instance only
    printf '{"kind":"interaction","user_id":"u-a","ts":"2026-12-01T00:00:00Z","type":"click"}\n' > "$TEST_TMP/a.ndjson"
    CTXVAULT_HOME=$A ctxvault-ingest --timeout 60 "$TEST_TMP/a.ndjson" 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    assertEquals "a's row" 1 "$(sqlite3 "$A/data/ctxvault.db" 'SELECT COUNT(*) FROM events')"
    assertEquals "nothing in b" 0 "$(sqlite3 "$B/data/ctxvault.db" 'SELECT COUNT(*) FROM events')"
}

test_status_refuses_the_metrics_listener_of_another_instance() {
    A=$HOME_DIR
    B=$TEST_TMP/b
    CTXVAULT_HOME=$B ctxvault init > /dev/null || fail "init of b"
    default_metrics "$A"
    ctxvault-metrics 2> "$TEST_TMP/metrics.err" &
    bg_track $!
    wait_until 10 test -s "$A/run/metrics.listen" || fail "a recorded no listener"
    addr_a=$(cat "$A/run/metrics.listen")
    wait_until 10 curl -s -o /dev/null "$addr_a/status" || fail "a's metrics do not answer"
    id_a=$(cat "$A/instance-id")
    id_b=$(cat "$B/instance-id")
    # b told a's fixed address (a configuration copied from a)
    sed -i "s|^listen .*|listen = $addr_a|" "$B/ctxvault.conf"
    CTXVAULT_HOME=$B ctxvault status > "$TEST_TMP/status.out" 2> "$TEST_TMP/status.err"
    assert_status status 69 $?
    assertEquals "none of a's numbers" "" "$(cat "$TEST_TMP/status.out")"
    assert_grep "$TEST_TMP/status.err" "serves instance $id_a, not this instance \\($id_b at $B\\): refusing"
    CTXVAULT_HOME=$B ctxvault status --json > "$TEST_TMP/status.out" 2> "$TEST_TMP/status.err"
    assert_status "status --json" 69 $?
    assertEquals "no record of a's" "" "$(cat "$TEST_TMP/status.out")"
    # b with port auto, its run directory naming a's listener (left from
    # another instance's files): refused as well
    sed -i "s|^listen .*|listen = 127.0.0.1:auto|" "$B/ctxvault.conf"
    echo "$addr_a" > "$B/run/metrics.listen"
    CTXVAULT_HOME=$B ctxvault status > "$TEST_TMP/status.out" 2> "$TEST_TMP/status.err"
    assert_status "status, auto" 69 $?
    assert_grep "$TEST_TMP/status.err" "serves instance $id_a, not this instance"
    # and with no listener recorded, it says which file it looked for
    rm "$B/run/metrics.listen"
    CTXVAULT_HOME=$B ctxvault status > /dev/null 2> "$TEST_TMP/status.err"
    assert_status "status, none" 69 $?
    assert_grep "$TEST_TMP/status.err" "not serving: no $B/run/metrics.listen"
    # a's own status is a's
    CTXVAULT_HOME=$A ctxvault status > "$TEST_TMP/a.txt" 2> /dev/null
    assertEquals "a's status names a" "instance $id_a at $A" "$(sed -n 2p "$TEST_TMP/a.txt")"
}

test_an_instance_made_before_ids_gets_one_on_first_use() {
    rm "$HOME_DIR/instance-id"
    default_metrics "$HOME_DIR"
    ctxvault-metrics 2> "$TEST_TMP/metrics.err" &
    bg_track $!
    wait_until 10 test -s "$HOME_DIR/run/metrics.listen" || fail "no listener recorded"
    id=$(cat "$HOME_DIR/instance-id")
    case $id in [0-9a-f]*) ;; *) fail "no id made: '$id'" ;; esac
    assertEquals "16 hex digits" 16 "${#id}"
    ctxvault status > "$TEST_TMP/status.txt" 2> /dev/null
    assertEquals "status names it" "instance $id at $HOME_DIR" "$(sed -n 2p "$TEST_TMP/status.txt")"
    # init keeps it
    ctxvault init > "$TEST_TMP/init.out"
    assert_grep "$TEST_TMP/init.out" "^kept instance id $id\$"
    assertEquals "unchanged" "$id" "$(cat "$HOME_DIR/instance-id")"
}

test_a_failed_make_run_stops_what_it_started_and_names_the_cause() {
    # the repository's layout, with the programs under test
    R=$TEST_TMP/repo
    mkdir -p "$R/tests"
    ln -s "$CV_BIN" "$R/bin"
    ln -s "$TOP/tools" "$R/tools"
    ln -s "$TOP/etc" "$R/etc"
    ln -s "$TOP/pipelines" "$R/pipelines"
    ln -s "$TOP/tests/data" "$R/tests/data"
    # the instance of make run, its database unreadable: store refuses it
    CTXVAULT_HOME=$R/var ctxvault init > /dev/null || fail "init"
    sed -i 's|^listen .*|listen = 127.0.0.1:0|' "$R/var/ctxvault.conf"
    printf 'not a database, not at all; %0200d\n' 0 > "$R/var/data/ctxvault.db"
    (cd "$R" && SUPERVISE_TIMEOUT=10 sh tools/run-demo.sh > "$TEST_TMP/run.out" 2> "$TEST_TMP/run.err")
    rc=$?
    [ -s "$R/var/run/supervisord.pid" ] && SV_SIDS="$SV_SIDS $(cat "$R/var/run/supervisord.pid")"
    assertNotEquals "make run fails" 0 "$rc"
    # the cause, as store said it, on run-demo's last line
    assertTrue "the cause: $(cat "$TEST_TMP/run.err")" \
        "tail -n 1 '$TEST_TMP/run.err' | grep -q 'run-demo: supervisord did not start the pipeline, and is stopped: ctxvault-store: error: database .* is corrupt'"
    # supervisord's log printed once, not twice
    assertEquals "one log" 1 "$(grep -c 'supervisord.log ends:\|supervisord.out ends:' "$TEST_TMP/run.err")"
    assert_grep "$TEST_TMP/run.err" "exited: ctxvault-store \(exit status 65"
    assertEquals "no line of it twice" "" "$(grep '^    [0-9]\{4\}-' "$TEST_TMP/run.err" | sort | uniq -d)"
    # nothing it started is left
    pid=$(cat "$R/var/run/supervisord.pid" 2> /dev/null)
    if [ -n "$pid" ]; then
        assertFalse "supervisord stopped" "kill -0 $pid 2> /dev/null && ! grep -q '^[0-9]* (.*) Z' /proc/$pid/stat"
        assertEquals "no process of its session" "" "$(ps -o pid= -s "$pid" 2> /dev/null | tr -d ' ')"
    fi
    assertEquals "no program of the instance" "" "$(pgrep -a -f "^$R/bin/ctxvault-")"
}

. shunit2
