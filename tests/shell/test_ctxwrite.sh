#!/bin/sh
# test_ctxwrite.sh - the context API's write side on store's control
# socket (doc/PROTOCOL.md, "Context API"), against a real store over its
# real socket: context.save through the durable path (sealed as encrypt
# seals, read back decrypted, stored once per id, still there after a
# SIGKILL right after the reply), interactions.save (the good stored, the
# bad reported by index, dead-lettered and counted), context.delete (by
# id, name, all; audited), profile.set (retention re-applied to stored
# rows, only ever tighter), and bad requests refused with their codes.
SUITE=ctxwrite
. "$CV_TOP/tests/shell/lib.sh"

EXAMPLE=$CV_BUILD/cvclient-example

test_a_saved_context_is_sealed_as_stored_and_loads_back_decrypted() {
    conf_set control_decrypt yes
    serve_store || return
    echo '{"summary":"planning a trip","recent_searches":["paris hotels","cheap flights"]}' |
        ctxvault context save --user alice --name trip > "$TEST_TMP/save.json" 2> "$TEST_TMP/save.err"
    assert_status save 0 $?
    id=$(json_get '$.id' < "$TEST_TMP/save.json")
    assertEquals "stored" 1 "$(json_get '$.stored' < "$TEST_TMP/save.json")"
    assertEquals "one row, of kind context, named trip" 1 \
        "$(rows "id = '$id' AND kind = 'context' AND type = 'trip'")"
    # sealed as encrypt seals: no search text and no user id in the file
    assertEquals "the searches are sealed in the row" 0 \
        "$(sql "SELECT COUNT(*) FROM events WHERE body LIKE '%paris hotels%'")"
    assertEquals "the user is a pseudonym" 0 \
        "$(sql "SELECT COUNT(*) FROM events WHERE body LIKE '%alice%'")"
    ctxvault context alice --name trip > "$TEST_TMP/sealed.json" 2> /dev/null
    assert_grep "$TEST_TMP/sealed.json" '"recent_searches":"enc:'
    # and read back, opened with the keyring
    ctxvault context alice --name trip --decrypt > "$TEST_TMP/ctx.json" 2> "$TEST_TMP/ctx.err"
    assert_status ctx 0 $?
    assertEquals "the id" "$id" "$(json_get '$.id' < "$TEST_TMP/ctx.json")"
    assertEquals "the searches" '["paris hotels","cheap flights"]' \
        "$(json_get '$.recent_searches' < "$TEST_TMP/ctx.json")"
    assertEquals "the summary" "planning a trip" "$(json_get '$.summary' < "$TEST_TMP/ctx.json")"
    # the C client: save, then load back (the example program)
    "$EXAMPLE" --save trip '{"summary":"second","theme":"dark","recent_searches":["rome"]}' alice \
        > "$TEST_TMP/ex.json" 2> "$TEST_TMP/example.err"
    assert_status example 0 $?
    # as stored: what the policy keeps in clear, the rest sealed
    assertEquals "the example loads what it saved" dark "$(json_get '$.theme' < "$TEST_TMP/ex.json")"
    assert_grep "$TEST_TMP/ex.json" '"summary":"enc:' "unnamed free text is sealed"
    assertEquals "two versions of trip" 2 "$(rows "kind = 'context' AND type = 'trip'")"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

test_a_resend_with_the_same_id_stores_once() {
    serve_store || return
    api '{"op":"context.save","user":"bob","id":"ctx-bob-1","fields":{"summary":"a"}}'
    assertEquals "first save ($REPLY)" 0 "$STATUS_API"
    assertEquals "first: stored" 1 "$(reply '$.stored')"
    api '{"op":"context.save","user":"bob","id":"ctx-bob-1","fields":{"summary":"a"}}'
    assertEquals "resend: ok" 1 "$(reply '$.ok')"
    assertEquals "resend: a duplicate" 0 "$(reply '$.stored')"
    assertEquals "resend: the same id" ctx-bob-1 "$(reply '$.id')"
    assertEquals "one row" 1 "$(rows "id = 'ctx-bob-1'")"
    # through ctxvault and the client library too
    for i in 1 2; do
        echo '{"summary":"b"}' | ctxvault context save --user bob --id ctx-bob-2 \
            > "$TEST_TMP/save.$i" 2> /dev/null
    done
    assertEquals "second send via ctxvault: a duplicate" 0 "$(json_get '$.stored' < "$TEST_TMP/save.2")"
    assertEquals "one row" 1 "$(rows "id = 'ctx-bob-2'")"
    # without an id, store derives one from content and time: the same
    # content saved again later is a new, newest context
    api '{"op":"context.save","user":"bob","fields":{"summary":"c"}}'
    id1=$(reply '$.id')
    sleep 0.01
    api '{"op":"context.save","user":"bob","fields":{"summary":"c"}}'
    id2=$(reply '$.id')
    assertNotEquals "two saves, two ids" "$id1" "$id2"
    assertEquals "a derived id has the ULID layout" 26 "${#id1}"
    assertEquals "bob's contexts" 4 "$(rows "kind = 'context'")"
    ctxvault context bob > "$TEST_TMP/latest.json" 2> /dev/null
    assertEquals "the latest is the last saved" "$id2" "$(json_get '$.id' < "$TEST_TMP/latest.json")"
}

test_a_save_survives_a_sigkill_right_after_its_reply() {
    serve_store || return
    api '{"op":"context.save","user":"carol","id":"ctx-carol-1","name":"n","fields":{"summary":"durable"}}'
    kill -9 "$SERVE_PID"
    assertEquals "the save was answered ($REPLY)" 1 "$(reply '$.stored')"
    wait "$SERVE_PID" 2> /dev/null
    # the row is in the file (its WAL) before store is started again
    assertEquals "the row, read straight after the kill" 1 "$(rows "id = 'ctx-carol-1'")"
    serve_store || return
    ctxvault context carol --name n > "$TEST_TMP/ctx.json" 2> "$TEST_TMP/ctx.err"
    assert_status ctx 0 $?
    assertEquals "loaded after the restart" ctx-carol-1 "$(json_get '$.id' < "$TEST_TMP/ctx.json")"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

test_interactions_save_stores_the_good_and_reports_the_bad() {
    data_clock
    metrics_start
    serve_store || return
    api '{"op":"interactions.save","user":"dave","events":[
        {"id":"i-1","type":"click","ts":"2026-11-01T00:00:01Z","url":"https://x.example/1"},
        {"type":"search","ts":"not a time","query":"q1"},
        {"id":"i-3","type":"search","ts":"2026-11-01T00:00:03Z","query":"secret query"},
        "just text",
        {"kind":"trace","type":"x"},
        {"id":"i-6","type":"navigation","ts":"2026-11-01T00:00:06Z"}]}'
    assertEquals "status ($REPLY)" 0 "$STATUS_API"
    assertEquals "stored" 3 "$(reply '$.stored')"
    assertEquals "duplicates" 0 "$(reply '$.duplicates')"
    assertEquals "rejected, by index" "[1,3,4]" \
        "$(echo "$REPLY" | json_q "(SELECT json_group_array(json_extract(value, '$.index')) FROM json_each(j, '$.rejected'))")"
    echo "$REPLY" | json_get '$.rejected[0].error' | grep -q 'RFC 3339' ||
        fail "the validator's reason: $REPLY"
    assertEquals "ids by index" '["i-1",null,"i-3",null,null,"i-6"]' "$(reply '$.ids')"
    assertEquals "rows" 3 "$(rows "kind = 'interaction'")"
    assertEquals "the query is sealed" 0 "$(sql "SELECT COUNT(*) FROM events WHERE body LIKE '%secret query%'")"
    # dead-lettered, sealed, with their reasons
    assertEquals "dead letters" 3 "$(dl_count store)"
    assertEquals "their source" interactions.save "$(dl_field store 1 '$.source')"
    assert_no_grep "$(deadletter store)" 'just text'
    # the same batch again: all duplicates, nothing new
    api '{"op":"interactions.save","user":"dave","events":[{"id":"i-1","type":"click","ts":"2026-11-01T00:00:01Z","url":"https://x.example/1"}]}'
    assertEquals "a resent event" 1 "$(reply '$.duplicates')"
    assertEquals "rows after the resend" 3 "$(rows "kind = 'interaction'")"
    # ctxvault interactions save: NDJSON, bad lines by line number, 65
    printf '%s\n' '{"type":"click","ts":"2026-11-02T00:00:00Z"}' '' 'not json' \
        '{"type":"search","user_id":"erin","ts":"2026-11-02T00:00:01Z"}' > "$TEST_TMP/in.ndjson"
    ctxvault interactions save --user dave < "$TEST_TMP/in.ndjson" > "$TEST_TMP/out.json" 2> "$TEST_TMP/save.err"
    assertEquals "exit status with a bad line" 65 $?
    assert_grep "$TEST_TMP/save.err" '^ctxvault: error: stdin:3: not a JSON object'
    assertEquals "stored by ctxvault" 2 "$(json_get '$.stored' < "$TEST_TMP/out.json")"
    # the same file again: ids derived from content, as ingest's, dedupe
    ctxvault interactions save --user dave < "$TEST_TMP/in.ndjson" > "$TEST_TMP/again.json" 2> /dev/null
    assertEquals "sent again: duplicates" 2 "$(json_get '$.duplicates' < "$TEST_TMP/again.json")"
    assertEquals "sent again: nothing new" 0 "$(json_get '$.stored' < "$TEST_TMP/again.json")"
    assertEquals "an event's own user_id wins" 1 \
        "$(ctxvault interactions --user erin 2> /dev/null | grep -c .)"
    # every drop counted: 3 + 1 + 1 (the file's bad line, sent twice)
    assertEquals "dead letters in all" 5 "$(dl_count store)"
    wait_until 5 sh -c "[ \"\$(curl -s '$URL/metrics' | grep '^ctxvault_events_rejected_total{' | grep ctxvault-store | awk '{ s += \$NF } END { print s + 0 }')\" = 5 ]" ||
        fail "rejections counted: $(curl -s "$URL/metrics" | grep events_rejected)"
    assertEquals "dead letters counted" 5 "$(metric_sum ctxvault_events_deadlettered_total 'ctxvault-store')"
}

test_interactions_save_is_bounded() {
    serve_store || return
    awk 'BEGIN { printf "{\"op\":\"interactions.save\",\"user\":\"u\",\"events\":["
                 for (i = 0; i < 1001; i++) printf "%s{\"type\":\"click\"}", i ? "," : ""
                 printf "]}" }' > "$TEST_TMP/big.json"
    ctxvault api - < "$TEST_TMP/big.json" > "$TEST_TMP/big.reply" 2> /dev/null
    assertEquals "1001 events" too_large "$(json_get '$.code' < "$TEST_TMP/big.reply")"
    { printf '{"op":"interactions.save","user":"u","events":[{"type":"click","pad":"'
      head -c 1100000 /dev/zero | tr '\0' 'x'
      printf '"}]}'; } > "$TEST_TMP/huge.json"
    ctxvault api - < "$TEST_TMP/huge.json" > "$TEST_TMP/huge.reply" 2> /dev/null
    assertEquals "over 1 MiB" too_large "$(json_get '$.code' < "$TEST_TMP/huge.reply")"
    assertEquals "nothing stored" 0 "$(rows)"
    # 1000 is the bound, and ctxvault splits longer input into batches
    awk 'BEGIN { for (i = 0; i < 2500; i++) printf "{\"type\":\"click\",\"ts\":\"2026-11-01T00:00:00Z\",\"n\":%d}\n", i }' \
        > "$TEST_TMP/many.ndjson"
    ctxvault interactions save --user u < "$TEST_TMP/many.ndjson" > "$TEST_TMP/many.json" 2> "$TEST_TMP/many.err"
    assert_status many 0 $?
    assertEquals "2500 stored" 2500 "$(rows "kind = 'interaction'")"
}

test_context_delete_by_id_name_and_all_is_audited() {
    serve_store || return
    for c in 'a-1|a' 'a-2|a' 'b-1|b' 'x-1|'; do
        id=${c%%|*}
        name=${c#*|}
        api "{\"op\":\"context.save\",\"user\":\"frank\",\"id\":\"$id\"${name:+,\"name\":\"$name\"},\"fields\":{\"summary\":\"$id\"}}"
    done
    api '{"op":"context.save","user":"grace","id":"g-1","name":"a","fields":{"summary":"g"}}'
    api '{"op":"interactions.save","user":"frank","events":[{"id":"fi-1","type":"click"}]}'
    assertEquals "contexts" 5 "$(rows "kind = 'context'")"
    # one by id
    ctxvault context delete --user frank --id x-1 > "$TEST_TMP/d1.json" 2> "$TEST_TMP/d.err"
    assert_status d 0 $?
    assertEquals "by id" 1 "$(json_get '$.deleted' < "$TEST_TMP/d1.json")"
    assertEquals "x-1 gone" 0 "$(rows "id = 'x-1'")"
    # another user's context is not reached through this user
    api '{"op":"context.delete","user":"frank","id":"g-1"}'
    assertEquals "another user's id" not_found "$(reply '$.code')"
    assertEquals "g-1 kept" 1 "$(rows "id = 'g-1'")"
    # every version of a name
    api '{"op":"context.delete","user":"frank","name":"a","actor":"tester"}'
    assertEquals "by name" 2 "$(reply '$.deleted')"
    assertEquals "frank's a gone, grace's a kept" "0 1" \
        "$(rows "id LIKE 'a-%'") $(rows "id = 'g-1'")"
    api '{"op":"context.delete","user":"frank","name":"a"}'
    assertEquals "again: nothing matched" not_found "$(reply '$.code')"
    assertEquals "not_found's status" 66 "$STATUS_API"
    # all only when asked in so many words
    api '{"op":"context.delete","user":"frank"}'
    assertEquals "no selector" bad_request "$(reply '$.code')"
    api '{"op":"context.delete","user":"frank","all":true}'
    assertEquals "all" 1 "$(reply '$.deleted')"
    assertEquals "frank has no context" 0 "$(rows "id IN ('a-1','a-2','b-1','x-1')")"
    assertEquals "and kept his interaction" 1 "$(rows "id = 'fi-1'")"
    # audited: three entries, their rows, an actor, no id or name
    assertEquals "audit entries" "1|{\"by\":\"id\"}|control
2|{\"by\":\"name\"}|tester
1|{\"by\":\"all\"}|control" \
        "$(sql "SELECT rows, detail, actor FROM audit WHERE action = 'context-delete' ORDER BY seq")"
    ctxvault audit verify > /dev/null 2> "$TEST_TMP/audit.err"
    assert_status audit 0 $?
    api '{"op":"context.delete","user":"nobody","all":true}'
    assertEquals "an unknown user" not_found "$(reply '$.code')"
}

# expiry_days KIND: the distinct retentions (expires_at - ts, in days) of
# the rows of KIND
expiry_days() {
    sql "SELECT DISTINCT (expires_at - ts) / 86400000.0 FROM events WHERE kind = '$1'"
}

test_profile_set_reapplies_retention_to_stored_rows_only_tighter() {
    serve_store || return
    api '{"op":"context.save","user":"heidi","id":"h-ctx","fields":{"summary":"s"}}'
    api '{"op":"interactions.save","user":"heidi","events":[{"type":"click"},{"type":"search","query":"q"}]}'
    api '{"op":"context.save","user":"ivan","id":"i-ctx","fields":{"summary":"s"}}'
    assertEquals "the default: 30 days" 30.0 "$(expiry_days interaction)"
    ctxvault profile set --user heidi --retention-days 3 --preferences '{"theme":"dark"}' \
        > "$TEST_TMP/p.json" 2> "$TEST_TMP/p.err"
    assert_status p 0 $?
    assertEquals "the reply is the profile" 3 "$(json_get '$.profile.retention_days' < "$TEST_TMP/p.json")"
    assertEquals "with its preferences" dark "$(json_get '$.event.preferences.theme' < "$TEST_TMP/p.json")"
    # the stored rows are rescheduled: expires_at in the column
    assertEquals "heidi's interactions now expire after 3 days" 3.0 "$(expiry_days interaction)"
    assertEquals "heidi's context too" 3.0 \
        "$(sql "SELECT (expires_at - ts) / 86400000.0 FROM events WHERE id = 'h-ctx'")"
    assertEquals "ivan's context keeps 30 days" 30.0 \
        "$(sql "SELECT (expires_at - ts) / 86400000.0 FROM events WHERE id = 'i-ctx'")"
    # longer: new rows get it, stored rows keep the tighter promise
    api '{"op":"profile.set","user":"heidi","retention_days":60}'
    assertEquals "profile.set's status ($REPLY)" 0 "$STATUS_API"
    assertEquals "the profile says 60" 60 "$(reply '$.profile.retention_days')"
    assertEquals "stored rows stay at 3 days" 3.0 "$(expiry_days interaction)"
    api '{"op":"context.save","user":"heidi","id":"h-ctx-2","fields":{"summary":"t"}}'
    assertEquals "a new context gets the user's 60 days (contexts go up to forever)" 60.0 \
        "$(sql "SELECT (expires_at - ts) / 86400000.0 FROM events WHERE id = 'h-ctx-2'")"
    # a setting left out keeps its value
    api '{"op":"profile.set","user":"heidi","preferences":{"theme":"light"}}'
    assertEquals "retention kept" 60 "$(reply '$.profile.retention_days')"
    assertEquals "preferences replaced" light "$(reply '$.event.preferences.theme')"
    assertEquals "the profiles row" 60 \
        "$(sql "SELECT retention_days FROM profiles")"
    # a privacy level store's validator refuses
    api '{"op":"profile.set","user":"heidi","privacy_level":"secretive"}'
    assertEquals "bad level" bad_request "$(reply '$.code')"
    ctxvault profile get --user heidi > "$TEST_TMP/g.json" 2> /dev/null
    assertEquals "profile get" light "$(json_get '$.event.preferences.theme' < "$TEST_TMP/g.json")"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status verify 0 $?
}

test_bad_write_requests_get_their_codes_and_store_nothing() {
    metrics_start
    serve_store || return
    for case in \
        'bad_request|{"op":"context.save","user":5,"fields":{}}' \
        'bad_request|{"op":"context.save","user":"u"}' \
        'bad_request|{"op":"context.save","user":"u","fields":"text"}' \
        'bad_request|{"op":"context.save","user":"u","fields":{},"feilds":{}}' \
        'bad_request|{"op":"context.save","user":"u","fields":{"user_id":"someone-else"}}' \
        'bad_request|{"op":"context.save","user":"u","fields":{"kind":"profile"}}' \
        'bad_request|{"op":"context.save","user":"u","id":"has space","fields":{}}' \
        'bad_request|{"op":"context.save","user":"u","ts":"yesterday","fields":{}}' \
        'bad_request|{"op":"context.save","user":"u","name":7,"fields":{}}' \
        'bad_request|{"op":"interactions.save","user":"u","events":{}}' \
        'bad_request|{"op":"interactions.save","user":"u","events":[]}' \
        'bad_request|{"op":"context.delete","user":"u","id":"x","all":true}' \
        'bad_request|{"op":"context.delete","user":"u","all":"yes"}' \
        'bad_request|{"op":"profile.set","user":"u"}' \
        'bad_request|{"op":"profile.set","user":"u","retention_days":"ten"}' \
        'bad_request|{"op":"profile.set","user":"u","retention_days":-4}' \
        'not_found|{"op":"context.delete","user":"nobody","all":true}' \
        'unknown_op|{"op":"context.rename","user":"u"}'; do
        want=${case%%|*}
        api "${case#*|}"
        assertEquals "code of ${case#*|} ($REPLY)" "$want" "$(reply '$.code')"
        assertEquals "ok of ${case#*|}" 0 "$(reply '$.ok')"
        assertNotEquals "status of ${case#*|}" 0 "$STATUS_API"
    done
    assertEquals "nothing stored" 0 "$(rows)"
    api '{"op":"ping"}'
    assertEquals "store still answers" 0 "$STATUS_API"
    # store reports now and then: wait for a report made after the last
    # refusal, not only for one that has the bad requests
    wait_until 20 sh -c "curl -s '$URL/metrics' > '$TEST_TMP/m.txt' &&
        grep -q '^ctxvault_control_errors_total{.*code=\"bad_request\"} 16\$' '$TEST_TMP/m.txt' &&
        grep -q '^ctxvault_control_errors_total{.*code=\"unknown_op\"} 1\$' '$TEST_TMP/m.txt'" ||
        fail "refusals counted: $(curl -s "$URL/metrics" | grep control_errors)"
    assertEquals "not_found counted" 1 "$(metric_sum ctxvault_control_errors_total 'code="not_found"')"
}

. shunit2
