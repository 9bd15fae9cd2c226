#!/bin/sh
# test_diskfull.sh - full disks: store's database (and its journal) on a
# small tmpfs stops acknowledging, says why (log, health), keeps nothing
# half-written, and once space is freed commits everything exactly once;
# ingest's spool on a small tmpfs refuses new input with a clear error and
# exit status 74, and delivers everything it accepted before.
#
# Each scenario runs in a private mount namespace the test makes itself
# (unshare --mount; the tests run as root), so the tmpfs is nobody else's
# and goes when the scenario ends. Every process of a scenario runs inside
# it, in a script written to $TEST_TMP; results come out as files
# $TEST_TMP/r.NAME (outside the tmpfs), which the test then asserts on.
SUITE=diskfull
. "$CV_TOP/tests/shell/lib.sh"

PRODUCE=$CV_BUILD/cvproduce

# A scenario's limit: generous for ASan on a busy machine; the waits
# inside poll every 0.1 s, so a quick run stays quick.
NS_TIMEOUT=150

suite_setUp() {
    # quick resends (the first after 200 ms, then doubling), small
    # batches so the disk fills batch by batch, frequent reports
    conf_set resend 200ms
    conf_set batch_size 500
    conf_set report_interval 200ms
    conf_set stale_after 10s
    PORT=$(free_port)
    conf_set listen "127.0.0.1:$PORT"
    URL=http://127.0.0.1:$PORT
    rm -f "$TEST_TMP"/r.*
}

# ns_available: fail, with the reason, unless this test may make a
# private mount namespace and mount a tmpfs in it (a skip would hide the
# very thing the suite is for)
ns_available() {
    mkdir -p "$TEST_TMP/probe"
    if unshare --mount --propagation private sh -c \
        "mount -t tmpfs -o size=64k tmpfs '$TEST_TMP/probe' && umount '$TEST_TMP/probe'" \
        > "$TEST_TMP/probe.err" 2>&1; then
        return 0
    fi
    fail "cannot make a private mount namespace with a small tmpfs (unshare --mount, mount -t tmpfs: the suite needs root or CAP_SYS_ADMIN): $(head -c 300 "$TEST_TMP/probe.err")"
    return 1
}

# ns_lib: the helpers every scenario script sources first
ns_lib() {
    cat > "$TEST_TMP/ns_lib.sh" << 'EOF'
. "$CV_TOP/tests/shell/lib.sh"
# what went wrong inside, for the test to report
fail() { echo "$*" >> "$TEST_TMP/r.errors"; }
# put NAME VALUE: a result for the test
put() { printf '%s\n' "$2" > "$TEST_TMP/r.$1"; }
PIDS=
# track PID: killed when the scenario ends, whatever happens
track() { PIDS="$PIDS $1"; }
trap 'for p in $PIDS; do kill -9 "$p" 2> /dev/null; done' EXIT
# small DIR SIZE: DIR on a tmpfs of SIZE, holding what it held
small() {
    mkdir -p "$1" && rm -rf "$TEST_TMP/small.copy" &&
        cp -a "$1" "$TEST_TMP/small.copy" || { fail "cannot copy $1"; exit 99; }
    mount -t tmpfs -o "size=$2,mode=0700" tmpfs "$1" ||
        { fail "cannot mount a tmpfs of $2 on $1"; exit 99; }
    cp -a "$TEST_TMP/small.copy/." "$1/" || { fail "cannot fill $1"; exit 99; }
}
# grow DIR SIZE: free space by growing the tmpfs
grow() {
    mount -o "remount,size=$2" "$1" || fail "cannot grow the tmpfs on $1"
}
# stop PID: SIGTERM, wait; the exit status
stop() {
    kill -TERM "$1" 2> /dev/null
    wait "$1" 2> /dev/null
}
# status_says ERE: `ctxvault status` (kept in status.txt) matches ERE
status_says() {
    ctxvault status > "$TEST_TMP/status.txt" 2>&1
    grep -q -E -- "$1" "$TEST_TMP/status.txt"
}
# degraded_now: `ctxvault status` exits 69 and names store's reason, the
# client's spool holds events, and /health answers 503, all at once
degraded_now() {
    ctxvault status > "$TEST_TMP/status.txt" 2>&1
    _st=$?
    [ "$_st" -eq 69 ] &&
        grep -q -E 'ctxvault-store: commits to .* fail.*(No space left on device|database or disk is full)' "$TEST_TMP/status.txt" &&
        grep -q -E 'ctxvault-ingest .*spooled [1-9]' "$TEST_TMP/status.txt" &&
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")" = 503 ]
}
# serve: store and encrypt as services (stderr in store.err, encrypt.err)
serve() {
    ctxvault-store --serve 2>> "$TEST_TMP/store.err" &
    STORE=$!
    track "$STORE"
    ctxvault-encrypt --serve 2>> "$TEST_TMP/encrypt.err" &
    ENCRYPT=$!
    track "$ENCRYPT"
    wait_until 30 grep -q 'ready in' "$TEST_TMP/store.err" ||
        { fail "store did not start: $(cat "$TEST_TMP/store.err")"; exit 99; }
}
# metrics: ctxvault-metrics, expecting store and encrypt
metrics() {
    ctxvault-metrics --expect "ctxvault-store ctxvault-encrypt" 2> "$TEST_TMP/metrics.err" &
    track $!
    METRICS=$!
    wait_until 30 curl -s -o /dev/null "$URL/status" ||
        fail "ctxvault-metrics did not start: $(cat "$TEST_TMP/metrics.err")"
}
EOF
}

# ns_run NAME: run the scenario $TEST_TMP/NAME.sh in a private mount
# namespace; its output in NAME.out
ns_run() {
    ns_lib
    export HOME_DIR TEST_TMP DB GEN URL PRODUCE N
    timeout -k 5 "$NS_TIMEOUT" unshare --mount --propagation private \
        sh "$TEST_TMP/$1.sh" > "$TEST_TMP/$1.out" 2>&1
    _rc=$?
    [ "$_rc" -eq 0 ] || fail "scenario $1 ended with status $_rc: $(tail -c 600 "$TEST_TMP/$1.out")"
    if [ -s "$TEST_TMP/r.errors" ]; then
        fail "inside the scenario: $(head -c 1500 "$TEST_TMP/r.errors")"
    fi
    # under ASan/UBSan: a program whose exit status is not asserted
    # (metrics, encrypt) must not have reported either
    _san=$(grep -l -E 'Sanitizer|runtime error' "$TEST_TMP"/*.err "$TEST_TMP"/*.out 2> /dev/null)
    [ -z "$_san" ] || fail "a sanitizer reported in: $_san: $(grep -h -m 3 -E 'Sanitizer|runtime error' $_san)"
}

# got NAME: a result the scenario put
got() {
    cat "$TEST_TMP/r.$1" 2> /dev/null
}

# The store scenario: the database directory (with the journal, when
# the test puts it there) on a 5 MiB tmpfs, which 6000 events fill part
# way (each takes about 1.8 KiB of database, WAL and journal); the client
# sends them, store fails and says so, then the tmpfs grows.
store_scenario() {
    N=6000
    gen "$TEST_TMP/in.ndjson" -n $N -s 91 -u 40
    cat > "$TEST_TMP/store_full.sh" << 'EOF'
. "$TEST_TMP/ns_lib.sh"
small "$HOME_DIR/data" 5m
metrics
serve
ctxvault-ingest --timeout 120 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/client.err" &
CLIENT=$!
track "$CLIENT"
wait_until 60 grep -q -E 'No space left on device|database or disk is full' "$TEST_TMP/store.err" ||
    fail "store never found its disk full: $(tail -c 600 "$TEST_TMP/store.err")"
# health: store degraded with the reason; ingest's spool holds events
wait_until 30 degraded_now && put degraded yes
cp "$TEST_TMP/status.txt" "$TEST_TMP/r.status_full"
put commit_failures "$(curl -s "$URL/metrics" | grep '^ctxvault_commit_failures_total{program="ctxvault-store"' | sed 's/.* //')"
# a while later, still not all stored and the client still waiting
sleep 1
put rows_full "$(rows)"
kill -0 "$CLIENT" 2> /dev/null && put client_waiting yes
put df_full "$(df -k "$HOME_DIR/data" | tail -n 1)"
grow "$HOME_DIR/data" 64m
wait "$CLIENT"
put client_rc $?
put rows "$(rows)"
put distinct "$(distinct_ids)"
put spool_left "$(find "$HOME_DIR/spool" -name '*.seg' | wc -l)"
wait_until 30 status_says '^ctxvault: ok' ||
    fail "health never came back: $(cat "$TEST_TMP/status.txt")"
stop "$STORE"
put store_rc $?
stop "$ENCRYPT"
ctxvault verify > "$TEST_TMP/verify.err" 2>&1
put verify_rc $?
# a restart finds the journal and the database at the same batch
ctxvault-store --serve 2> "$TEST_TMP/store2.err" &
STORE=$!
track "$STORE"
wait_until 30 grep -q 'ready in' "$TEST_TMP/store2.err" || fail "no restart: $(cat "$TEST_TMP/store2.err")"
stop "$STORE"
put store2_rc $?
put rows_restarted "$(rows)"
# the journal alone rebuilds the database: each batch once, none lost
mkdir -p "$TEST_TMP/aside"
mv "$DB" "$DB-wal" "$DB-shm" "$TEST_TMP/aside/" 2> /dev/null
ctxvault-backup restore > "$TEST_TMP/restore.out" 2> "$TEST_TMP/restore.err"
put restore_rc $?
put rows_restored "$(rows)"
put distinct_restored "$(distinct_ids)"
stop "$METRICS"
EOF
    ns_run store_full
}

# store_asserts ERE: what every store scenario shows; ERE is the reason
# store must give
store_asserts() {
    assert_grep "$TEST_TMP/store.err" "cannot commit to $DB: .*($1)" \
        "store names the database and the reason"
    assert_grep "$TEST_TMP/store.err" 'batch rolled back, nothing acknowledged'
    assertEquals "health degraded (status 69, /health 503) with store's reason and a spool depth: $(cat "$TEST_TMP/r.status_full")" \
        yes "$(got degraded)"
    assert_grep "$TEST_TMP/r.status_full" '^ctxvault: degraded'
    assertTrue "failed commits counted ($(got commit_failures))" "[ '$(got commit_failures)' -gt 0 ]"
    assertEquals "the client waits while the disk is full" yes "$(got client_waiting)"
    assertTrue "not all stored while the disk is full ($(got rows_full) of $N; $(got df_full))" \
        "[ '$(got rows_full)' -lt $N ]"
    assertEquals "client exit status ($(head -c 400 "$TEST_TMP/client.err"))" 0 "$(got client_rc)"
    assertEquals "rows" $N "$(got rows)"
    assertEquals "distinct ids" $N "$(got distinct)"
    assertEquals "spool segments left" 0 "$(got spool_left)"
    assertEquals "store's exit status" 0 "$(got store_rc)"
    assertEquals "ctxvault verify ($(head -c 400 "$TEST_TMP/verify.err"))" 0 "$(got verify_rc)"
    assertEquals "restarted store's exit status" 0 "$(got store2_rc)"
    assert_no_grep "$TEST_TMP/store2.err" 'replayed|torn|lacks|missing' \
        "a restart finds nothing to replay or cut"
    assertEquals "rows after the restart" $N "$(got rows_restarted)"
    assertEquals "restore from the journal alone ($(head -c 400 "$TEST_TMP/restore.err"))" \
        0 "$(got restore_rc)"
    assertEquals "rows restored from the journal" $N "$(got rows_restored)"
    assertEquals "distinct ids restored from the journal" $N "$(got distinct_restored)"
}

test_store_on_a_full_disk_stops_acknowledging_and_commits_each_event_once_when_space_is_freed() {
    ns_available || return
    # the journal on the small disk too: its appends meet ENOSPC first,
    # and in small segments, so starting a segment meets it too
    conf_set journal data/journal
    conf_set journal_segment 128KiB
    store_scenario
    store_asserts 'No space left on device|database or disk is full'
    assert_grep "$TEST_TMP/store.err" "cannot write the journal in $HOME_DIR/data/journal: No space left on device" \
        "the journal's failure names its directory and the reason"
}

test_sqlite_full_rolls_back_the_journal_record_and_commits_each_event_once_later() {
    ns_available || return
    # the journal on the normal disk: its record is written, then COMMIT
    # meets SQLITE_FULL, and the record must be taken back
    store_scenario
    store_asserts 'database or disk is full'
}

# The spool scenarios: ingest's spool on a 512 KiB tmpfs; store keeps up,
# but a spool segment is removed only when all of its 4096 records are
# acknowledged, so the first segment fills the tmpfs.
test_the_client_refuses_input_when_its_spool_fills_and_delivers_what_it_accepted() {
    ns_available || return
    N=5000
    gen "$TEST_TMP/in.ndjson" -n $N -s 92 -u 40
    cat > "$TEST_TMP/spool_client.sh" << 'EOF'
. "$TEST_TMP/ns_lib.sh"
small "$HOME_DIR/spool" 512k
metrics
serve
ctxvault-ingest --timeout 120 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/client.err"
put client_rc $?
put rows_first "$(rows)"
put distinct_first "$(distinct_ids)"
put spool_records "$(find "$HOME_DIR/spool" -name '*.seg' -size +8c | wc -l)"
wait_until 10 sh -c "curl -s '$URL/metrics' | grep -q '^ctxvault_events_refused_total{program=\"ctxvault-ingest\"[^}]*} [1-9]'" ||
    fail "no refusal counted: $(curl -s "$URL/metrics" | grep refused)"
grow "$HOME_DIR/spool" 64m
ctxvault-ingest --timeout 120 "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/client2.err"
put client2_rc $?
put rows "$(rows)"
put distinct "$(distinct_ids)"
put spool_left "$(find "$HOME_DIR/spool" -name '*.seg' | wc -l)"
stop "$STORE"
stop "$ENCRYPT"
stop "$METRICS"
ctxvault verify > "$TEST_TMP/verify.err" 2>&1
put verify_rc $?
EOF
    ns_run spool_client
    assertEquals "client exit status on a full spool" 74 "$(got client_rc)"
    assert_grep "$TEST_TMP/client.err" \
        "cannot (write to|sync) the spool in $HOME_DIR/spool/ingest-client: No space left on device" \
        "the client names the spool and the reason"
    assert_grep "$TEST_TMP/client.err" 'in\.ndjson:[0-9]+: .*refusing'
    # what it accepted is stored (all of it acknowledged before it exits)
    accepted=$(sed -n 's/.*of the \([0-9]*\) events accepted before, 0 are not acknowledged.*/\1/p' "$TEST_TMP/client.err")
    assertTrue "the client says how many it accepted: $(head -c 600 "$TEST_TMP/client.err")" "[ -n '$accepted' ]"
    assertEquals "rows after the refusal" "$accepted" "$(got rows_first)"
    assertEquals "distinct ids after the refusal" "$accepted" "$(got distinct_first)"
    assertTrue "some accepted, not all ($accepted of $N)" "[ '${accepted:-0}' -gt 0 ] && [ '${accepted:-0}' -lt $N ]"
    assertEquals "spool segments holding records after the refusal" 0 "$(got spool_records)"
    assertEquals "the rerun's exit status ($(head -c 400 "$TEST_TMP/client2.err"))" 0 "$(got client2_rc)"
    assertEquals "rows" $N "$(got rows)"
    assertEquals "distinct ids" $N "$(got distinct)"
    assertEquals "spool segments left" 0 "$(got spool_left)"
    assertEquals "ctxvault verify" 0 "$(got verify_rc)"
}

test_the_service_refuses_producers_when_its_spool_fills_exits_74_and_loses_nothing() {
    ns_available || return
    N=5000
    gen "$TEST_TMP/in.ndjson" -n $N -s 93 -u 40
    cat > "$TEST_TMP/spool_service.sh" << 'EOF'
. "$TEST_TMP/ns_lib.sh"
small "$HOME_DIR/spool" 512k
serve
ctxvault-ingest --serve --drain 30 2> "$TEST_TMP/ingest.err" &
INGEST=$!
track "$INGEST"
"$PRODUCE" --batch 200 --wait 500 --timeout 120 "$TEST_TMP/in.ndjson" > "$TEST_TMP/produce.out" 2> "$TEST_TMP/produce.err" &
PRODUCER=$!
track "$PRODUCER"
wait "$INGEST"
put ingest_rc $?
put rows_first "$(rows)"
put spool_records "$(find "$HOME_DIR/spool" -name '*.seg' -size +8c | wc -l)"
kill -0 "$PRODUCER" 2> /dev/null && put producer_waiting yes
# supervisord would restart it; here the test does, with room again
grow "$HOME_DIR/spool" 64m
ctxvault-ingest --serve 2> "$TEST_TMP/ingest2.err" &
INGEST=$!
track "$INGEST"
wait "$PRODUCER"
put producer_rc $?
wait_until 30 rows_at_least "$N"
stop "$INGEST"
put ingest2_rc $?
put rows "$(rows)"
put distinct "$(distinct_ids)"
put spool_left "$(find "$HOME_DIR/spool" -name '*.seg' | wc -l)"
stop "$STORE"
stop "$ENCRYPT"
EOF
    ns_run spool_service
    assertEquals "service exit status on a full spool" 74 "$(got ingest_rc)"
    assert_grep "$TEST_TMP/ingest.err" \
        "cannot (write to|sync) the spool in $HOME_DIR/spool/ingest: No space left on device; refusing producers" \
        "the service names the spool and the reason"
    assertTrue "some stored before the refusal ($(got rows_first))" "[ '$(got rows_first)' -gt 0 ]"
    assertEquals "spool segments holding records after the drain" 0 "$(got spool_records)"
    assertEquals "the producer waits for its replies" yes "$(got producer_waiting)"
    assertEquals "producer exit status ($(cat "$TEST_TMP/produce.out" "$TEST_TMP/produce.err" | head -c 400))" \
        0 "$(got producer_rc)"
    assertEquals "the restarted service's exit status" 0 "$(got ingest2_rc)"
    assertEquals "rows" $N "$(got rows)"
    assertEquals "distinct ids" $N "$(got distinct)"
    assertEquals "spool segments left" 0 "$(got spool_left)"
}

. shunit2
