#!/bin/sh
# test_powercut_cases.sh - ctxvault's operations under the power-cut
# simulator (tests/powercut/README.md). Each test runs real programs under
# the shim, marks each step once it is acknowledged (the program exited 0,
# or the client saw every event committed), then tries every sync point of
# the run and POWERCUT_POINTS random points between them, each in the
# states "all pending dropped", "all kept" and POWERCUT_STATES random ones.
# On each state tests/powercut/recover.sh restarts store, runs
# `ctxvault verify`, and checks against the steps acknowledged before the
# cut: every acknowledged event there exactly once, nothing erased or swept
# back, every field readable, a restore working where the case has one.
#
# POWERCUT_SEED (default: fixed per case, so a run repeats) draws the
# random points and states; a violation names it and the cut. `make
# powercut` runs the same cases with more points and states, and sums them
# into POWERCUT_TALLY.
SUITE=powercut_cases
. "$CV_TOP/tests/shell/lib.sh"

PCUT=$CV_BUILD/powercut
PC="python3 $TOP/tests/powercut/powercut.py"
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
export ASAN_OPTIONS
CTXVAULT_BIN=$CV_BIN
export CTXVAULT_BIN
unset CTXVAULT_SUPERVISORD_CONF

# The setting the cases run under. Empty: the instance's default,
# `journal`, which is the power-safe one (DURABILITY.md).
SAFE_SYNC=
# random cuts per case besides every sync, and random states per cut
# besides drop and keep; fewer on the ASan+UBSan build, about 4x slower,
# which is there to find memory errors on the recovery paths
case $CV_BIN in
*asan*) POINTS=${POWERCUT_POINTS:-2} STATES=${POWERCUT_STATES:-0} ;;
*) POINTS=${POWERCUT_POINTS:-4} STATES=${POWERCUT_STATES:-1} ;;
esac

suite_tearDown() {
    pc_end_shim # a case that failed midway leaves it set
    sv_kill_all
}

# ---- the frame of a case --------------------------------------------------

# pc_setup SEED [SYNC]: a case's instance (clock pinned, [store]
# synchronous = SYNC, default SAFE_SYNC) and its expectations directory E;
# SEED is the case's seed unless POWERCUT_SEED says otherwise
pc_setup() {
    SEED=${POWERCUT_SEED:-$1}
    T0=$(date +%s)
    data_clock
    _sync=${2-$SAFE_SYNC}
    [ -z "$_sync" ] || conf_set synchronous "$_sync"
    E=$TEST_TMP/expect
    mkdir -p "$E"
    : > "$E/lost"
    STEP=0
}

# pc_begin: the instance as it is now is what every change applies to (no
# program may run); from here every program runs under the shim
pc_begin() {
    LOG=$TEST_TMP/log.bin
    $PC snapshot "$HOME_DIR" "$TEST_TMP/snap" || fail "snapshot failed"
    POWERCUT_ROOT=$HOME_DIR POWERCUT_LOG=$LOG LD_PRELOAD=$PCUT/shim.so
    export POWERCUT_ROOT POWERCUT_LOG LD_PRELOAD
}

# pc_step: what the case did since the last step is acknowledged
pc_step() {
    STEP=$((STEP + 1))
    $PC mark "$LOG" "step $STEP"
}

# pc_end: the run is over; what each step acknowledged, in $E for
# recover.sh. present.K: the ids the database held at step K, as the
# programs saw it (every change kept). After a cut past step K, those
# also held at step K+1 must be there, each once (need.K: an id step K+1
# deleted may be gone already); an id held at an earlier step and gone by
# step K (erased, swept) must stay gone (absent.K); no other id than one
# held at some step may appear (sent). Stored ids are read back rather
# than predicted: store gives an anonymised event an id of its own.
pc_end_shim() {
    unset POWERCUT_ROOT POWERCUT_LOG LD_PRELOAD
}

pc_end() {
    pc_end_shim
    $PC dump "$LOG" > "$TEST_TMP/dump.txt" || fail "the log does not read"
    cp -a "$TEST_TMP/snap/tree" "$TEST_TMP/at"
    : > "$E/held"
    _k=0
    while :; do
        sqlite3 "$TEST_TMP/at/data/ctxvault.db" 'SELECT id FROM events' | sort > "$E/present.$_k"
        comm -23 "$E/held" "$E/present.$_k" > "$E/absent.$_k"
        sort -u "$E/held" "$E/present.$_k" -o "$E/held"
        _k=$((_k + 1))
        [ "$_k" -le "$STEP" ] || break
        _rec=$(grep " mark 'step $_k'\$" "$TEST_TMP/dump.txt" | cut -d ' ' -f 1)
        $PC state "$LOG" "$TEST_TMP/snap" "$_rec" "$TEST_TMP/at" --mode keep ||
            fail "no state at step $_k"
    done
    cp "$E/held" "$E/sent"
    rm -rf "$TEST_TMP/at"
    # the replay of the whole log is what the programs left: the shim saw
    # every program (those supervisord started too)
    sql 'SELECT id FROM events' | sort > "$TEST_TMP/live.ids"
    assertTrue "the replay of the log holds the ids the database holds ($(wc -l < "$E/present.$STEP") and $(wc -l < "$TEST_TMP/live.ids"))" \
        "cmp -s '$E/present.$STEP' '$TEST_TMP/live.ids'"
    _k=0
    while [ "$_k" -lt "$STEP" ]; do
        comm -12 "$E/present.$_k" "$E/present.$((_k + 1))" > "$E/need.$_k"
        _k=$((_k + 1))
    done
    cp "$E/present.$STEP" "$E/need.$STEP"
}

# pc_explore NAME [meant-to-lose]: every cut of the run, each state checked
# by recover.sh; sets VIOLATIONS, CUTS and DISTINCT, prints the case's
# figures, and adds them to POWERCUT_TALLY (not a case meant to lose)
pc_explore() {
    POWERCUT_SEED=$SEED $PC explore "$LOG" "$TEST_TMP/snap" --cuts sync \
        --points "$POINTS" --random "$STATES" --seed "$SEED" \
        -- sh "$TOP/tests/powercut/recover.sh" "$E" \
        > "$TEST_TMP/explore.out" 2> "$TEST_TMP/explore.err"
    EXPLORE_RC=$?
    _sum=$(tail -n 1 "$TEST_TMP/explore.out")
    CUTS=$(echo "$_sum" | sed -n 's/^cuts \([0-9]*\), .*/\1/p')
    DISTINCT=$(echo "$_sum" | sed -n 's/.*, distinct \([0-9]*\), .*/\1/p')
    VIOLATIONS=$(echo "$_sum" | sed -n 's/.*, violations \([0-9]*\)$/\1/p')
    LOST=$(sort -u "$E/lost" | grep -c .)
    if [ -z "$VIOLATIONS" ] || [ -z "$DISTINCT" ] || [ -z "$CUTS" ]; then
        fail "explore gave no summary: $(tail -c 1500 "$TEST_TMP/explore.out") $(tail -c 1500 "$TEST_TMP/explore.err")"
        return 1
    fi
    echo "  $1: $CUTS cut points, $DISTINCT disk states, $VIOLATIONS violations, $LOST acknowledged events lost (POWERCUT_SEED=$SEED, $(($(date +%s) - T0)) s)"
    if [ -z "${2:-}" ] && [ -n "${POWERCUT_TALLY:-}" ]; then
        echo "$CUTS $DISTINCT $LOST" >> "$POWERCUT_TALLY"
    fi
}

# pc_assert_holds: no state broke the case; every file synced had the
# size its logged writes make (nothing reached the disk past the shim)
pc_assert_holds() {
    assertEquals "every state holds (POWERCUT_SEED=$SEED): $(grep -v '^powercut:' "$TEST_TMP/explore.out" | head -c 2500)" 0 "$EXPLORE_RC"
    assertEquals "no violation" 0 "$VIOLATIONS"
    assertEquals "no warning from the replay" "" "$(grep 'warning' "$TEST_TMP/explore.err" | head -c 1000)"
    assertTrue "states checked: $DISTINCT" "[ ${DISTINCT:-0} -ge $1 ]"
    pc_forget
}

# pc_forget: the snapshot and the log hold key material and whole copies
# of the instance: not kept (POWERCUT_KEEP=DIR keeps them there, with the
# expectations, for a person reading a failure)
pc_forget() {
    if [ -n "${POWERCUT_KEEP:-}" ]; then
        mkdir -p "$POWERCUT_KEEP/$_shunit_test_" &&
            cp -a "$TEST_TMP/snap" "$LOG" "$E" "$POWERCUT_KEEP/$_shunit_test_/"
    fi
    rm -rf "$TEST_TMP/snap" "$LOG"
}

# run_pipeline FILE: the filter pipeline over FILE, which must succeed
run_pipeline() {
    pipeline "$1"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status encrypt 0 "$STATUS_ENCRYPT"
    assert_status store 0 "$STATUS_STORE"
}

# store_chunk FILE GENEVENTS-ARGS...: generate, then store through the
# filter pipeline
store_chunk() {
    _ch=$1
    shift
    gen "$_ch" "$@"
    run_pipeline "$_ch"
}

# ---- the cases --------------------------------------------------------------

# 2,000 events in two runs of the filter pipeline, each acknowledged when
# the pipeline exits 0
test_filter_pipeline_loses_no_acknowledged_event() {
    pc_setup 101
    pc_begin
    for _c in 1 2; do
        store_chunk "$TEST_TMP/c$_c" -n 1000 -u 20 -s "$_c"
        pc_step
    done
    pc_end
    assertEquals "stored" 2000 "$(sql 'SELECT COUNT(*) FROM events')"
    pc_explore filter
    pc_assert_holds 40
}

# client_run SYNC: store --serve and encrypt --serve, two files sent by the
# client (`ctxvault-ingest FILE`, which exits 0 once store committed all)
client_run() {
    pc_setup "$1" ${2+"$2"}
    gen "$TEST_TMP/c1" -n 200 -u 10 -s 1
    gen "$TEST_TMP/c2" -n 200 -u 10 -s 2
    pc_begin
    services_start
    for _c in 1 2; do
        ctxvault-ingest --timeout 60 "$TEST_TMP/c$_c" > /dev/null 2> "$TEST_TMP/ingest.err"
        assert_status ingest 0 $?
        pc_step
    done
    kill -TERM "$STORE_PID" "$ENCRYPT_PID"
    wait "$STORE_PID" "$ENCRYPT_PID"
    pc_end
}

test_client_and_services_lose_no_acknowledged_event() {
    client_run 102
    assertEquals "stored" 400 "$(sql 'SELECT COUNT(*) FROM events')"
    pc_explore client
    pc_assert_holds 20
}

# the check can fail: under synchronous = normal store acknowledges before
# the WAL is synced (DURABILITY.md, "The window")
test_synchronous_normal_loses_acknowledged_events() {
    client_run 103 normal
    pc_explore normal meant-to-lose
    assertEquals "explore exits 1" 1 "$EXPLORE_RC"
    assert_grep "$TEST_TMP/explore.out" "acknowledged events missing" "a state lacks acknowledged events"
    assertTrue "acknowledged events lost: $LOST" "[ ${LOST:-0} -ge 1 ]"
    pc_forget
}

# the pipeline under supervisord (every program it starts under the shim),
# the client sending two files, then a clean stop
test_supervised_pipeline_loses_no_acknowledged_event() {
    pc_setup 104
    conf_set resend 1s
    gen "$TEST_TMP/c1" -n 300 -u 10 -s 1
    gen "$TEST_TMP/c2" -n 300 -u 10 -s 2
    pc_begin
    sv_start || return
    for _c in 1 2; do
        ctxvault-ingest --timeout 60 "$TEST_TMP/c$_c" > /dev/null 2> "$TEST_TMP/ingest.err"
        assert_status ingest 0 $?
        pc_step
    done
    SUPERVISE_TIMEOUT=60 sh "$SUPERVISE" stop > "$TEST_TMP/stop.out" 2>&1
    assertEquals "supervise.sh stop: $(cat "$TEST_TMP/stop.out")" 0 $?
    pc_end
    pc_explore supervised
    pc_assert_holds 20
}

# `ctxvault delete --user` (no store running: it takes the writer lock),
# then events of the other users; a restore (the journal alone) on every
# state must not bring the erased user back
test_erasure_stays_done_at_every_cut() {
    pc_setup 105
    store_chunk "$TEST_TMP/c1" -n 300 -u 3 -s 1
    : > "$E/restore"
    # until the erasure is acknowledged the user's rows (those step 1 no
    # longer held) are all there or all gone. The key goes first, so they
    # may be unreadable (`verify` says so): the erasure was not
    # acknowledged, and is done again, as after a SIGKILL
    cat > "$E/redo.0" << 'EOF'
comm -23 "$E/present.0" "$E/present.1" > "$W/u1"
_n=$(comm -12 "$W/ids" "$W/u1" | wc -l)
[ "$_n" -eq 0 ] || [ "$_n" -eq "$(wc -l < "$W/u1")" ] ||
    fail "the erasure is half done: $_n of $(wc -l < "$W/u1") rows"
ctxvault delete --user user-00001 > "$W/delete.out" 2>&1
_rc=$?
[ "$_rc" -eq 0 ] || [ "$_rc" -eq 66 ] || fail "the erasure done again failed: $(tail -c 400 "$W/delete.out")"
EOF
    pc_begin
    ctxvault delete --user user-00001 > "$TEST_TMP/delete.out" 2> "$TEST_TMP/delete.err"
    assert_status delete 0 $?
    pc_step
    gen "$TEST_TMP/c2.all" -n 200 -u 3 -s 2
    grep -v '"user_id":"user-00001"' "$TEST_TMP/c2.all" > "$TEST_TMP/c2"
    run_pipeline "$TEST_TMP/c2"
    pc_step
    pc_end
    assertEquals "the user is gone" 0 "$(ctxvault query --user user-00001 | grep -c .)"
    pc_explore erasure
    pc_assert_holds 20
}

# a sweep (ctxvault-ttl-sweep --once, 50 rows per transaction) eight days
# on: once it is acknowledged, no row it deleted is back; before, only
# whole transactions are gone (the rows left of those due: a multiple of
# the batch less, or none)
test_a_sweep_is_whole_per_batch_and_stays_done() {
    pc_setup 106
    store_chunk "$TEST_TMP/c1" -n 500 -u 10 -s 1
    data_clock 2026-11-10T00:00:00Z
    # the rows the sweep deletes: those step 1 no longer held
    cat > "$E/hook" << 'EOF'
comm -23 "$E/present.0" "$E/present.1" > "$W/due"
_due=$(wc -l < "$W/due")
_left=$(comm -12 "$W/ids" "$W/due" | wc -l)
[ $(( (_due - _left) % 50 )) -eq 0 ] || [ "$_left" -eq 0 ] ||
    fail "the sweep is torn: $_left of $_due due rows left"
EOF
    pc_begin
    ctxvault-ttl-sweep --once --batch 50 > "$TEST_TMP/sweep.out" 2> "$TEST_TMP/sweep.err"
    assert_status sweep 0 $?
    assert_grep "$TEST_TMP/sweep.out" '"deleted":[1-9][0-9][0-9]' "the sweep deleted rows"
    pc_step
    pc_end
    pc_explore sweep
    pc_assert_holds 10
}

# a scrub (ctxvault-scrub --once) three months on: every state verifies
# (each row whole, its checksum over what it holds) and reads; once it is
# acknowledged no row due is left unscrubbed
test_a_scrub_leaves_every_row_whole_and_stays_done() {
    pc_setup 107
    store_chunk "$TEST_TMP/c1" -n 500 -u 10 -s 1
    data_clock 2027-02-05T00:00:00Z
    cat > "$E/hook" << 'EOF'
if [ "$N" -ge 1 ]; then
    _due=$(ctxvault-scrub --once --dry-run -q 2> /dev/null | sed -n 's/.*"would_scrub":\([0-9]*\).*/\1/p')
    [ "$_due" = 0 ] || fail "rows due for scrubbing after the scrub: ${_due:-unknown}"
fi
EOF
    pc_begin
    ctxvault-scrub --once --batch 50 > "$TEST_TMP/scrub.out" 2> "$TEST_TMP/scrub.err"
    assert_status scrub 0 $?
    assert_grep "$TEST_TMP/scrub.out" '"scrubbed":[1-9]' "the scrub changed rows"
    pc_step
    pc_end
    pc_explore scrub
    pc_assert_holds 10
}

# `ctxvault keys rotate`, then events (new users too) under the new key:
# every field decrypts and verifies in every state, and once the rotation
# is acknowledged the keyring has the new primary
test_a_key_rotation_leaves_every_field_readable() {
    pc_setup 108
    store_chunk "$TEST_TMP/c1" -n 300 -u 5 -s 1
    cat > "$E/hook" << 'EOF'
if [ "$N" -ge 1 ]; then
    ctxvault keys list 2> /dev/null | grep -q '"version": 2' ||
        fail "the rotation was acknowledged, the keyring lacks version 2"
fi
EOF
    pc_begin
    ctxvault keys rotate > "$TEST_TMP/rotate.out" 2> "$TEST_TMP/rotate.err"
    assert_status rotate 0 $?
    pc_step
    store_chunk "$TEST_TMP/c2" -n 300 -u 8 -s 2
    pc_step
    pc_end
    pc_explore rotation
    pc_assert_holds 20
}

# ctxvault-backup create (it prunes the journal the backup covers), events,
# then ctxvault-backup restore: on every state the restart works, and a
# restore works and gives back every acknowledged event; once the backup
# is acknowledged it verifies
test_a_backup_and_a_restore_keep_every_acknowledged_event() {
    pc_setup 109
    # small journal segments, so the backup prunes those it covers and the
    # restore depends on the backup
    conf_set journal_segment 8KiB
    store_chunk "$TEST_TMP/c0" -n 150 -u 5 -s 3
    store_chunk "$TEST_TMP/c1" -n 150 -u 5 -s 1
    : > "$E/restore"
    # the restore came from the backup (it authenticated whole), not from
    # the journal alone
    cat > "$E/hook" << 'EOF'
if [ "$N" -ge 1 ]; then
    grep -q '"from":"[^"]*/backups/ctxvault-[^"]*\.cvb"' "$W/restore.out" ||
        fail "the backup was acknowledged, the restore did not use it: $(head -c 400 "$W/restore.out")"
fi
EOF
    pc_begin
    ctxvault-backup create > "$TEST_TMP/backup.out" 2> "$TEST_TMP/backup.err"
    assert_status backup 0 $?
    assert_grep "$TEST_TMP/backup.out" '"journal_pruned":\{"segments":[1-9]' "the backup pruned the journal"
    pc_step
    store_chunk "$TEST_TMP/c2" -n 300 -u 5 -s 2
    pc_step
    ctxvault-backup restore > "$TEST_TMP/restore.out" 2> "$TEST_TMP/restore.err"
    assert_status restore 0 $?
    pc_step
    pc_end
    assertEquals "restored" 600 "$(sql 'SELECT COUNT(*) FROM events')"
    pc_explore backup
    pc_assert_holds 20
}

. shunit2
