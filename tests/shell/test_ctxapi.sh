#!/bin/sh
# test_ctxapi.sh - the context API's read side on store's control socket
# (doc/PROTOCOL.md, "Context API"), against a real store over its real
# socket: context.load and context.list, interactions.query paged by its
# cursor (10,000 rows, no duplicates and no gaps, while the pipeline
# ingests, and with concurrent clients), profile.get, db.size, decryption
# only where the instance allows it (and audited), and bad requests that
# get their code while store keeps answering.
SUITE=ctxapi
. "$CV_TOP/tests/shell/lib.sh"

EXAMPLE=$CV_BUILD/cvclient-example

# interactions FILE USER N [START-SECOND [DAYS-AGO]]: N interaction events
# of USER, three to a second (so pages split runs of equal ts: the
# cursor's seq matters), types cycling click, search, navigation, from
# midnight DAYS-AGO (default 1) plus START-SECOND
interactions() {
    _day=$(date -u -d "${5:-1} days ago" +%F)
    awk -v u="$2" -v n="$3" -v s0="${4:-0}" -v day="$_day" 'BEGIN {
        split("click search navigation", t, " ")
        for (i = 0; i < n; i++) {
            s = s0 + int(i / 3)
            printf "{\"id\":\"%s-%06d-%d\",\"kind\":\"interaction\",\"user_id\":\"%s\",\"ts\":\"%sT%02d:%02d:%02dZ\",\"type\":\"%s\",\"url\":\"https://shop.example.com/p/%d\"}\n",
                u, i, s0, u, day, int(s / 3600) % 24, int(s / 60) % 60, s % 60, t[i % 3 + 1], i
        }
    }' > "$1"
}

# ids_of FILE: the event ids of an NDJSON file of stored events, in order
# (each body starts with its id)
ids_of() {
    sed 's/^{"id":"\([^"]*\)".*/\1/' "$1"
}

# stored_ids USER-ID-AS-STORED [KIND]: the ids of that user's rows, newest
# first, as the database orders them
stored_ids() {
    sql "SELECT id FROM events_v WHERE user_id = '$1' AND kind = '${2:-interaction}'
         ORDER BY ts DESC, seq DESC"
}

# stored_user FILE: the user id as stored (a pseudonym) of FILE's first row
stored_user() {
    head -n 1 "$1" | json_get '$.user_id'
}

test_context_load_and_list_return_the_newest_contexts() {
    gen "$TEST_TMP/in.ndjson" -n 3000 -s 91 -u 5 --start "$(date -u -d '2 days ago' +%FT00:00:00Z)"
    # a named context: the producer's "type"
    printf '{"id":"ctx-named-1","kind":"context","type":"weekly","user_id":"user-00001","ts":"%sT00:00:00Z","summary":"w"}\n' \
        "$(date -u -d '3 days ago' +%F)" >> "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status store 0 "$STATUS_STORE"
    serve_store || return
    ctxvault context user-00001 > "$TEST_TMP/ctx.json" 2> "$TEST_TMP/ctx.err"
    assert_status ctx 0 $?
    user=$(stored_user "$TEST_TMP/ctx.json")
    assertEquals "the newest context" "$(stored_ids "$user" context | head -n 1)" \
        "$(json_get '$.id' < "$TEST_TMP/ctx.json")"
    ctxvault context user-00001 --name weekly > "$TEST_TMP/named.json" 2> "$TEST_TMP/ctx.err"
    assert_status ctx 0 $?
    assertEquals "the named context" ctx-named-1 "$(json_get '$.id' < "$TEST_TMP/named.json")"
    ctxvault context --list --limit 7 user-00001 > "$TEST_TMP/list.json" 2> "$TEST_TMP/ctx.err"
    assert_status ctx 0 $?
    json_q "(SELECT group_concat(json_extract(value, '$.id'), char(10)) FROM json_each(j))" \
        < "$TEST_TMP/list.json" > "$TEST_TMP/list.ids"
    stored_ids "$user" context | head -n 7 > "$TEST_TMP/want.ids"
    assertTrue "the 7 newest contexts, newest first" "cmp -s '$TEST_TMP/want.ids' '$TEST_TMP/list.ids'"
    # stored values: the sealed fields stay sealed
    assert_grep "$TEST_TMP/ctx.json" '"recent_searches":"enc:'
    # not there: 66, with its code
    ctxvault context user-00001 --name nothing-so-named > /dev/null 2> "$TEST_TMP/ctx.err"
    assert_status ctx 66 $?
    api '{"op":"context.load","user":"user-00001","name":"nothing-so-named"}'
    assertEquals "code" not_found "$(echo "$REPLY" | json_get '$.code')"
}

test_context_load_by_id_returns_that_context_and_only_to_its_user() {
    serve_store || return
    id=$(echo '{"summary":"first"}' | ctxvault context save --user alice --name trip 2> "$TEST_TMP/save.err" | json_get '$.id')
    assertNotEquals "save ($(cat "$TEST_TMP/save.err"))" "" "$id"
    echo '{"summary":"newer"}' | ctxvault context save --user alice --name trip > /dev/null 2>> "$TEST_TMP/save.err"
    echo '{"summary":"bob"}' | ctxvault context save --user bob --name trip > /dev/null 2>> "$TEST_TMP/save.err"
    interactions "$TEST_TMP/in.ndjson" alice 1
    echo "{\"op\":\"interactions.save\",\"events\":[$(cat "$TEST_TMP/in.ndjson")]}" |
        ctxvault api - > /dev/null 2>> "$TEST_TMP/save.err" || fail "interactions.save: $(cat "$TEST_TMP/save.err")"
    assertEquals "the interaction stored" 1 "$(rows "id = 'alice-000000-0'")"
    # by id: that context, not the user's newest
    api "{\"op\":\"context.load\",\"id\":\"$id\"}"
    assertEquals "by id ($REPLY)" 0 "$STATUS_API"
    assertEquals "that context" "$id" "$(reply '$.context.id')"
    assertEquals "the same as stored" "$(sql "SELECT body FROM events WHERE id = '$id'")" \
        "$(echo "$REPLY" | jq -c .context)"
    api "{\"op\":\"context.load\",\"id\":\"$id\",\"user\":\"alice\"}"
    assertEquals "by id for its user ($REPLY)" "$id" "$(reply '$.context.id')"
    # another user's, an unknown user, no such id, an interaction's id: not_found
    for req in "{\"op\":\"context.load\",\"id\":\"$id\",\"user\":\"bob\"}" \
               "{\"op\":\"context.load\",\"id\":\"$id\",\"user\":\"nobody\"}" \
               '{"op":"context.load","id":"no-such-id"}' \
               '{"op":"context.load","id":"alice-000000-0"}'; do
        api "$req"
        assertEquals "code of $req ($REPLY)" not_found "$(reply '$.code')"
        assertEquals "status of $req" 66 "$STATUS_API"
    done
    api "{\"op\":\"context.load\",\"id\":\"$id\",\"name\":\"trip\"}"
    assertEquals "id and name" bad_request "$(reply '$.code')"
    api '{"op":"context.load"}'
    assertEquals "neither user nor id" bad_request "$(reply '$.code')"
    # the command
    ctxvault context --id "$id" > "$TEST_TMP/byid.json" 2> "$TEST_TMP/byid.err"
    assert_status "ctxvault context --id" 0 $?
    assertEquals "its id" "$id" "$(json_get '$.id' < "$TEST_TMP/byid.json")"
    ctxvault context alice --id "$id" > /dev/null 2>&1
    assert_status "ctxvault context alice --id" 0 $?
    ctxvault context bob --id "$id" > /dev/null 2> "$TEST_TMP/byid.err"
    assert_status "ctxvault context bob --id (alice's)" 66 $?
    ctxvault context --id "$id" --name trip > /dev/null 2>&1
    assert_status "--id with --name" 64 $?
}

# A row past its expiry is gone for every reader (query, get, the context
# API) even while the sweep has not yet deleted it; an export still lists
# it, with its expiry, as pending deletion
test_reads_never_return_a_row_past_its_expiry_the_export_lists_it() {
    {
        printf '{"id":"prof-1","kind":"profile","user_id":"alice","ts":"2026-11-01T00:00:00Z","privacy_level":"private"}\n'
        printf '{"id":"old-1","kind":"interaction","user_id":"alice","ts":"2026-11-01T00:00:01Z","type":"click"}\n'
        printf '{"id":"ctx-old","kind":"context","user_id":"alice","ts":"2026-11-01T00:00:02Z","type":"trip"}\n'
    } > "$TEST_TMP/old.ndjson"
    printf '{"id":"new-1","kind":"interaction","user_id":"alice","ts":"2026-12-01T00:00:00Z","type":"click"}\n' > "$TEST_TMP/new.ndjson"
    store_at 2026-11-01T00:00:05Z "$TEST_TMP/old.ndjson"
    store_at 2026-12-01T00:00:05Z "$TEST_TMP/new.ndjson"
    CTXVAULT_NOW=2026-12-05T00:00:00Z
    export CTXVAULT_NOW
    # 34 days on, no sweep: old-1 and ctx-old (30 days) are still held
    assertEquals "rows held" 4 "$(rows)"
    ctxvault query --user alice > "$TEST_TMP/q" 2> "$TEST_TMP/q.err"
    assert_status query 0 $?
    assertEquals "rows query returns: the profile and new-1" "new-1 prof-1" \
        "$(ids_of "$TEST_TMP/q" | sort | tr '\n' ' ' | sed 's/ $//')"
    ctxvault get old-1 > "$TEST_TMP/get" 2> "$TEST_TMP/get.err"
    assert_status "get of an expired row" 66 $?
    assert_grep "$TEST_TMP/get.err" 'old-1 expired at 2026-12-01T00:00:01.*export'
    assertEquals "nothing printed for it" 0 "$(wc -c < "$TEST_TMP/get")"
    ctxvault get new-1 > /dev/null 2>&1
    assert_status "get of a row still kept" 0 $?
    # the context API, through store
    serve_store || return
    api '{"op":"context.load","id":"ctx-old"}'
    assertEquals "context.load of an expired context ($REPLY)" not_found "$(reply '$.code')"
    api '{"op":"context.list","user":"alice"}'
    assertEquals "context.list ($REPLY)" 0 "$(echo "$REPLY" | jq '.contexts | length')"
    api '{"op":"interactions.query","user":"alice","limit":10}'
    assertEquals "interactions.query ($REPLY)" '["new-1"]' "$(echo "$REPLY" | jq -c '[.events[].id]')"
    api '{"op":"profile.get","user":"alice"}'
    assertEquals "profile.get: the profile in force ($REPLY)" private "$(reply '$.profile.privacy_level')"
    # the export: everything held, the expired rows marked
    ctxvault export --user alice --format json -o "$TEST_TMP/export.json" 2> "$TEST_TMP/export.err"
    assert_status export 0 $?
    assertEquals "rows exported" 4 "$(jq '[.events[][]] | length' "$TEST_TMP/export.json")"
    assertEquals "rows exported as expired, pending deletion" '["ctx-old","old-1"]' \
        "$(jq -c '[.events[][] | select(.stored.expired) | .event.id] | sort' "$TEST_TMP/export.json")"
    assertEquals "old-1's expiry" 2026-12-01T00:00:01.000Z \
        "$(jq -r '.events.interaction[] | select(.event.id == "old-1") | .stored.expires_at' "$TEST_TMP/export.json")"
    unset CTXVAULT_NOW
}

test_profile_get_and_db_size() {
    gen "$TEST_TMP/in.ndjson" -n 2000 -s 92 -u 4 --start "$(date -u -d '2 days ago' +%FT00:00:00Z)"
    pipeline "$TEST_TMP/in.ndjson"
    serve_store || return
    api '{"op":"profile.get","user":"user-00002"}'
    assertEquals "profile.get status ($REPLY)" 0 "$STATUS_API"
    echo "$REPLY" > "$TEST_TMP/p.json"
    user=$(json_get '$.event.user_id' < "$TEST_TMP/p.json")
    assertEquals "the profile row's level" \
        "$(sql "SELECT privacy_level FROM profiles p JOIN users u ON u.uid = p.uid WHERE u.user_id = '$user'")" \
        "$(json_get '$.profile.privacy_level' < "$TEST_TMP/p.json")"
    assertEquals "the latest profile event" \
        "$(stored_ids "$user" profile | head -n 1)" "$(json_get '$.event.id' < "$TEST_TMP/p.json")"
    api '{"op":"db.size"}'
    assertEquals "db.size status ($REPLY)" 0 "$STATUS_API"
    echo "$REPLY" > "$TEST_TMP/s.json"
    assertEquals "interaction rows" "$(rows "kind = 'interaction'")" \
        "$(json_get '$.by_kind.interaction.rows' < "$TEST_TMP/s.json")"
    assertEquals "interaction body bytes" \
        "$(sql "SELECT sum(length(body)) FROM events WHERE kind = 'interaction'")" \
        "$(json_get '$.by_kind.interaction.body_bytes' < "$TEST_TMP/s.json")"
    assertEquals "the file's size" "$(stat -c %s "$DB")" "$(json_get '$.db_bytes' < "$TEST_TMP/s.json")"
    api '{"op":"profile.get","user":"user-99999"}'
    assertEquals "unknown user's status" 66 "$STATUS_API"
    assertEquals "unknown user's code" not_found "$(echo "$REPLY" | json_get '$.code')"
}

test_paging_10000_interactions_gives_each_once_in_order() {
    interactions "$TEST_TMP/in.ndjson" pager 10000
    gen "$TEST_TMP/others.ndjson" -n 1000 -s 93 -u 5 --start "$(date -u -d yesterday +%FT00:00:00Z)"
    pipeline "$TEST_TMP/in.ndjson" "$TEST_TMP/others.ndjson"
    assert_status store 0 "$STATUS_STORE"
    serve_store || return
    "$EXAMPLE" --page 100 pager > "$TEST_TMP/out.ndjson" 2> "$TEST_TMP/example.err"
    assert_status example 0 $?
    assert_grep "$TEST_TMP/example.err" '10000 events in 100 pages'
    user=$(stored_user "$TEST_TMP/out.ndjson")
    ids_of "$TEST_TMP/out.ndjson" > "$TEST_TMP/got.ids"
    stored_ids "$user" > "$TEST_TMP/want.ids"
    assertEquals "stored" 10000 "$(grep -c . "$TEST_TMP/want.ids")"
    assertEquals "duplicates" 0 "$(sort "$TEST_TMP/got.ids" | uniq -d | grep -c .)"
    assertTrue "every interaction once, newest first (ts, then seq)" \
        "cmp -s '$TEST_TMP/want.ids' '$TEST_TMP/got.ids'"
    # a type and a time range, through ctxvault's pager
    since="$(date -u -d yesterday +%F)T00:30:00Z"
    ctxvault interactions --user pager --type search --since "$since" --all --page 77 \
        > "$TEST_TMP/search.ndjson" 2> "$TEST_TMP/ctl.err"
    assert_status ctl 0 $?
    assertEquals "searches since $since" \
        "$(rows "user_id = '$user' AND type = 'search' AND ts >= strftime('%s', '$since') * 1000")" \
        "$(grep -c . "$TEST_TMP/search.ndjson")"
    assert_no_grep "$TEST_TMP/search.ndjson" '"type":"(click|navigation)"'
    # --limit stops early, mid-page too, and says where to go on
    ctxvault interactions --user pager --limit 150 --page 100 > "$TEST_TMP/first.ndjson" 2> "$TEST_TMP/ctl.err"
    assertEquals "150" 150 "$(grep -c . "$TEST_TMP/first.ndjson")"
    cursor=$(sed -n 's/.*more: --cursor //p' "$TEST_TMP/ctl.err")
    ctxvault interactions --user pager --limit 50 --cursor "$cursor" > "$TEST_TMP/next.ndjson" 2> /dev/null
    ids_of "$TEST_TMP/first.ndjson" > "$TEST_TMP/200.ids"
    ids_of "$TEST_TMP/next.ndjson" >> "$TEST_TMP/200.ids"
    head -n 200 "$TEST_TMP/want.ids" > "$TEST_TMP/want200.ids"
    assertTrue "the next 50 from the cursor" "cmp -s '$TEST_TMP/want200.ids' '$TEST_TMP/200.ids'"
}

test_paging_while_the_pipeline_ingests_misses_nothing() {
    interactions "$TEST_TMP/first.ndjson" live 5000
    # later events of the same user: newer ones, and late ones older than
    # everything (they land behind the pages already read)
    interactions "$TEST_TMP/newer.ndjson" live 40000 20000
    interactions "$TEST_TMP/older.ndjson" live 3000 0 3
    cat "$TEST_TMP/newer.ndjson" "$TEST_TMP/older.ndjson" > "$TEST_TMP/more.ndjson"
    services_start
    ctxvault-ingest --timeout 60 "$TEST_TMP/first.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    sql "SELECT id FROM events ORDER BY id" > "$TEST_TMP/before.ids"
    ctxvault-ingest --source more --timeout 60 "$TEST_TMP/more.ndjson" > /dev/null 2> "$TEST_TMP/ingest2.err" &
    ingest=$!
    bg_track $ingest
    wait_until 20 rows_at_least 5100 || fail "the second ingest did not start"
    during=$(sql "SELECT COUNT(*) FROM events")
    ctxvault interactions --user live --all --page 10 > "$TEST_TMP/out.ndjson" 2> "$TEST_TMP/ctl.err"
    assert_status ctl 0 $?
    after=$(sql "SELECT COUNT(*) FROM events")
    wait $ingest
    assert_status ingest2 0 $?
    assertTrue "events were stored while paging ($during, then $after)" "[ $after -gt $during ]"
    ids_of "$TEST_TMP/out.ndjson" | sort > "$TEST_TMP/got.ids"
    assertEquals "duplicates" 0 "$(uniq -d "$TEST_TMP/got.ids" | grep -c .)"
    assertEquals "events stored before paging that were not returned" 0 \
        "$(comm -23 "$TEST_TMP/before.ids" "$TEST_TMP/got.ids" | grep -c .)"
    sql "SELECT id FROM events ORDER BY id" > "$TEST_TMP/all.ids"
    assertEquals "returned events that are not stored" 0 \
        "$(comm -13 "$TEST_TMP/all.ids" "$TEST_TMP/got.ids" | grep -c .)"
}

test_concurrent_clients_each_get_every_interaction() {
    interactions "$TEST_TMP/in.ndjson" many 3000
    pipeline "$TEST_TMP/in.ndjson"
    serve_store || return
    pids=
    for i in 1 2 3 4 5 6; do
        "$EXAMPLE" --page $((20 + i * 7)) many > "$TEST_TMP/out.$i" 2> "$TEST_TMP/err.$i" &
        pids="$pids $!"
        bg_track $!
    done
    i=0
    for pid in $pids; do
        i=$((i + 1))
        wait "$pid"
        assertEquals "client $i's status: $(cat "$TEST_TMP/err.$i")" 0 $?
    done
    stored_ids "$(stored_user "$TEST_TMP/out.1")" > "$TEST_TMP/want.ids"
    assertEquals "stored" 3000 "$(grep -c . "$TEST_TMP/want.ids")"
    for i in 1 2 3 4 5 6; do
        ids_of "$TEST_TMP/out.$i" > "$TEST_TMP/got.$i"
        assertTrue "client $i got every interaction once, in order" \
            "cmp -s '$TEST_TMP/want.ids' '$TEST_TMP/got.$i'"
    done
}

test_bad_requests_get_their_code_and_store_keeps_answering() {
    interactions "$TEST_TMP/in.ndjson" someone 10
    pipeline "$TEST_TMP/in.ndjson"
    # ctxvault-metrics, to see the refusals counted
    metrics_start
    serve_store || return
    for case in \
        'unknown_op|{"op":"context.teleport","user":"someone"}' \
        'bad_request|{"op":"interactions.query","user":5}' \
        'bad_request|{"op":"interactions.query","user":"someone","limit":"ten"}' \
        'bad_request|{"op":"interactions.query","user":"someone","limt":10}' \
        'bad_request|{"op":"interactions.query","user":"someone","cursor":"c1.zz"}' \
        'bad_request|{"op":"interactions.query","user":"someone","since":"last week"}' \
        'bad_request|{"no":"op"}' \
        'not_found|{"op":"interactions.query","user":"nobody-at-all"}' \
        'not_found|{"op":"context.load","user":"someone"}' \
        'forbidden|{"op":"interactions.query","user":"someone","decrypt":true}'; do
        want=${case%%|*}
        api "${case#*|}"
        assertEquals "code of ${case#*|} ($REPLY)" "$want" "$(echo "$REPLY" | json_get '$.code')"
        assertEquals "ok of ${case#*|}" 0 "$(echo "$REPLY" | json_get '$.ok')"
        assertNotEquals "status of ${case#*|}" 0 "$STATUS_API"
    done
    # a request over 1 MiB: too_large (through stdin; no argument that long)
    { printf '{"op":"interactions.query","user":"someone","type":"'
      head -c 1100000 /dev/zero | tr '\0' 'x'
      printf '"}'; } > "$TEST_TMP/big.json"
    ctxvault api - < "$TEST_TMP/big.json" > "$TEST_TMP/big.reply" 2> /dev/null
    assertEquals "oversize" too_large "$(json_get '$.code' < "$TEST_TMP/big.reply")"
    # not JSON at all
    api '{"op":'
    assertEquals "not JSON is refused by the client" 65 "$STATUS_API"
    # store is still there, answering, and counted each refusal
    api '{"op":"ping"}'
    assertEquals "ping after the bad requests" 0 "$STATUS_API"
    assertEquals "store still runs" 0 "$(kill -0 "$SERVE_PID" 2> /dev/null; echo $?)"
    api '{"op":"interactions.query","user":"someone","limit":3}'
    assertEquals "a good request after them" 3 "$(echo "$REPLY" | json_q "json_array_length(j, '$.events')")"
    # counted by code: 6 bad_request above, 1 unknown_op, 2 not_found, ...
    # store reports its counters now and then: wait for a report made
    # after the last refusal (forbidden, the loop's last; too_large after
    # it), not only for one that has the bad requests
    wait_until 20 sh -c "curl -s '$URL/metrics' > '$TEST_TMP/m.txt' &&
        grep -q '^ctxvault_control_errors_total{.*code=\"bad_request\"} 6\$' '$TEST_TMP/m.txt' &&
        grep -q '^ctxvault_control_errors_total{.*code=\"too_large\"} 1\$' '$TEST_TMP/m.txt'" ||
        fail "refusals counted: $(curl -s "$URL/metrics" | grep control_errors)"
    assertEquals "unknown ops counted" 1 "$(sample ctxvault_control_errors_total 'code="unknown_op"')"
    assertEquals "unknown users counted" 2 "$(sample ctxvault_control_errors_total 'code="not_found"')"
    assertEquals "oversize counted" 1 "$(sample ctxvault_control_errors_total 'code="too_large"')"
    assertEquals "forbidden counted" 1 "$(sample ctxvault_control_errors_total 'code="forbidden"')"
}

test_decrypting_needs_control_decrypt_and_is_audited() {
    gen "$TEST_TMP/in.ndjson" -n 500 -s 94 -u 2 --start "$(date -u -d '2 days ago' +%FT00:00:00Z)"
    pipeline "$TEST_TMP/in.ndjson"
    serve_store || return
    ctxvault context user-00001 --decrypt > /dev/null 2> "$TEST_TMP/ctx.err"
    assert_status ctx 77 $?
    assert_grep "$TEST_TMP/ctx.err" 'read-only'
    assertEquals "no decrypting read audited" 0 \
        "$(sql "SELECT COUNT(*) FROM audit WHERE action = 'decrypt-read'")"
    kill "$SERVE_PID"
    wait "$SERVE_PID" 2> /dev/null
    conf_set control_decrypt yes
    serve_store || return
    ctxvault context user-00001 --decrypt > "$TEST_TMP/ctx.json" 2> "$TEST_TMP/ctx.err"
    assert_status ctx 0 $?
    assert_no_grep "$TEST_TMP/ctx.json" '"recent_searches":"enc:'
    assertEquals "searches in clear" array "$(json_q "json_type(j, '$.recent_searches')" < "$TEST_TMP/ctx.json")"
    ctxvault interactions --user user-00001 --type search --limit 5 --decrypt \
        > "$TEST_TMP/s.ndjson" 2> /dev/null
    assert_no_grep "$TEST_TMP/s.ndjson" '"query":"enc:'
    assertEquals "decrypting reads audited" 2 \
        "$(sql "SELECT COUNT(*) FROM audit WHERE action = 'decrypt-read'")"
    # without "decrypt", stored values, even here
    ctxvault context user-00001 > "$TEST_TMP/sealed.json" 2> /dev/null
    assert_grep "$TEST_TMP/sealed.json" '"recent_searches":"enc:'
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

. shunit2
