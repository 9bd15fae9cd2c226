#!/bin/sh
# test_retention.sh - ctxvault-ttl-sweep: expired rows of every kind go,
# the rest stays; profiles (retention_days, privacy_level) tighten what is
# kept; a dry run changes nothing; a sweep killed with SIGKILL loses
# nothing that should stay and the next run finishes. Time is injected
# with CTXVAULT_NOW (tests only).
SUITE=retention
. "$CV_TOP/tests/shell/lib.sh"

T0=2026-11-01T01:00:00Z   # when the first events arrive
KINDS="snapshot trace interaction context replay audit experiment"

suite_setUp() {
    _sw= # no sweep yet: user_rows reads at the real time
}

# at TIME COMMAND...: run COMMAND with the clock fixed at TIME
at() {
    _at=$1
    shift
    CTXVAULT_NOW=$_at "$@"
}

# sweep TIME [ARGS...]: ctxvault-ttl-sweep --once at TIME; output in sweep.out
sweep() {
    _sw=$1
    shift
    at "$_sw" ctxvault-ttl-sweep --once "$@" > "$TEST_TMP/sweep.out" 2> "$TEST_TMP/sweep.err"
}

# kind_rows KIND: rows of KIND
kind_rows() {
    sql "SELECT count(*) FROM events WHERE kind = '$1'"
}

# user_rows U: rows stored for user U (looked up through ctxvault query,
# at the last sweep's time: a read never returns a row past its expiry)
user_rows() {
    CTXVAULT_NOW=${_sw:-} ctxvault query --user "$1" --limit 100000 | grep -c .
}

# one event per kind at 2026-11-01T00:00:SS for USER, then the same a year
# on (2027-11-25), which must survive a sweep at 2027-11-26
test_expired_rows_of_every_kind_go_in_one_sweep_and_the_rest_stays() {
    : > "$TEST_TMP/old.ndjson"
    s=1
    for k in $KINDS; do
        event "$s" user-old "$k" >> "$TEST_TMP/old.ndjson"
        s=$((s + 1))
    done
    event 30 user-old2 profile ',"retention_days":30' >> "$TEST_TMP/old.ndjson"
    sed 's/2026-11-01T/2027-11-25T/; s/user-old/user-new/' "$TEST_TMP/old.ndjson" > "$TEST_TMP/new.ndjson"
    # user-old2's profile is superseded: its 30 days are over (the profile
    # in force is kept until erased)
    sed 's/2026-11-01T/2027-11-25T/' "$TEST_TMP/old.ndjson" | grep user-old2 >> "$TEST_TMP/new.ndjson"
    store_at "$T0" "$TEST_TMP/old.ndjson"
    store_at 2027-11-25T01:00:00Z "$TEST_TMP/new.ndjson"
    assertEquals "rows before the sweep" 17 "$(rows)"

    sweep 2027-11-26T00:00:00Z
    assert_status sweep 0 $?
    assertEquals "rows after the sweep: the 9 new ones" 9 "$(rows)"
    for k in $KINDS; do
        assertEquals "$k rows left (the new one)" 1 "$(kind_rows "$k")"
    done
    assertEquals "profile rows left (the two new ones)" 2 "$(kind_rows profile)"
    assertEquals "old user's rows" 0 "$(user_rows user-old)"
    assertEquals "new user's rows" 7 "$(user_rows user-new)"
    assertEquals "deleted, as reported" 8 "$(json_get '$.deleted' < "$TEST_TMP/sweep.out")"
    assertEquals "snapshots deleted, as reported" 1 "$(json_get '$.by_kind.snapshot' < "$TEST_TMP/sweep.out")"
    assertEquals "backlog after a complete sweep" 0 "$(json_get '$.backlog' < "$TEST_TMP/sweep.out")"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

test_unexpired_rows_stay_one_ms_before_their_expiry() {
    event 1 user-a snapshot > "$TEST_TMP/in.ndjson"
    store_at "$T0" "$TEST_TMP/in.ndjson"
    exp=$(sql 'SELECT expires_at FROM events')
    # 7 days from the event's time (it came before it arrived)
    assertEquals "expires_at of a snapshot" "$(( $(date -d 2026-11-01T00:00:01Z +%s) * 1000 + 7 * 86400000 ))" "$exp"
    sweep "$((exp - 1))"
    assert_status sweep 0 $?
    assertEquals "a row 1 ms before its expiry" 1 "$(rows)"
    sweep "$exp"
    assertEquals "the row at its expiry" 0 "$(rows)"
}

test_profile_retention_days_shortens_what_is_kept_old_rows_too() {
    {
        event 1 user-short profile ',"retention_days":30'
        event 2 user-short replay
        event 3 user-long replay
        event 4 user-long profile ',"retention_days":365'
        event 5 user-late replay
    } > "$TEST_TMP/in.ndjson"
    store_at "$T0" "$TEST_TMP/in.ndjson"
    # user-late's replay is stored before their profile says 30 days
    event 9 user-late profile ',"retention_days":30' > "$TEST_TMP/late.ndjson"
    store_at 2026-11-02T00:00:00Z "$TEST_TMP/late.ndjson"

    sweep 2026-12-02T00:00:00Z   # 31 days on: replays are kept 90 days
    assert_status sweep 0 $?
    assertEquals "replays of the 30-day user" 0 "$(ctxvault query --user user-short --kind replay | grep -c .)"
    assertEquals "replay stored before a 30-day profile came" 0 "$(ctxvault query --user user-late --kind replay | grep -c .)"
    assertEquals "replays of the 365-day user (policy: 90 days)" 1 "$(ctxvault query --user user-long --kind replay | grep -c .)"
    sweep 2027-02-01T00:00:00Z   # 92 days on: the policy's 90 days win
    assertEquals "replays of the 365-day user after 92 days" 0 "$(ctxvault query --user user-long --kind replay | grep -c .)"
}

# The storage requirements' purges, with their own member names: a user
# who chose 90 days loses an interaction on day 90, one who chose 365 on
# day 365, one who chose "forever" never; a user who chose nothing keeps
# the kind's default (30 days); snapshots keep their 7-day cap whatever
# the user chose.
test_the_users_retention_choice_governs_their_interactions_within_caps() {
    {
        for u in 90 365 forever none; do
            case $u in
            none) printf '{"kind":"profile","userId":"user-%s","timestamp":"2026-11-01T00:00:00Z","privacyLevel":"private"}\n' "$u" ;;
            forever) printf '{"kind":"profile","userId":"user-%s","timestamp":"2026-11-01T00:00:00Z","dataRetentionDays":"forever"}\n' "$u" ;;
            *) printf '{"kind":"profile","userId":"user-%s","timestamp":"2026-11-01T00:00:00Z","dataRetentionDays":%s}\n' "$u" "$u" ;;
            esac
            event 1 "user-$u" interaction
            event 2 "user-$u" context
            event 3 "user-$u" snapshot
        done
    } > "$TEST_TMP/in.ndjson"
    store_at "$T0" "$TEST_TMP/in.ndjson"
    assertEquals "rows stored" 16 "$(rows)"
    # day 8: every snapshot is gone, nothing else
    sweep 2026-11-09T00:00:00Z
    assert_status sweep 0 $?
    assertEquals "snapshots after a week" 0 "$(kind_rows snapshot)"
    assertEquals "interactions after a week" 4 "$(kind_rows interaction)"
    # day 31: the default's 30 days are over for the user who chose nothing
    sweep 2026-12-02T00:00:00Z
    assertEquals "user-none's interaction and context" 1 "$(user_rows user-none)"
    assertEquals "user-90's rows on day 31" 3 "$(user_rows user-90)"
    # day 91: the 90-day user's purge
    sweep 2027-01-31T00:00:00Z
    assertEquals "user-90's rows on day 91: the profile in force only" 1 "$(user_rows user-90)"
    assertEquals "user-365's rows on day 91" 3 "$(user_rows user-365)"
    # day 366: the 365-day user's purge; the profile in force stays
    sweep 2027-11-02T00:00:00Z
    assertEquals "user-365's rows on day 366" 1 "$(user_rows user-365)"
    assertEquals "user-365's row left is the profile" 1 \
        "$(ctxvault query --user user-365 --kind profile | grep -c .)"
    # a year and more on, "forever" still has everything but the snapshot
    sweep 2029-01-01T00:00:00Z
    assertEquals "user-forever's rows" 3 "$(user_rows user-forever)"
    assertEquals "user-forever's interactions never expire" 1 \
        "$(sql "SELECT count(*) FROM events WHERE kind = 'interaction' AND expires_at IS NULL")"
}

# A user's profile history: the profile in force (their settings) is kept
# until erased; each older profile goes when the user's retention says,
# counted from its own time (the kind other's 30 days for a user who chose
# nothing), whichever order the profiles arrive in
# profile_ids U: the "seq" of each profile row of user U, oldest first
profile_ids() {
    ctxvault query --user "$1" --kind profile --limit 100 | grep -o '"seq":[0-9]*' |
        sed 's/.*://' | sort -n | tr '\n' ' ' | sed 's/ $//'
}
test_superseded_profiles_expire_and_the_profile_in_force_stays() {
    {
        for u in 90 none forever; do
            case $u in
            none) days='"privacy_level":"private"' ;;
            *) days="\"retention_days\":\"$u\"" ;;
            esac
            [ $u = 90 ] && days='"retention_days":90'
            printf '{"kind":"profile","user_id":"user-%s","ts":"2026-11-01T00:00:00Z","seq":1,%s}\n' "$u" "$days"
            printf '{"kind":"profile","user_id":"user-%s","ts":"2026-12-01T00:00:00Z","seq":2,%s}\n' "$u" "$days"
        done
        # the newest first, then an older one arriving late
        printf '{"kind":"profile","user_id":"user-late","ts":"2027-01-01T00:00:00Z","seq":3,"retention_days":90}\n'
        printf '{"kind":"profile","user_id":"user-late","ts":"2026-11-01T00:00:00Z","seq":1,"retention_days":90}\n'
    } > "$TEST_TMP/in.ndjson"
    store_at 2027-01-02T00:00:00Z "$TEST_TMP/in.ndjson"
    assertEquals "profile rows stored" 8 "$(rows "kind = 'profile'")"
    assertEquals "profiles in force never expire" 4 \
        "$(sql "SELECT count(*) FROM events e JOIN profiles p ON p.event_id = e.id WHERE e.expires_at IS NULL")"
    # two months on: the 30 days of user-none's older profile are over
    sweep 2027-01-03T00:00:00Z
    assert_status sweep 0 $?
    assertEquals "user-none's profiles" 2 "$(profile_ids user-none)"
    # day 91 of the first profiles: user-90's and user-late's older ones go
    sweep 2027-01-31T00:00:00Z
    assertEquals "user-90's profiles" 2 "$(profile_ids user-90)"
    assertEquals "user-late's profiles" 3 "$(profile_ids user-late)"
    assertEquals "user-forever's profiles" "1 2" "$(profile_ids user-forever)"
    # years on: every profile in force is there, and user-forever's history
    sweep 2030-01-01T00:00:00Z
    assertEquals "user-90's profile in force" 2 "$(profile_ids user-90)"
    assertEquals "user-none's profile in force" 2 "$(profile_ids user-none)"
    assertEquals "user-forever's profiles years on" "1 2" "$(profile_ids user-forever)"
    ctxvault query --user user-90 --kind profile > "$TEST_TMP/q"
    assertEquals "the profile in force is read back" 1 "$(grep -c . "$TEST_TMP/q")"
}

test_ephemeral_events_are_gone_after_an_hour() {
    {
        event 0 user-eph profile ',"privacy_level":"ephemeral"'
        event 1 user-eph interaction
        event 2 user-pub profile ',"privacy_level":"public"'
        event 3 user-pub interaction
    } > "$TEST_TMP/in.ndjson"
    store_at 2026-11-01T00:00:05Z "$TEST_TMP/in.ndjson"
    sweep 2026-11-01T00:59:00Z
    assertEquals "ephemeral rows after 59 minutes" 2 "$(user_rows user-eph)"
    sweep 2026-11-01T01:00:02Z
    assert_status sweep 0 $?
    assertEquals "ephemeral rows after an hour" 0 "$(user_rows user-eph)"
    assertEquals "public rows after an hour" 2 "$(user_rows user-pub)"
}

test_anonymous_users_rows_are_due_for_scrubbing_on_arrival() {
    {
        event 0 user-anon profile ',"privacy_level":"anonymous"'
        event 1 user-anon interaction
        event 2 user-priv profile ',"privacy_level":"private"'
        event 3 user-priv interaction
    } > "$TEST_TMP/in.ndjson"
    store_at "$T0" "$TEST_TMP/in.ndjson"
    anon=$(ctxvault query --user user-anon --limit 1 | json_get '$.user_id')
    priv=$(ctxvault query --user user-priv --limit 1 | json_get '$.user_id')
    assertEquals "anonymous rows due for scrubbing as they arrived" 2 \
        "$(sql "SELECT count(*) FROM events_v WHERE (user_id = '$anon' OR user_id LIKE 'anon:%') AND scrub_after = created_at")"
    assertEquals "private rows due for scrubbing on arrival" 0 \
        "$(sql "SELECT count(*) FROM events_v WHERE user_id = '$priv' AND scrub_after <= created_at")"
}

test_dry_run_changes_nothing_byte_for_byte() {
    gen "$TEST_TMP/in.ndjson" -n 300 -u 10 -s 5
    store_at "$T0" "$TEST_TMP/in.ndjson"
    before=$(cat "$DB" "$DB-wal" 2> /dev/null | sha256sum)
    at 2027-01-01T00:00:00Z ctxvault-ttl-sweep --dry-run > "$TEST_TMP/dry.out" 2> "$TEST_TMP/dry.err"
    assert_status dry 0 $?
    after=$(cat "$DB" "$DB-wal" 2> /dev/null | sha256sum)
    assertEquals "database and WAL bytes after a dry run" "$before" "$after"
    want=$(sql "SELECT count(*) FROM events WHERE expires_at <= $(( $(date -d 2027-01-01 +%s) * 1000 ))")
    assertEquals "would delete" "$want" "$(json_get '$.would_delete' < "$TEST_TMP/dry.out")"
    assertEquals "rows still there" 300 "$(rows)"
}

test_sweep_killed_mid_run_loses_nothing_that_stays_and_the_next_run_finishes() {
    gen "$TEST_TMP/old.ndjson" -n 20000 -u 50 -s 6 --start 2026-10-01T00:00:00Z
    gen "$TEST_TMP/new.ndjson" -n 2000 -u 50 -s 7 --start 2027-06-01T00:00:00Z
    store_at 2026-10-01T00:00:00Z "$TEST_TMP/old.ndjson"
    store_at 2027-06-01T00:00:00Z "$TEST_TMP/new.ndjson"
    now=2027-06-02T00:00:00Z
    now_ms=$(( $(date -d "$now" +%s) * 1000 ))
    expired=$(sql "SELECT count(*) FROM events WHERE expires_at <= $now_ms")
    kept=$(sql "SELECT count(*) FROM events WHERE expires_at IS NULL OR expires_at > $now_ms")
    kept_sum=$(sql "SELECT group_concat(id) FROM (SELECT id FROM events WHERE expires_at IS NULL OR expires_at > $now_ms ORDER BY id)" | sha256sum)
    assertTrue "some rows expired ($expired)" "[ $expired -gt 5000 ]"

    CTXVAULT_NOW=$now ctxvault-ttl-sweep --once --batch 100 --pause 10ms > /dev/null 2> "$TEST_TMP/killed.err" &
    pid=$!
    bg_track "$pid"
    wait_until 20 sh -c "[ \$(sqlite3 '$DB' 'SELECT count(*) FROM events') -lt $((expired + kept - 500)) ]"
    kill -9 "$pid"
    wait "$pid" 2> /dev/null
    left=$(sql "SELECT count(*) FROM events WHERE expires_at <= $now_ms")
    assertTrue "the kill came mid-sweep ($left of $expired expired rows left)" "[ $left -gt 0 ] && [ $left -lt $expired ]"
    assertEquals "rows that stay, after the kill" "$kept_sum" \
        "$(sql "SELECT group_concat(id) FROM (SELECT id FROM events WHERE expires_at IS NULL OR expires_at > $now_ms ORDER BY id)" | sha256sum)"

    sweep "$now"
    assert_status sweep 0 $?
    assertEquals "expired rows after the next run" 0 "$(sql "SELECT count(*) FROM events WHERE expires_at <= $now_ms")"
    assertEquals "rows that stay, after the next run" "$kept" "$(rows)"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    ctxvault audit verify > /dev/null 2> "$TEST_TMP/audit.err"
    assert_status audit 0 $?
}

test_sweep_goes_through_the_running_store_and_compacts() {
    gen "$TEST_TMP/in.ndjson" -n 3000 -u 20 -s 8
    store_at "$T0" "$TEST_TMP/in.ndjson"
    serve_store || return
    pid=$SERVE_PID
    sweep 2027-06-01T00:00:00Z --batch 500
    assert_status sweep 0 $?
    assertEquals "rows left" "$(sql "SELECT count(*) FROM events WHERE expires_at IS NULL OR expires_at > $(( $(date -d 2027-06-01 +%s) * 1000 ))")" "$(rows)"
    assertEquals "WAL truncated after the sweep" 1 "$(json_get '$.wal_truncated' < "$TEST_TMP/sweep.out")"
    assertEquals "WAL size" 0 "$(stat -c %s "$DB-wal")"
    # store counts what it deleted for the sweep, and the sweep's audit entry
    "$CV_BUILD/cvproduce" --ping --timeout 10 > "$TEST_TMP/ping.json" 2> /dev/null
    assertEquals "store's rows_deleted counter" "$(json_get '$.deleted' < "$TEST_TMP/sweep.out")" \
        "$(json_get '$.counters.rows_deleted' < "$TEST_TMP/ping.json")"
    assertEquals "store's audit_entries counter" 1 "$(json_get '$.counters.audit_entries' < "$TEST_TMP/ping.json")"
    # the second writer would be refused: the sweep really asked store
    kill -TERM "$pid"
    wait "$pid"
    assertEquals "store's exit status" 0 $?
    assert_grep "$TEST_TMP/serve.err" '[1-9][0-9]* requests' "store should count the sweep's requests"
}

test_the_service_sweeps_on_its_schedule_through_store_and_stops_on_sigterm() {
    event 1 user-a snapshot > "$TEST_TMP/in.ndjson"
    event 2 user-a replay >> "$TEST_TMP/in.ndjson"
    store_at "$T0" "$TEST_TMP/in.ndjson"
    serve_store || return
    spid=$SERVE_PID
    # 2026-11-09: the snapshot (7 days) is due, the replay (90 days) is not
    CTXVAULT_NOW=2026-11-09T00:00:00Z ctxvault-ttl-sweep --interval 1s \
        > "$TEST_TMP/service.out" 2> "$TEST_TMP/service.err" &
    pid=$!
    bg_track "$pid"
    assertEquals "rows right after the service started (it waits one interval)" 2 "$(rows)"
    wait_until 20 sh -c "[ \$(sqlite3 '$DB' 'SELECT count(*) FROM events') -eq 1 ]" ||
        fail "the service did not sweep: $(cat "$TEST_TMP/service.err")"
    assertEquals "what is left" replay "$(sql 'SELECT kind FROM events')"
    kill -TERM "$pid"
    wait "$pid"
    assertEquals "the service's exit status on SIGTERM" 0 $?
    assert_grep "$TEST_TMP/service.out" '"deleted":1' "each run prints its summary"
    # the service never took the writer lock: store held it throughout
    kill -0 "$spid" || fail "store died"
}

test_sweep_needs_a_store_that_answers_when_the_database_is_locked() {
    : | ctxvault-store > /dev/null 2>&1
    exec 9> "$DB.lock"
    flock -x 9
    sweep 2027-01-01T00:00:00Z
    assert_status sweep 75 $?
    exec 9>&-
    assert_grep "$TEST_TMP/sweep.err" 'no store answers' "the sweep should say why it cannot run"
}

. shunit2
