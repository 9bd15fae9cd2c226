#!/bin/sh
# test_privacy.sh - what reaches the disk: no plaintext of any encrypted or
# hashed field in the database or its WAL, pseudonyms that still join up,
# generalised locations, and no plaintext passed on for an event that
# cannot be protected.
SUITE=privacy
. "$CV_TOP/tests/shell/lib.sh"

# Store N generated events while keeping the store running, so that the WAL
# holds them: sets IN (the input); leaves copies of the live database and
# WAL in $TEST_TMP/live.db and $TEST_TMP/live.db-wal, then stops the store
# (which checkpoints into $DB).
store_generated_keeping_wal() {
    IN=$TEST_TMP/in.ndjson
    gen "$IN" -n "$1" -s 21 -u 20
    # identified users only: an anonymous user's rows keep no pseudonym
    # at all (test_levels.sh), and these tests follow pseudonyms
    sed -i 's/"privacy_level":"anonymous"/"privacy_level":"private"/' "$IN"
    protect "$IN" "$TEST_TMP/enc.ndjson"
    store_start
    store_feed "$TEST_TMP/enc.ndjson"
    wait_until 30 rows_at_least "$1" || fail "the store did not commit $1 rows"
    cp "$DB" "$TEST_TMP/live.db"
    cp "$DB-wal" "$TEST_TMP/live.db-wal" 2> /dev/null
    store_close
    assertEquals "store exit status" 0 "$STATUS_BGSTORE"
    assertTrue "the WAL of the running store should hold the events" \
        "[ \$(stat -c %s '$TEST_TMP/live.db-wal') -gt 100000 ]"
    # the files are readable to grep at all: what the policy keeps in
    # clear (a device's browser) is found
    assertTrue "grep should find stored browser names in the WAL" \
        "grep -a -q -F '\"browser\":\"' '$TEST_TMP/live.db-wal'"
}

# assert_absent WHAT PATTERN-FILE: no line of PATTERN-FILE (fixed strings)
# is found in the live database, the live WAL or the final database, by
# grep -a nor by strings
assert_absent() {
    assertTrue "no $1 in the input to look for" "[ -s '$2' ]"
    for f in "$TEST_TMP/live.db" "$TEST_TMP/live.db-wal" "$DB" "$DB-wal"; do
        [ -f "$f" ] || continue
        n=$(grep -a -c -F -f "$2" "$f")
        assertEquals "lines of $(basename "$f") holding a plaintext $1 (grep)" 0 "$n"
        n=$(strings -n 4 "$f" | grep -c -F -f "$2")
        assertEquals "strings of $(basename "$f") holding a plaintext $1" 0 "$n"
        [ "$n" -eq 0 ] || strings -n 4 "$f" | grep -F -f "$2" | head -n 3
    done
}

# values KEY: the string values of KEY in the input, one per line, unique
values() {
    grep -a -o "\"$1\":\"[^\"]*\"" "$IN" | cut -d'"' -f4 | sort -u
}

test_db_and_wal_hold_no_plaintext_emails() {
    store_generated_keeping_wal 1000
    values email > "$TEST_TMP/emails"
    grep -q '@example\.org$' "$TEST_TMP/emails" || fail "no emails in the generated input"
    assert_absent email "$TEST_TMP/emails"
}

test_db_and_wal_hold_no_plaintext_search_queries() {
    store_generated_keeping_wal 1000
    values query > "$TEST_TMP/queries"
    # recent_searches: arrays of queries
    grep -a -o '"recent_searches":\[[^]]*\]' "$IN" | sed 's/^[^[]*\[//; s/\]$//' |
        tr ',' '\n' | tr -d '"' | sort -u >> "$TEST_TMP/queries"
    assertTrue "fewer than 10 distinct queries in the input" \
        "[ \$(sort -u '$TEST_TMP/queries' | wc -l) -ge 10 ]"
    assert_absent "search query" "$TEST_TMP/queries"
}

test_db_and_wal_hold_no_plaintext_device_ids_ips_or_person_ids() {
    store_generated_keeping_wal 1000
    { values device_id; values ip; values person_id; } > "$TEST_TMP/ids"
    grep -q '^dev-' "$TEST_TMP/ids" || fail "no device ids in the input"
    grep -q '^P-' "$TEST_TMP/ids" || fail "no person ids in the input"
    assert_absent "device id, IP or person id" "$TEST_TMP/ids"
}

test_db_and_wal_hold_no_plaintext_names_or_comments() {
    store_generated_keeping_wal 1000
    { grep -a -o '"device":{[^}]*}' "$IN" | grep -o '"name":"[^"]*"' | cut -d'"' -f4
      values display_name; values comment; } | sort -u > "$TEST_TMP/names"
    assertNotNull "no display names in the input" "$(values display_name)"
    assert_absent "person's name, device name or free-text comment" "$TEST_TMP/names"
}

test_user_ids_are_not_stored_in_clear() {
    store_generated_keeping_wal 1000
    values user_id > "$TEST_TMP/users"
    assertEquals "users in the input" 20 "$(wc -l < "$TEST_TMP/users")"
    assert_absent "user id" "$TEST_TMP/users"
    assertEquals "user_id values not pseudonymised" 0 \
        "$(sql "SELECT COUNT(*) FROM events_v WHERE user_id NOT LIKE 'hash:v%'")"
    # the pseudonyms still join a user's rows: one per user
    assertEquals "distinct pseudonymous users" 20 \
        "$(sql 'SELECT COUNT(DISTINCT user_id) FROM events_v')"
}

test_query_decrypt_shows_the_search_text_again() {
    IN=$TEST_TMP/in.ndjson
    gen "$IN" -n 500 -s 22 -u 5
    pipeline "$IN"
    user=user-00001 # user-00002 is anonymous: scrubbed on arrival, no queries kept
    grep "\"user_id\":\"$user\"" "$IN" | grep -o '"query":"[^"]*"' | sort > "$TEST_TMP/want"
    assertTrue "user $user has no searches in the input" "[ -s '$TEST_TMP/want' ]"
    ctxvault query --user "$user" --decrypt > "$TEST_TMP/q.out" 2> "$TEST_TMP/q.err"
    assert_status q 0 $?
    grep -o '"query":"[^"]*"' "$TEST_TMP/q.out" | sort > "$TEST_TMP/got"
    assertEquals "decrypted queries of $user" "$(cat "$TEST_TMP/want")" "$(cat "$TEST_TMP/got")"
    assert_no_grep "$TEST_TMP/q.out" 'enc:(v[0-9]+|d[A-Za-z0-9_-]{16}):' "--decrypt left sealed fields"
}

test_query_without_decrypt_shows_envelopes_and_pseudonyms() {
    data_clock
    IN=$TEST_TMP/in.ndjson
    gen "$IN" -n 500 -s 22 -u 5
    pipeline "$IN"
    ctxvault query --user user-00001 > "$TEST_TMP/q.out" 2> "$TEST_TMP/q.err"
    assert_status q 0 $?
    n=$(grep -c . "$TEST_TMP/q.out")
    assertEquals "events of user-00001" "$(grep -c '"user_id":"user-00001"' "$IN")" "$n"
    assertEquals "lines without a pseudonymous user_id" 0 \
        "$(grep -c -v '"user_id":"hash:v[0-9]*:' "$TEST_TMP/q.out")"
    assert_grep "$TEST_TMP/q.out" '"query":"enc:(v[0-9]+|d[A-Za-z0-9_-]{16}):' "queries should be shown sealed"
    assert_no_grep "$TEST_TMP/q.out" '"query":"[^e]' "a query shown in clear"
    assert_no_grep "$TEST_TMP/q.out" 'user-00001|@example\.org' "plaintext identifiers"
}

test_same_email_gives_the_same_pseudonym() {
    IN=$TEST_TMP/in.ndjson
    gen "$IN" -n 1000 -s 23 -u 10
    sed -i 's/"privacy_level":"anonymous"/"privacy_level":"private"/' "$IN"
    pipeline "$IN"
    # how many events carry each email, in the input and in the database
    grep -o '"email":"[^"]*"' "$IN" | sort | uniq -c | awk '{print $1}' | sort -n > "$TEST_TMP/want"
    sql "SELECT COUNT(*) FROM events WHERE json_extract(body,'\$.email') IS NOT NULL
         GROUP BY json_extract(body,'\$.email')" | sort -n > "$TEST_TMP/got"
    assertTrue "some email should occur more than once" \
        "[ \$(tail -n 1 '$TEST_TMP/want') -gt 1 ]"
    assertEquals "events per person (input vs stored pseudonyms)" \
        "$(cat "$TEST_TMP/want")" "$(cat "$TEST_TMP/got")"
    assertEquals "stored emails that are not pseudonyms" 0 \
        "$(rows "json_extract(body,'\$.email') NOT LIKE 'hash:%'")"
}

test_two_purposes_give_unlinkable_pseudonyms() {
    # the same string as an email and as a device id: different pseudonyms
    event 1 u-purpose interaction ',"email":"same@example.org","device_id":"same@example.org"' \
        > "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    e=$(sql "SELECT json_extract(body,'\$.email') FROM events")
    d=$(sql "SELECT json_extract(body,'\$.device_id') FROM events")
    case $e in hash:*) ;; *) fail "email not hashed: $e" ;; esac
    case $d in hash:*) ;; *) fail "device_id not hashed: $d" ;; esac
    assertNotEquals "email and device_id pseudonyms of the same string" "$e" "$d"
}

test_same_query_encrypts_to_different_envelopes() {
    {
        event 1 u-nonce interaction ',"query":"the very same words"'
        event 2 u-nonce interaction ',"query":"the very same words"'
    } > "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    assertEquals "rows" 2 "$(rows)"
    assertEquals "distinct envelopes for one plaintext" 2 \
        "$(sql "SELECT COUNT(DISTINCT json_extract(body,'\$.query')) FROM events")"
}

test_envelope_moved_to_another_event_does_not_decrypt() {
    data_clock
    {
        event 1 u-bind interaction ',"id":"ev-one","query":"first secret words"'
        event 2 u-bind interaction ',"id":"ev-two","query":"second secret words"'
    } > "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    # the associated data binds the event id: ev-one's envelope in ev-two
    sql "UPDATE events SET body = json_set(body, '\$.query',
           (SELECT json_extract(body,'\$.query') FROM events WHERE id='ev-one'))
         WHERE id='ev-two'"
    ctxvault get ev-two --decrypt > "$TEST_TMP/get.out" 2> "$TEST_TMP/get.err"
    assert_no_grep "$TEST_TMP/get.out" 'first secret words' \
        "an envelope moved to another event was decrypted"
    assert_grep "$TEST_TMP/get.out" '"query":"enc:' "the moved envelope should stay sealed"
    ctxvault get ev-one --decrypt > "$TEST_TMP/get.out" 2> "$TEST_TMP/get.err"
    assert_grep "$TEST_TMP/get.out" '"query":"first secret words"' "ev-one itself decrypts"
}

test_location_is_generalised() {
    event 1 u-loc trace ',"location":{"lat":52.52437,"lon":13.41053,"street":"Alexanderplatz 1","postcode":"10178","city":"Berlin","country":"DE","accuracy_m":12}' \
        > "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    assertEquals "rows" 1 "$(rows)"
    q() { sql "SELECT json_extract(body,'\$.location.$1') FROM events"; }
    assertEquals "lat rounded to 1 decimal" 52.5 "$(q lat)"
    assertEquals "lon rounded to 1 decimal" 13.4 "$(q lon)"
    assertEquals "city kept" Berlin "$(q city)"
    assertEquals "country kept" DE "$(q country)"
    assertNull "street should be gone" "$(q street)"
    assertNull "postcode should be gone" "$(q postcode)"
    assertNull "accuracy should be gone" "$(q accuracy_m)"
    assertEquals "the street name in the database file" 0 \
        "$(grep -a -c Alexanderplatz "$DB")"
}

test_generated_locations_are_all_generalised() {
    IN=$TEST_TMP/in.ndjson
    gen "$IN" -n 500 -s 24 -u 10
    pipeline "$IN"
    with_loc=$(rows "json_extract(body,'\$.location') IS NOT NULL")
    assertEquals "rows with a location" "$(grep -c '"location":{' "$IN")" "$with_loc"
    assertEquals "rows still holding accuracy_m" 0 \
        "$(rows "json_extract(body,'\$.location.accuracy_m') IS NOT NULL")"
    assertEquals "coordinates with more than 1 decimal" 0 \
        "$(rows "json_extract(body,'\$.location') IS NOT NULL AND (
                 abs(json_extract(body,'\$.location.lat') * 10 -
                     round(json_extract(body,'\$.location.lat') * 10)) > 1e-6 OR
                 abs(json_extract(body,'\$.location.lon') * 10 -
                     round(json_extract(body,'\$.location.lon') * 10)) > 1e-6)")"
}

test_encrypt_never_passes_on_a_line_without_id() {
    event 1 u-noid interaction ',"query":"never in clear please"' > "$TEST_TMP/in.ndjson"
    ctxvault-encrypt < "$TEST_TMP/in.ndjson" > "$TEST_TMP/enc.out" 2> "$TEST_TMP/encrypt.err"
    assert_status encrypt 65 $?
    assertEquals "bytes on encrypt's stdout" 0 "$(wc -c < "$TEST_TMP/enc.out")"
    assertEquals "dead-letter records of encrypt" 1 "$(dl_count encrypt)"
    assertEquals "dead-letter line" 1 "$(dl_field encrypt 1 '$.line')"
    assert_grep "$TEST_TMP/encrypt.err" 'id' "the reason should name the missing id"
}

test_encrypt_keeps_going_after_a_line_it_cannot_process() {
    {
        event 1 u-go interaction ',"id":"ok-1","query":"first fine query"'
        event 2 u-go interaction ',"query":"never in clear please"'
        echo 'not json at all "never in clear either"'
        event 3 u-go interaction ',"id":"ok-3","query":"third fine query"'
    } > "$TEST_TMP/in.ndjson"
    ctxvault-encrypt < "$TEST_TMP/in.ndjson" > "$TEST_TMP/enc.out" 2> "$TEST_TMP/encrypt.err"
    assert_status encrypt 65 $?
    assertEquals "events passed on" 2 "$(grep -c . "$TEST_TMP/enc.out")"
    assert_no_grep "$TEST_TMP/enc.out" 'never in clear|fine query' "plaintext passed on"
    assertEquals "dead-letter records of encrypt" 2 "$(dl_count encrypt)"
    assertEquals "first dead-letter line" 2 "$(dl_field encrypt 1 '$.line')"
    assertEquals "second dead-letter line" 3 "$(dl_field encrypt 2 '$.line')"
}

test_store_refuses_an_event_whose_user_id_is_not_pseudonymised() {
    event 1 u-clear > "$TEST_TMP/in.ndjson"
    ctxvault-ingest --stdout "$TEST_TMP/in.ndjson" 2> /dev/null |
        ctxvault-store 2> "$TEST_TMP/store.err"
    assert_status store 65 $?
    assertEquals "rows" 0 "$(rows)"
    assertEquals "dead-letter records of store" 1 "$(dl_count store)"
    assert_grep "$TEST_TMP/store.err" 'user_id' "the reason should name user_id"
    assertEquals "the clear user id in the database file" 0 "$(grep -a -c u-clear "$DB")"
}

test_dead_letters_keep_rejected_lines_sealed() {
    # a rejected line holds what the policy protects: it must not sit on
    # disk in clear, yet the operator can still read why and what
    printf '%s\n' '{"kind":"search","user_id":"u-dl","query":"divorce lawyer near me","n":' \
        > "$TEST_TMP/in.ndjson"
    ctxvault-ingest --stdout "$TEST_TMP/in.ndjson" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 65 $?
    assertEquals "dead-letter records" 1 "$(dl_count ingest)"
    assert_no_grep "$(deadletter ingest)" 'divorce|u-dl' "a rejected line is kept in clear"
    assertEquals "line number kept readable" 1 "$(dl_field ingest 1 '$.line')"
    ctxvault deadletter > "$TEST_TMP/dl.out"
    assert_no_grep "$TEST_TMP/dl.out" 'divorce' "deadletter without --decrypt shows the line"
    ctxvault deadletter --decrypt ingest > "$TEST_TMP/dl.out" 2> "$TEST_TMP/dl.err"
    assert_status dl 0 $?
    assert_grep "$TEST_TMP/dl.out" 'divorce lawyer near me' "--decrypt should give the line back"
}

test_files_written_by_the_programs_are_0600() {
    # under a loose umask: the WAL, its index and dead-letter files stay private
    saved_umask=$(umask)
    umask 022
    gen "$TEST_TMP/in.ndjson" -n 200 -s 25 -u 5
    { cat "$TEST_TMP/in.ndjson"; echo 'not json'; } > "$TEST_TMP/bad.ndjson"
    protect "$TEST_TMP/bad.ndjson" "$TEST_TMP/enc.ndjson"
    store_start
    store_feed "$TEST_TMP/enc.ndjson"
    wait_until 10 rows_at_least 200 || fail "the store did not commit"
    for f in "$DB-wal" "$DB-shm" "$(deadletter ingest)"; do
        assertTrue "$f should exist" "[ -e '$f' ]"
        assertEquals "mode of $f" 600 "$(stat -c %a "$f")"
    done
    store_close
    umask "$saved_umask"
    assertEquals "store exit status" 0 "$STATUS_BGSTORE"
}

. shunit2
