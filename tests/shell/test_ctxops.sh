#!/bin/sh
# test_ctxops.sh - the context API's operational requests on store's
# control socket (doc/PROTOCOL.md, "Context API"), against a real store
# over its real socket: stats for a period (against counts sqlite3 makes),
# user.segment (a user built for each segment, the stored row and its
# inputs, staleness, refresh), erasure of segments and cache entries,
# db.compact while the pipeline ingests, cache.put/cache.get with their
# ttl, size bound and sweep, meta, and the upgrade of a database of the
# previous schema version. The client library's db.size, stats-for-a-period
# and db.compact calls through cvclientcall (tests/tools/cvclientcall.c),
# as an application makes them.
SUITE=ctxops
. "$CV_TOP/tests/shell/lib.sh"

CALL=$CV_BUILD/cvclientcall

# iact FILE USER N DAY [TYPES]: N interactions of USER appended to FILE,
# on DAY (YYYY-MM-DD) one a second from midnight, their types cycling
# through TYPES (default "click search navigation")
iact() {
    awk -v u="$2" -v n="$3" -v day="$4" -v types="${5:-click search navigation}" 'BEGIN {
        k = split(types, t, " ")
        for (i = 0; i < n; i++)
            printf "{\"id\":\"%s-%s-%d\",\"kind\":\"interaction\",\"user_id\":\"%s\",\"ts\":\"%sT%02d:%02d:%02dZ\",\"type\":\"%s\"}\n",
                u, day, i, u, day, int(i / 3600), int(i / 60) % 60, i % 60, t[i % k + 1]
    }' >> "$1"
}

# day REF DAYS: the date DAYS days before the date REF
day() {
    date -u -d "$1 -$2 days" +%F
}

# pseudonym USER: the user id as stored, from one of the user's rows
pseudonym() {
    ctxvault interactions --user "$1" --limit 1 2> /dev/null | json_get '$.user_id'
}

# serve_at TIME: store --serve with its clock at TIME
serve_at() {
    CTXVAULT_NOW=$1
    export CTXVAULT_NOW
    serve_store
    _rc=$?
    unset CTXVAULT_NOW
    return $_rc
}

stop_store() {
    kill "$SERVE_PID" 2> /dev/null
    wait "$SERVE_PID" 2> /dev/null
}

test_stats_for_a_period_match_what_sqlite_counts() {
    gen "$TEST_TMP/in.ndjson" -n 6000 -s 71 -u 6 --start "$(date -u -d '3 days ago' +%FT00:00:00Z)"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status store 0 "$STATUS_STORE"
    serve_store || return
    since=$(date -u -d "$(date -u -d '3 days ago' +%F) 00:20:00Z" +%s)000
    until=$(date -u -d "$(date -u -d '3 days ago' +%F) 01:10:00Z" +%s)000
    where="ts >= $since AND ts < $until"
    inside=$(sql "SELECT count(*) FROM events WHERE $where")
    assertTrue "the period holds some rows but not all ($inside)" \
        "[ $inside -gt 100 ] && [ $inside -lt $(sql 'SELECT count(*) FROM events') ]"
    api "{\"op\":\"stats\",\"since\":$since,\"until\":$until}"
    assertEquals "stats status ($REPLY)" 0 "$STATUS_API"
    assertEquals "events" "$inside" "$(reply '$.events')"
    assertEquals "bytes" "$(sql "SELECT sum(length(CAST(body AS BLOB))) FROM events WHERE $where")" \
        "$(reply '$.bytes')"
    assertEquals "active users" "$(sql "SELECT count(DISTINCT uid) FROM events WHERE $where")" \
        "$(reply '$.active_users')"
    sql "SELECT kind || ' ' || coalesce(type, '') || ' ' || count(*) FROM events
         WHERE $where GROUP BY kind, type" | sort > "$TEST_TMP/want"
    echo "$REPLY" | json_q "(SELECT group_concat(k.key || ' ' || t.key || ' ' || t.value, char(10))
        FROM json_each(j, '\$.by_kind') k, json_each(k.value, '\$.by_type') t)" | sort > "$TEST_TMP/got"
    assertTrue "per kind and type: $(diff "$TEST_TMP/want" "$TEST_TMP/got")" \
        "cmp -s '$TEST_TMP/want' '$TEST_TMP/got'"
    assertEquals "interactions" "$(sql "SELECT count(*) FROM events WHERE $where AND kind = 'interaction'")" \
        "$(reply '$.by_kind.interaction.events')"
    # the same period in RFC 3339 through ctxvault, and an open end
    ctxvault stats --since "$(date -u -d @"${since%000}" +%FT%TZ)" \
        --until "$(date -u -d @"${until%000}" +%FT%TZ)" > "$TEST_TMP/cli.json" 2> "$TEST_TMP/cli.err"
    assert_status cli 0 $?
    assertEquals "events through ctxvault" "$inside" "$(json_get '$.events' < "$TEST_TMP/cli.json")"
    api "{\"op\":\"stats\",\"since\":$until}"
    assertEquals "since only" "$(sql "SELECT count(*) FROM events WHERE ts >= $until")" "$(reply '$.events')"
    # no period: the old reply, unchanged
    api '{"op":"stats"}'
    assertEquals "old reply's total" "$(sql 'SELECT count(*) FROM events')" "$(reply '$.events')"
    assertEquals "old reply's schema version" 4 "$(reply '$.schema_version')"
    assertEquals "old reply has no period" "" "$(reply '$.period')"
    api '{"op":"stats","since":"yesterday"}'
    assertEquals "a bad time" bad_request "$(reply '$.code')"
    api '{"op":"stats","from":0}'
    assertEquals "an unknown member" bad_request "$(reply '$.code')"
}

# NOW, and users built to fall in each segment under the default rules
# (window 30d, dormant 14d, new 7d, power 100 of 3 types, regular 20)
NOW=2026-11-30T12:00:00Z
segment_users() {
    f=$TEST_TMP/seg.ndjson
    : > "$f"
    iact "$f" u-dormant 40 "$(day $NOW 20)"
    iact "$f" u-new 40 "$(day $NOW 2)"
    iact "$f" u-power 60 "$(day $NOW 20)"
    iact "$f" u-power 60 "$(day $NOW 1)"
    iact "$f" u-regular 30 "$(day $NOW 10)"
    iact "$f" u-onetype 150 "$(day $NOW 10)" click     # many, but one type
    iact "$f" u-casual 3 "$(day $NOW 20)"
    iact "$f" u-casual 3 "$(day $NOW 1)"
    iact "$f" u-old 50 "$(day $NOW 40)"                # all before the window...
    iact "$f" u-old 5 "$(day $NOW 3)"                  # ...and a few in it
    printf '{"id":"ctx-only","kind":"context","user_id":"u-nointeraction","ts":"%sT00:00:00Z"}\n' \
        "$(day $NOW 1)" >> "$f"
    store_at "$NOW" "$f"
}

test_segment_rules_put_each_user_in_their_segment_stored_with_inputs() {
    segment_users
    serve_at "$NOW" || return
    for case in dormant:u-dormant new:u-new power:u-power regular:u-regular \
                regular:u-onetype casual:u-casual casual:u-old dormant:u-nointeraction; do
        api "{\"op\":\"user.segment\",\"user\":\"${case#*:}\"}"
        assertEquals "${case#*:} ($REPLY)" "${case%%:*}" "$(reply '$.segment')"
        assertEquals "${case#*:} computed now" 1 "$(reply '$.recomputed')"
    done
    # the stored row: the segment, its inputs, the time
    api '{"op":"user.segment","user":"u-power"}'
    user=$(pseudonym u-power)
    row="FROM segments s JOIN users u ON u.uid = s.uid WHERE u.user_id = '$user'"
    assertEquals "stored segment" power "$(sql "SELECT segment $row")"
    assertEquals "stored interactions" 120 "$(sql "SELECT json_extract(inputs, '$.interactions') $row")"
    assertEquals "stored types" 3 "$(sql "SELECT json_extract(inputs, '$.types') $row")"
    assertEquals "stored last interaction" "$(day $NOW 1)T00:00:59.000Z" \
        "$(sql "SELECT json_extract(inputs, '$.last_interaction') $row")"
    assertEquals "stored rules" 100 "$(sql "SELECT json_extract(inputs, '$.rules.power_interactions') $row")"
    assertEquals "computed at the store's now" "$(date -u -d $NOW +%s)000" "$(sql "SELECT computed_at $row")"
    assertEquals "returned from the store" 0 "$(reply '$.recomputed')"
    assertEquals "the window's count against sqlite3" \
        "$(sql "SELECT count(*) FROM events_v WHERE user_id = '$(pseudonym u-old)' AND kind = 'interaction'
                AND ts >= $(date -u -d $NOW +%s)000 - 30 * 86400000")" \
        "$(sql "SELECT json_extract(inputs, '$.interactions') FROM segments s JOIN users u ON u.uid = s.uid
                WHERE u.user_id = '$(pseudonym u-old)'")"
    assertEquals "one row per user" 8 "$(sql 'SELECT count(*) FROM segments')"
    # through ctxvault
    ctxvault segment --user u-regular > "$TEST_TMP/seg.json" 2> "$TEST_TMP/seg.err"
    assert_status seg 0 $?
    assertEquals "ctxvault segment" regular "$(json_get '$.segment' < "$TEST_TMP/seg.json")"
    api '{"op":"user.segment","user":"nobody-here"}'
    assertEquals "an unknown user" not_found "$(reply '$.code')"
    api '{"op":"user.segment","user":"u-new","refresh":"yes"}'
    assertEquals "refresh not a boolean" bad_request "$(reply '$.code')"
    api '{"op":"user.segment"}'
    assertEquals "no user" bad_request "$(reply '$.code')"
}

test_a_stale_segment_is_computed_again_and_refresh_forces_it() {
    conf_set stale_after 2s
    iact "$TEST_TMP/a.ndjson" u-grow 5 "$(date -u -d '10 days ago' +%F)"
    iact "$TEST_TMP/a.ndjson" u-grow 5 "$(date -u -d '1 day ago' +%F)"
    pipeline "$TEST_TMP/a.ndjson"
    serve_store || return
    api '{"op":"user.segment","user":"u-grow"}'
    assertEquals "first" casual "$(reply '$.segment')"
    first=$(reply '$.computed_at')
    api '{"op":"user.segment","user":"u-grow"}'
    assertEquals "fresh: stored" 0 "$(reply '$.recomputed')"
    assertEquals "fresh: same time" "$first" "$(reply '$.computed_at')"
    api '{"op":"user.segment","user":"u-grow","refresh":true}'
    assertEquals "refresh: computed again" 1 "$(reply '$.recomputed')"
    # newer interactions make it stale at once: 20 more, now regular
    stop_store
    iact "$TEST_TMP/b.ndjson" u-grow 20 "$(date -u -d '2 days ago' +%F)"
    pipeline "$TEST_TMP/b.ndjson"
    assert_status store 0 "$STATUS_STORE"
    serve_store || return
    api '{"op":"user.segment","user":"u-grow"}'
    assertEquals "after new interactions: computed again" 1 "$(reply '$.recomputed')"
    assertEquals "after new interactions" regular "$(reply '$.segment')"
    assertEquals "their count" 30 "$(reply '$.inputs.interactions')"
    api '{"op":"user.segment","user":"u-grow"}'
    assertEquals "then stored" 0 "$(reply '$.recomputed')"
    # older than stale_after: computed again
    sleep 2.2
    api '{"op":"user.segment","user":"u-grow"}'
    assertEquals "stale by age" 1 "$(reply '$.recomputed')"
    # new rules: computed again under them
    stop_store
    conf_set regular_interactions 1000
    serve_store || return
    api '{"op":"user.segment","user":"u-grow"}'
    assertEquals "new rules" casual "$(reply '$.segment')"
    assertEquals "new rules stored" 1000 "$(sql "SELECT json_extract(inputs, '$.rules.regular_interactions') FROM segments")"
}

test_erasing_a_user_removes_their_segment_and_cache_entries() {
    iact "$TEST_TMP/in.ndjson" u-gone 30 "$(date -u -d '1 day ago' +%F)"
    iact "$TEST_TMP/in.ndjson" u-stays 30 "$(date -u -d '1 day ago' +%F)"
    pipeline "$TEST_TMP/in.ndjson"
    serve_store || return
    for u in u-gone u-stays; do
        api "{\"op\":\"user.segment\",\"user\":\"$u\"}"
        assertEquals "segment of $u" 0 "$STATUS_API"
        api "{\"op\":\"cache.put\",\"ns\":\"embeddings\",\"key\":\"$u\",\"value\":[0.1,0.2],\"ttl\":3600,\"user\":\"$u\"}"
        assertEquals "cache of $u ($REPLY)" 0 "$STATUS_API"
    done
    api '{"op":"cache.put","ns":"prediction","key":"global","value":{"p":0.5},"ttl":3600}'
    gone=$(pseudonym u-gone)
    assertEquals "segments before" 2 "$(sql 'SELECT count(*) FROM segments')"
    assertEquals "cache entries before" 3 "$(sql 'SELECT count(*) FROM mlcache')"
    ctxvault delete --user u-gone > /dev/null 2> "$TEST_TMP/delete.err"
    assert_status delete 0 $?
    assertEquals "segments after: the other user's" 1 "$(sql 'SELECT count(*) FROM segments')"
    assertEquals "cache entries after: the other user's and the untied one" 2 \
        "$(sql 'SELECT count(*) FROM mlcache')"
    assertEquals "none tied to a uid that is gone" 0 \
        "$(sql 'SELECT count(*) FROM mlcache WHERE uid IS NOT NULL AND uid NOT IN (SELECT uid FROM users)')"
    assertEquals "no row of the user" 0 "$(sql "SELECT count(*) FROM users WHERE user_id = '$gone'")"
    assertEquals "the tombstone" 1 "$(sql 'SELECT count(*) FROM erasures')"
    api '{"op":"cache.get","ns":"embeddings","key":"u-gone"}'
    assertEquals "the erased user's entry misses" 0 "$(reply '$.hit')"
    api '{"op":"cache.get","ns":"embeddings","key":"u-stays"}'
    assertEquals "the other user's entry hits" 1 "$(reply '$.hit')"
    api '{"op":"user.segment","user":"u-gone"}'
    assertEquals "no segment for an erased user" not_found "$(reply '$.code')"
}

# compaction_begun FREE: the database has fewer free pages than FREE
compaction_begun() {
    [ "$(sql 'PRAGMA freelist_count')" -lt "$1" ]
}

test_compact_gives_free_pages_back_in_steps_while_the_pipeline_ingests() {
    gen "$TEST_TMP/in.ndjson" -n 20000 -s 72 -u 20 --start "$(date -u -d '2 days ago' +%FT00:00:00Z)"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status store 0 "$STATUS_STORE"
    # many rows gone (as an archive or a sweep without its vacuum leaves them)
    sql "DELETE FROM events WHERE kind <> 'interaction' OR seq % 2 = 0"
    free_before=$(sql 'PRAGMA freelist_count')
    pages_before=$(sql 'PRAGMA page_count')
    # in bytes: a new database has 16 KiB pages, an older one 4 KiB
    assertTrue "free pages to give back ($free_before)" \
        "[ $((free_before * $(sql 'PRAGMA page_size'))) -gt 2000000 ]"
    kept=$(rows)
    # fewer new rows than were deleted: the file must still shrink
    gen "$TEST_TMP/more.ndjson" -n 3000 -s 73 -u 20 --start "$(date -u -d '1 days ago' +%FT00:00:00Z)"
    services_start
    # Compaction in small requests holds nothing between them, so events
    # go through while it is under way. To make the overlap certain, not
    # a race: pause the compacting client once it has begun (some pages
    # given back, more to go), store the new events, then let it finish.
    ctxvault compact --pages 1 --max-ms 1 > "$TEST_TMP/compact.json" 2> "$TEST_TMP/compact.err" &
    compact=$!
    bg_track $compact
    # polled without a pause: the whole compaction takes under a second
    _tries=0
    until compaction_begun "$free_before" || [ $_tries -ge 20000 ]; do
        _tries=$((_tries + 1))
    done
    kill -STOP $compact
    left=$(sql 'PRAGMA freelist_count')
    assertTrue "compaction paused half-way ($left of $free_before pages left)" \
        "[ $left -gt 0 ] && kill -0 $compact"
    ctxvault-ingest --timeout 120 "$TEST_TMP/more.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    wait_until 30 rows_at_least $((kept + $(grep -c . "$TEST_TMP/more.ndjson")))
    during=$(rows)
    kill -CONT $compact
    wait $compact
    assert_status compact 0 $?
    # (the inserts meanwhile reuse free pages too)
    reported=$(json_get '$.freelist_before' < "$TEST_TMP/compact.json")
    assertTrue "free pages found ($reported of $free_before)" \
        "[ $reported -gt 0 ] && [ $reported -le $free_before ]"
    freed=$(json_get '$.freed' < "$TEST_TMP/compact.json")
    assertTrue "pages given back ($freed of $reported)" "[ $freed -gt 0 ] && [ $freed -le $reported ]"
    assertEquals "freelist after" 0 "$(json_get '$.freelist_after' < "$TEST_TMP/compact.json")"
    assertTrue "in many short requests ($(cat "$TEST_TMP/compact.json"))" \
        "[ $(json_get '$.requests' < "$TEST_TMP/compact.json") -gt 3 ]"
    assertTrue "events were stored meanwhile ($kept, then $during)" "[ $during -gt $kept ]"
    assertEquals "every event of the second ingest stored" \
        "$((kept + $(grep -c . "$TEST_TMP/more.ndjson")))" "$(rows)"
    # the file: fewer pages once the WAL is folded back (a writer's open)
    kill "$STORE_PID" "$ENCRYPT_PID"
    wait "$STORE_PID" "$ENCRYPT_PID" 2> /dev/null
    ctxvault compact > "$TEST_TMP/again.json" 2> "$TEST_TMP/again.err"
    assert_status again 0 $?
    assertEquals "nothing left to free" 0 "$(json_get '$.freed' < "$TEST_TMP/again.json")"
    assertEquals "freelist_count" 0 "$(sql 'PRAGMA freelist_count')"
    size=$(stat -c %s "$DB")
    page=$(sql 'PRAGMA page_size')
    assertTrue "the file has fewer pages ($pages_before, now $((size / page)))" \
        "[ $((size / page)) -lt $pages_before ]"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

test_compact_says_how_to_convert_a_database_without_incremental_vacuum() {
    gen "$TEST_TMP/in.ndjson" -n 500 -s 74 -u 2
    pipeline "$TEST_TMP/in.ndjson"
    sql "PRAGMA auto_vacuum = NONE; VACUUM"
    assertEquals "converted for the test" 0 "$(sql 'PRAGMA auto_vacuum')"
    sql "DELETE FROM events WHERE kind = 'trace'"
    serve_store || return
    api '{"op":"db.compact"}'
    assertEquals "says which mode" none "$(reply '$.auto_vacuum')"
    assertEquals "nothing more to do" 0 "$(reply '$.more')"
    echo "$REPLY" > "$TEST_TMP/reply.json"
    assert_grep "$TEST_TMP/reply.json" 'PRAGMA auto_vacuum=INCREMENTAL; VACUUM'
    ctxvault compact > /dev/null 2> "$TEST_TMP/compact.err"
    assert_status compact 65 $?
    assert_grep "$TEST_TMP/compact.err" 'without auto_vacuum=INCREMENTAL'
    api '{"op":"db.compact","pages":0}'
    assertEquals "pages 0" bad_request "$(reply '$.code')"
    api '{"op":"db.compact","steps":3}'
    assertEquals "an unknown member" bad_request "$(reply '$.code')"
}

# call NAME ARGS...: cvclientcall ARGS..., its stdout in $TEST_TMP/NAME.json
# and stderr in $TEST_TMP/NAME.err; returns its status
call() {
    _c=$1
    shift
    "$CALL" --home "$HOME_DIR" "$@" > "$TEST_TMP/$_c.json" 2> "$TEST_TMP/$_c.err"
}

# called NAME PATH: a member of what call NAME printed
called() {
    json_get "$2" < "$TEST_TMP/$1.json"
}

# kind_rows: "KIND ROWS" a line, sorted, as sqlite3 counts them
kind_rows() {
    sql "SELECT kind || ' ' || count(*) FROM events GROUP BY kind" | sort
}

# called_kind_rows NAME: the same from the by_kind of db-size's reply NAME
called_kind_rows() {
    json_q "(SELECT group_concat(k.key || ' ' || json_extract(k.value, '\$.rows'), char(10))
        FROM json_each(j, '\$.by_kind') k)" < "$TEST_TMP/$1.json" | sort
}

test_client_db_size_counts_the_rows_and_pages_sqlite_counts() {
    gen "$TEST_TMP/in.ndjson" -n 3000 -s 76 -u 5 --start "$(date -u -d '2 days ago' +%FT00:00:00Z)"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status store 0 "$STATUS_STORE"
    serve_store || return
    call size db-size
    assert_status size 0 $?
    kind_rows > "$TEST_TMP/want"
    called_kind_rows size > "$TEST_TMP/got"
    assertTrue "several kinds ($(tr '\n' ' ' < "$TEST_TMP/want"))" \
        "[ $(grep -c . "$TEST_TMP/want") -gt 2 ]"
    assertTrue "rows by kind: $(diff "$TEST_TMP/want" "$TEST_TMP/got")" \
        "cmp -s '$TEST_TMP/want' '$TEST_TMP/got'"
    assertEquals "page_size" "$(sql 'PRAGMA page_size')" "$(called size '$.page_size')"
    assertEquals "pages" "$(sql 'PRAGMA page_count')" "$(called size '$.pages')"
    assertEquals "no free pages yet" 0 "$(called size '$.freelist_pages')"
    # rows deleted beside store: the next reply follows the database
    # the older half as well: a page is freed only when all its rows go
    sql "DELETE FROM events WHERE kind = 'trace' OR seq <= (SELECT max(seq) / 2 FROM events)"
    call after db-size
    assert_status after 0 $?
    assertEquals "no trace rows left" "" "$(called after '$.by_kind.trace')"
    kind_rows > "$TEST_TMP/want"
    called_kind_rows after > "$TEST_TMP/got"
    assertTrue "rows by kind after deleting: $(diff "$TEST_TMP/want" "$TEST_TMP/got")" \
        "cmp -s '$TEST_TMP/want' '$TEST_TMP/got'"
    free=$(sql 'PRAGMA freelist_count')
    assertTrue "the deletes freed pages ($free)" "[ $free -gt 0 ]"
    assertEquals "freelist_pages" "$free" "$(called after '$.freelist_pages')"
    assertEquals "pages after" "$(sql 'PRAGMA page_count')" "$(called after '$.pages')"
}

test_client_stats_period_counts_what_sqlite_counts_and_refuses_a_bad_time() {
    gen "$TEST_TMP/in.ndjson" -n 4000 -s 77 -u 6 --start "$(date -u -d '3 days ago' +%FT00:00:00Z)"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status store 0 "$STATUS_STORE"
    serve_store || return
    d=$(date -u -d '3 days ago' +%F)
    since=${d}T00:20:00Z
    until=${d}T01:10:00Z
    since_ms=$(date -u -d "$since" +%s)000
    until_ms=$(date -u -d "$until" +%s)000
    where="ts >= $since_ms AND ts < $until_ms"
    inside=$(sql "SELECT count(*) FROM events WHERE $where")
    assertTrue "the period holds some rows but not all ($inside)" \
        "[ $inside -gt 100 ] && [ $inside -lt $(sql 'SELECT count(*) FROM events') ]"
    call period stats-period "$since" "$until"
    assert_status period 0 $?
    assertEquals "events" "$inside" "$(called period '$.events')"
    assertEquals "active users" "$(sql "SELECT count(DISTINCT uid) FROM events WHERE $where")" \
        "$(called period '$.active_users')"
    assertEquals "interactions" \
        "$(sql "SELECT count(*) FROM events WHERE $where AND kind = 'interaction'")" \
        "$(called period '$.by_kind.interaction.events')"
    assertEquals "the period's start" "${d}T00:20:00.000Z" "$(called period '$.period.since')"
    # each end left open
    call from stats-period "$until" -
    assert_status from 0 $?
    assertEquals "since only" "$(sql "SELECT count(*) FROM events WHERE ts >= $until_ms")" \
        "$(called from '$.events')"
    assertEquals "no end" "" "$(called from '$.period.until')"
    call before stats-period - "$since"
    assert_status before 0 $?
    assertEquals "until only" "$(sql "SELECT count(*) FROM events WHERE ts < $since_ms")" \
        "$(called before '$.events')"
    # a time that is none: refused, saying which
    call bad stats-period nonsense -
    assert_status bad 65 $?
    assert_grep "$TEST_TMP/bad.err" '"since" must be an RFC 3339 time'
    assert_grep "$TEST_TMP/bad.err" 'bad_request'
    assertEquals "nothing on stdout" 0 "$(wc -c < "$TEST_TMP/bad.json")"
    call badend stats-period "$since" 2026-13-45T99:00:00Z
    assert_status badend 65 $?
    assert_grep "$TEST_TMP/badend.err" '"until"'
}

test_client_compact_empties_the_freelist_in_steps_and_the_file_shrinks() {
    gen "$TEST_TMP/in.ndjson" -n 8000 -s 78 -u 8 --start "$(date -u -d '2 days ago' +%FT00:00:00Z)"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status store 0 "$STATUS_STORE"
    sql "DELETE FROM events WHERE kind <> 'interaction' OR seq % 2 = 0"
    free_before=$(sql 'PRAGMA freelist_count')
    assertTrue "free pages to give back ($free_before)" \
        "[ $((free_before * $(sql 'PRAGMA page_size'))) -gt 1000000 ]"
    size_before=$(stat -c %s "$DB")
    kept=$(sql 'SELECT count(*) FROM events')
    serve_store || return
    # small requests: several are needed; each says what it left
    n=0
    freed=0
    more=1
    while [ "$more" = 1 ] && [ $n -lt 1000 ]; do
        n=$((n + 1))
        call step compact 10 1
        assert_status step 0 $? || return
        freed=$((freed + $(called step '$.freed')))
        left=$(called step '$.freelist_after')
        assertEquals "request $n: the freelist it reports" "$(sql 'PRAGMA freelist_count')" "$left"
        more=$(called step '$.more')
        if [ "$more" = 1 ]; then
            assertTrue "request $n freed pages and left some ($(cat "$TEST_TMP/step.json"))" \
                "[ $(called step '$.freed') -gt 0 ] && [ $left -gt 0 ]"
        fi
    done
    assertTrue "in several requests ($n)" "[ $n -gt 2 ]"
    assertEquals "no more to do" 0 "$more"
    assertEquals "freelist_count" 0 "$(sql 'PRAGMA freelist_count')"
    assertEquals "every free page given back" "$free_before" "$freed"
    assertEquals "the rows untouched" "$kept" "$(sql 'SELECT count(*) FROM events')"
    # the passive checkpoint folds the shorter database back into its file
    wait_until 10 eval '[ $(stat -c %s "$DB") -lt $size_before ]'
    assertTrue "the file shrank ($size_before, now $(stat -c %s "$DB"))" \
        "[ $(stat -c %s "$DB") -lt $size_before ]"
    call again compact 0 0
    assert_status again 0 $?
    assertEquals "nothing left to free" 0 "$(called again '$.freed')"
    assertEquals "done at once" 0 "$(called again '$.more')"
}

test_client_calls_with_no_store_exit_69_and_say_so() {
    for args in db-size "stats-period - 2026-01-01T00:00:00Z" "compact 0 0"; do
        # shellcheck disable=SC2086 # the call's words
        call none --timeout 1000 $args
        assert_status none 69 $?
        assert_grep "$TEST_TMP/none.err" 'store did not answer|no store'
        assert_grep "$TEST_TMP/none.err" '\(transport\)'
        assertEquals "$args: nothing on stdout" 0 "$(wc -c < "$TEST_TMP/none.json")"
    done
    # a bad call is refused before anything is sent
    "$CALL" --home "$HOME_DIR" compact many 1 2> "$TEST_TMP/usage.err"
    assert_status usage 64 $?
    assert_grep "$TEST_TMP/usage.err" 'usage: cvclientcall'
}

test_cache_entries_expire_are_bounded_and_swept() {
    iact "$TEST_TMP/in.ndjson" u-model 5 "$(date -u -d '1 day ago' +%F)"
    pipeline "$TEST_TMP/in.ndjson"
    serve_store || return
    api '{"op":"cache.put","ns":"prediction","key":"short","value":{"next":"checkout"},"ttl":1}'
    assertEquals "put ($REPLY)" 0 "$STATUS_API"
    echo '[0.25,-1.5,3]' | ctxvault cache put --ns embeddings --key long --ttl 86400 --user u-model - \
        2> "$TEST_TMP/put.err"
    assert_status put 0 $?
    ctxvault cache put --ns embeddings --key longest --ttl 864000 '"v"' 2> "$TEST_TMP/put.err"
    assert_status put 0 $?
    ctxvault cache get --ns prediction --key short > "$TEST_TMP/get.json" 2> "$TEST_TMP/get.err"
    assert_status get 0 $?
    assertEquals "the value as put" '{"next":"checkout"}' "$(cat "$TEST_TMP/get.json")"
    api '{"op":"cache.get","ns":"embeddings","key":"long"}'
    assertEquals "a hit" 1 "$(reply '$.hit')"
    assertEquals "its value" -1.5 "$(reply '$.value[1]')"
    sleep 1.2
    ctxvault cache get --ns prediction --key short > /dev/null 2> "$TEST_TMP/get.err"
    assert_status get 66 $?
    api '{"op":"cache.get","ns":"prediction","key":"short"}'
    assertEquals "past its ttl: a miss" 0 "$(reply '$.hit')"
    assertEquals "still stored until swept" 1 "$(sql "SELECT count(*) FROM mlcache WHERE key = 'short'")"
    # the size bound: 256 KiB of JSON
    { printf '{"op":"cache.put","ns":"prediction","key":"big","ttl":60,"value":"'
      head -c 262142 /dev/zero | tr '\0' 'x'; printf '"}'; } > "$TEST_TMP/fits.json"
    ctxvault api - < "$TEST_TMP/fits.json" > "$TEST_TMP/fits.reply" 2> /dev/null
    assertEquals "262144 bytes fit" 1 "$(json_get '$.ok' < "$TEST_TMP/fits.reply")"
    { printf '{"op":"cache.put","ns":"prediction","key":"big","ttl":60,"value":"'
      head -c 262143 /dev/zero | tr '\0' 'x'; printf '"}'; } > "$TEST_TMP/big.json"
    ctxvault api - < "$TEST_TMP/big.json" > "$TEST_TMP/big.reply" 2> /dev/null
    assertEquals "one byte more" too_large "$(json_get '$.code' < "$TEST_TMP/big.reply")"
    assertEquals "the fitting one kept" 262144 "$(sql "SELECT length(value) FROM mlcache WHERE key = 'big'")"
    for case in \
        'bad_request|{"op":"cache.put","ns":"prediction","key":"k","value":1,"ttl":0}' \
        'bad_request|{"op":"cache.put","ns":"Prediction!","key":"k","value":1,"ttl":5}' \
        'bad_request|{"op":"cache.put","ns":"prediction","key":"k","ttl":5}' \
        'bad_request|{"op":"cache.put","ns":"prediction","key":"k","value":1,"ttl":5,"expires":9}' \
        'bad_request|{"op":"cache.get","ns":"prediction"}' \
        'not_found|{"op":"cache.put","ns":"prediction","key":"k","value":1,"ttl":5,"user":"nobody"}'; do
        api "${case#*|}"
        assertEquals "code of ${case#*|}" "${case%%|*}" "$(reply '$.code')"
    done
    # meta: the counters and what the cache holds
    api '{"op":"meta"}'
    assertEquals "schema version" 4 "$(reply '$.schema_version')"
    assertEquals "hits" 2 "$(reply '$.cache.hits')"
    assertEquals "misses" 2 "$(reply '$.cache.misses')"
    assertEquals "puts" 4 "$(reply '$.cache.puts')"
    assertEquals "entries" 4 "$(reply '$.cache.entries')"
    assertEquals "expired, not yet swept" 1 "$(reply '$.cache.expired')"
    assertEquals "no sweep yet" "" "$(reply '$.last_sweep')"
    # the sweep deletes what expired, and only that
    ctxvault-ttl-sweep --once > "$TEST_TMP/sweep.out" 2> "$TEST_TMP/sweep.err"
    assert_status sweep 0 $?
    assertEquals "swept" 1 "$(json_get '$.cache_expired' < "$TEST_TMP/sweep.out")"
    assertEquals "left" 3 "$(sql 'SELECT count(*) FROM mlcache')"
    api '{"op":"meta"}'
    assertNotEquals "the sweep recorded" "" "$(reply '$.last_sweep')"
    stop_store
    CTXVAULT_NOW=$(date -u -d '2 days' +%FT%TZ) ctxvault-ttl-sweep --once > "$TEST_TMP/sweep.out" 2> "$TEST_TMP/sweep.err"
    assert_status sweep 0 $?
    assertEquals "two days on: the day's entry and the minute's" 2 "$(json_get '$.cache_expired' < "$TEST_TMP/sweep.out")"
    assertEquals "left: the ten days' entry" longest "$(sql 'SELECT key FROM mlcache')"
}

test_cache_delete_removes_a_key_a_namespace_or_all_of_a_users_entries_audited() {
    iact "$TEST_TMP/in.ndjson" u-a 5 "$(date -u -d '1 day ago' +%F)"
    iact "$TEST_TMP/in.ndjson" u-b 5 "$(date -u -d '1 day ago' +%F)"
    pipeline "$TEST_TMP/in.ndjson"
    metrics_start
    serve_store || return
    for e in u-a:emb:k1 u-a:emb:k2 u-a:pred:k3 u-b:emb:kb; do
        u=${e%%:*} rest=${e#*:}
        api "{\"op\":\"cache.put\",\"ns\":\"${rest%%:*}\",\"key\":\"${rest#*:}\",\"value\":1,\"ttl\":3600,\"user\":\"$u\"}"
        assertEquals "put $e ($REPLY)" 0 "$STATUS_API"
    done
    api '{"op":"cache.put","ns":"emb","key":"global","value":1,"ttl":3600}'
    # one key
    api '{"op":"cache.delete","user":"u-a","ns":"emb","key":"k1"}'
    assertEquals "one key ($REPLY)" 1 "$(reply '$.deleted')"
    # another user's key is not this user's to delete
    api '{"op":"cache.delete","user":"u-a","ns":"emb","key":"kb"}'
    assertEquals "u-b's key through u-a" not_found "$(reply '$.code')"
    assertEquals "u-b's entry stays" 1 "$(sql "SELECT count(*) FROM mlcache WHERE key = 'kb'")"
    # a namespace
    api '{"op":"cache.delete","user":"u-a","ns":"emb"}'
    assertEquals "the namespace ($REPLY)" 1 "$(reply '$.deleted')"
    assertEquals "k2 gone" 0 "$(sql "SELECT count(*) FROM mlcache WHERE key = 'k2'")"
    # all of the user's, from the command
    ctxvault cache delete --user u-a > "$TEST_TMP/del.json" 2> "$TEST_TMP/del.err"
    assert_status "cache delete --user" 0 $?
    assertEquals "all the rest" 1 "$(json_get '$.deleted' < "$TEST_TMP/del.json")"
    ctxvault cache delete --user u-a > /dev/null 2> "$TEST_TMP/del.err"
    assert_status "nothing left to delete" 66 $?
    ctxvault cache delete --user u-a --key k1 > /dev/null 2>&1
    assert_status "--key without --ns" 64 $?
    assertEquals "left: u-b's and the untied one" "global kb" \
        "$(sql "SELECT group_concat(key, ' ') FROM (SELECT key FROM mlcache ORDER BY key)")"
    for case in \
        'bad_request|{"op":"cache.delete","ns":"emb"}' \
        'bad_request|{"op":"cache.delete","user":"u-b","key":"kb"}' \
        'bad_request|{"op":"cache.delete","user":"u-b","ns":"Emb!"}' \
        'bad_request|{"op":"cache.delete","user":"u-b","expired":true}' \
        'not_found|{"op":"cache.delete","user":"nobody"}'; do
        api "${case#*|}"
        assertEquals "code of ${case#*|}" "${case%%|*}" "$(reply '$.code')"
    done
    # audited: three entries, the user as a pseudonym, neither ns nor key
    assertEquals "audit entries" "key:1 ns:1 all:1" \
        "$(sql "SELECT group_concat(json_extract(detail, '$.by') || ':' || rows, ' ') FROM
                (SELECT detail, rows FROM audit WHERE action = 'cache-delete' ORDER BY seq)")"
    assertEquals "no namespace or key in them" 0 \
        "$(sql "SELECT count(*) FROM audit WHERE action = 'cache-delete' AND (detail LIKE '%emb%' OR detail LIKE '%k1%')")"
    assertEquals "no user id in clear" 0 "$(sql "SELECT count(*) FROM audit WHERE subject = 'u-a'")"
    ctxvault audit verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status "the chain holds" 0 $?
    wait_until 5 eval '[ "$(sample ctxvault_cache_deleted_total)" = 3 ]' ||
        fail "deletions counted: $(grep cache_deleted "$TEST_TMP/metrics.txt")"
}

test_a_database_of_schema_version_1_is_upgraded_when_opened() {
    gen "$TEST_TMP/in.ndjson" -n 1000 -s 75 -u 3 --start "$(date -u -d '2 days ago' +%FT00:00:00Z)"
    pipeline "$TEST_TMP/in.ndjson"
    # version 1 as it was: the tables of version 2 absent
    sql "DROP TABLE segments; DROP TABLE mlcache; DROP TABLE sync_versions;
         DROP TABLE sync_knowledge; DROP TABLE sync_local; DROP TABLE anon_past;
         UPDATE meta SET value = 1 WHERE key = 'schema_version'"
    assertEquals "no new tables" 0 "$(sql "SELECT count(*) FROM sqlite_master WHERE name IN ('segments', 'mlcache')")"
    before=$(sql "SELECT count(*), sum(length(body)), group_concat(id) FROM (SELECT * FROM events ORDER BY seq)" | cksum)
    serve_store || return
    wait_until 10 grep -q 'upgraded' "$TEST_TMP/serve.err" || fail "no upgrade logged: $(cat "$TEST_TMP/serve.err")"
    assert_grep "$TEST_TMP/serve.err" 'from schema version 1 to 4'
    assertEquals "version" 4 "$(sql "SELECT value FROM meta WHERE key = 'schema_version'")"
    assertEquals "the new tables and their indexes" 9 \
        "$(sql "SELECT count(*) FROM sqlite_master WHERE name IN ('segments', 'mlcache', 'mlcache_expires', 'mlcache_uid', 'sync_versions', 'sync_versions_rid', 'sync_knowledge', 'sync_local', 'anon_past')")"
    assertEquals "the rows intact" "$before" \
        "$(sql "SELECT count(*), sum(length(body)), group_concat(id) FROM (SELECT * FROM events ORDER BY seq)" | cksum)"
    api '{"op":"user.segment","user":"user-00001"}'
    assertEquals "the new tables work ($REPLY)" 0 "$STATUS_API"
    api '{"op":"cache.put","ns":"prediction","key":"k","value":1,"ttl":60}'
    assertEquals "cache after the upgrade" 0 "$STATUS_API"
    stop_store
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
    # a newer version than this ctxvault knows: refused, untouched
    sql "UPDATE meta SET value = 5 WHERE key = 'schema_version'"
    ctxvault-store < /dev/null 2> "$TEST_TMP/newer.err"
    assert_status newer 78 $?
    assert_grep "$TEST_TMP/newer.err" 'schema version 5, newer'
    assertEquals "left as it was" 5 "$(sql "SELECT value FROM meta WHERE key = 'schema_version'")"
}

. shunit2
