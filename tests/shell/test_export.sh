#!/bin/sh
# test_export.sh - ctxvault export: everything held about a user comes back
# decrypted (hashed and generalised fields as stored), as one JSON document
# or one RFC 4180 CSV file, written 0600 with -o; the exit statuses.
SUITE=export
. "$CV_TOP/tests/shell/lib.sh"

HEADER='kind,id,ts,created_at,expires_at,event'

# stored_input N SEED USERS: generated events with the ids ingest gives them
# in $TEST_TMP/in.ndjson, run through the pipeline
stored_input() {
    gen "$TEST_TMP/gen.ndjson" -n "$1" -s "$2" -u "$3"
    ctxvault-ingest --stdout "$TEST_TMP/gen.ndjson" > "$TEST_TMP/in.ndjson" 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    pipeline "$TEST_TMP/in.ndjson"
    assert_status store 0 "$STATUS_STORE"
}

# user_counts USER: the input's events of USER counted by kind, as compact
# JSON with sorted keys
user_counts() {
    jq -s -S -c --arg u "$1" \
        'map(select(.user_id == $u)) | group_by(.kind) | map({key: .[0].kind, value: length}) | from_entries' \
        "$TEST_TMP/in.ndjson"
}

# csv_sql FILE QUERY: load the CSV FILE (header row: column names) as table
# t and run QUERY; sqlite3's importer follows RFC 4180
csv_sql() {
    sqlite3 :memory: -cmd ".import --csv $1 t" "$2"
}

# odd_events: hand-written events of user-00003 that need CSV quoting: an id
# with a comma, a kind with a comma, quotes and a newline, an (encrypted)
# query with all three; kinds with only a newline, and only a CR
odd_events() {
    printf '%s\n' \
        '{"id":"csv,1","kind":"odd, \"kind\"\nnext","user_id":"user-00003","ts":"2026-11-01T00:00:01Z","type":"search","query":"shoes, \"red\"\nsize 42"}' \
        '{"id":"csv-2","kind":"two\nlines","user_id":"user-00003","ts":"2026-11-01T00:00:02Z"}' \
        '{"id":"csv-3","kind":"carriage\rreturn","user_id":"user-00003","ts":"2026-11-01T00:00:03Z"}'
}

test_json_round_trip_gives_back_every_field_of_every_event() {
    u=user-00003
    stored_input 600 31 6
    n=$(jq -s --arg u "$u" 'map(select(.user_id == $u)) | length' "$TEST_TMP/in.ndjson")
    assertTrue "the input should hold events of $u" "[ ${n:-0} -gt 20 ]"
    ctxvault export --user "$u" --format json > "$TEST_TMP/export.json" 2> "$TEST_TMP/export.err"
    assert_status export 0 $?
    assertEquals "nothing on stderr" 0 "$(wc -c < "$TEST_TMP/export.err")"
    # the rows as stored, to check hashed fields against
    sqlite3 "$DB" "SELECT body FROM events" > "$TEST_TMP/stored.ndjson"
    assert_grep "$TEST_TMP/stored.ndjson" '"enc:d' "the stored rows should hold envelopes"
    assert_no_grep "$TEST_TMP/export.json" '"enc:(v[0-9]+|d[A-Za-z0-9_-]{16}):' "the export should hold no envelope"

    # Each input event of $u, made into what the export must show: a field
    # the policy hashes (etc/policy.conf) becomes its stored pseudonym, a
    # generalised location the stored one; everything else, encrypted fields
    # included, must come back as it went in. Prints one line per problem.
    jq -n -r --arg u "$u" --slurpfile in "$TEST_TMP/in.ndjson" \
        --slurpfile st "$TEST_TMP/stored.ndjson" --slurpfile ex "$TEST_TMP/export.json" '
        def hashed: [.[] | strings] as $k
            | ($k[-1] | IN("user_id", "email", "email_address", "ip", "ip_address",
                           "device_id", "mac_address", "person_id", "session_id",
                           "device_name"))
              or $k[-2:] == ["device", "name"];
        def pseudonym: type == "string" and test("^hash:(v[0-9]+|d[A-Za-z0-9_-]{16}):[A-Za-z0-9_-]{22}$");
        def expected($s):
            reduce (paths(type != "object" and type != "array") | select(hashed)
                    | select(. != ["user_id"])) as $p
                (.; if ($s | getpath($p) | pseudonym) then setpath($p; {pseudonym: ($s | getpath($p))}) else . end)
            | reduce (paths | select(.[-1] == "location")) as $p
                (.; setpath($p; $s | getpath($p)));
        ($st | map({key: .id, value: .}) | from_entries) as $stored
        | ([$ex[0].events[][] | {key: .event.id, value: .event}] | from_entries) as $out
        | $in[] | select(.user_id == $u) | . as $e
        | if $out[$e.id] == null then "missing from the export: \($e.id)"
          elif ($e | expected($stored[$e.id])) != $out[$e.id] then
              "differs: \($e.id): input \($e | tojson) export \($out[$e.id] | tojson)"
          else empty end' > "$TEST_TMP/problems" 2> "$TEST_TMP/jq.err"
    assertEquals "jq exit status ($(head -c 300 "$TEST_TMP/jq.err"))" 0 $?
    assertEquals "problems: $(head -c 1500 "$TEST_TMP/problems")" 0 "$(wc -l < "$TEST_TMP/problems")"

    # the subject as the request named them, not the stored pseudonym; a
    # field stored only as a pseudonym says so, never shows a bare hash
    assertEquals "user_id of every exported event is the user's own id" 0 \
        "$(jq --arg u "$u" '[.events[][] | .event.user_id | select(. != $u)] | length' "$TEST_TMP/export.json")"
    assertEquals "the export's subject" "$u" "$(jq -r .user "$TEST_TMP/export.json")"
    assertEquals "bare pseudonyms in the export" 0 \
        "$(jq '[paths(type == "string") as $p | select($p[-1] != "pseudonym")
                | select(getpath($p) | test("^hash:"))] | length' "$TEST_TMP/export.json")"
    assertTrue "fields marked as pseudonyms" \
        "[ $(jq '[.. | objects | select(has("pseudonym"))] | length' "$TEST_TMP/export.json") -gt 0 ]"
    assertEquals "events exported" "$n" "$(jq '[.events[][]] | length' "$TEST_TMP/export.json")"
    assertEquals "counts by kind" "$(user_counts "$u")" "$(jq -S -c .counts "$TEST_TMP/export.json")"
    assertEquals "events listed by kind" "$(user_counts "$u")" \
        "$(jq -S -c '.events | map_values(length)' "$TEST_TMP/export.json")"
    assertEquals "each kind's events oldest first" 0 \
        "$(jq '[.events[] | [.[].event.ts] as $t
               | range(1; $t | length) | select($t[.] < $t[. - 1])] | length' "$TEST_TMP/export.json")"
}

test_json_has_the_latest_profile_and_the_rows_metadata() {
    # the sample has two profiles of user-00001; the later one wins
    pipeline "$DATA/sample.ndjson"
    assert_status store 0 "$STATUS_STORE"
    ctxvault export --user user-00001 --format json > "$TEST_TMP/export.json" 2> "$TEST_TMP/export.err"
    assert_status export 0 $?
    assertEquals "profile events" 2 "$(jq '.events.profile | length' "$TEST_TMP/export.json")"
    assertEquals "the profile is the latest" "2026-11-01T00:01:02.339Z" \
        "$(jq -r .profile.ts "$TEST_TMP/export.json")"
    assertEquals "the profile is decrypted" "Felix Santos" \
        "$(jq -r .profile.display_name "$TEST_TMP/export.json")"
    id=$(jq -r '.events.interaction[0].event.id' "$TEST_TMP/export.json")
    created=$(sql "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch') FROM events WHERE id = '$id'")
    expires=$(sql "SELECT COALESCE(strftime('%Y-%m-%dT%H:%M:%fZ', expires_at / 1000.0, 'unixepoch'), 'null') FROM events WHERE id = '$id'")
    assertEquals "stored.created_at" "$created" \
        "$(jq -r '.events.interaction[0].stored.created_at' "$TEST_TMP/export.json")"
    assertEquals "stored.expires_at" "$expires" \
        "$(jq -r '.events.interaction[0].stored.expires_at' "$TEST_TMP/export.json")"
    assertEquals "stored.scrubbed_at of a row never scrubbed" null \
        "$(jq -r '.events.interaction[0].stored.scrubbed_at' "$TEST_TMP/export.json")"
    # the export is in the audit trail: who, how many rows, no personal data
    ctxvault audit list > "$TEST_TMP/audit.ndjson"
    assertEquals "audit entries" 1 "$(grep -c . "$TEST_TMP/audit.ndjson")"
    assertEquals "audited action" export "$(jq -r .action "$TEST_TMP/audit.ndjson")"
    assertEquals "audited rows" "$(ctxvault query --user user-00001 | grep -c .)" \
        "$(jq -r .rows "$TEST_TMP/audit.ndjson")"
    assert_no_grep "$TEST_TMP/audit.ndjson" 'user-00001|Felix' "the audit entry should hold no personal data"
    ctxvault audit verify > /dev/null 2> "$TEST_TMP/audit.err"
    assert_status audit 0 $?
    # a user with no profile event
    event 1 u-noprofile > "$TEST_TMP/np.ndjson"
    pipeline "$TEST_TMP/np.ndjson"
    assertEquals "profile of a user without one" null \
        "$(ctxvault export --user u-noprofile --format json | jq -c .profile)"
}

test_csv_has_one_row_per_event_and_quotes_as_rfc4180() {
    u=user-00003
    stored_input 600 31 6
    odd_events > "$TEST_TMP/odd.ndjson"
    pipeline "$TEST_TMP/odd.ndjson"
    assert_status store 0 "$STATUS_STORE"
    n=$(jq -s --arg u "$u" 'map(select(.user_id == $u)) | length' "$TEST_TMP/in.ndjson")
    ctxvault export --user "$u" --format csv > "$TEST_TMP/export.csv" 2> "$TEST_TMP/export.err"
    assert_status export 0 $?
    printf '%s\r\n' "$HEADER" > "$TEST_TMP/header"
    head -n 1 "$TEST_TMP/export.csv" > "$TEST_TMP/got-header"
    assertTrue "the header should be exactly '$HEADER' and CRLF: $(od -c "$TEST_TMP/got-header" | head -3)" \
        "cmp -s '$TEST_TMP/header' '$TEST_TMP/got-header'"
    assertEquals "data rows" "$((n + 3))" "$(csv_sql "$TEST_TMP/export.csv" 'SELECT COUNT(*) FROM t')"
    assertEquals "rows whose event is not the row's" 0 \
        "$(csv_sql "$TEST_TMP/export.csv" "SELECT COUNT(*) FROM t WHERE json_extract(event, '\$.id') IS NOT id OR json_extract(event, '\$.kind') IS NOT kind")"
    assertEquals "envelopes left" 0 \
        "$(csv_sql "$TEST_TMP/export.csv" "SELECT COUNT(*) FROM t WHERE event LIKE '%enc:d%'")"
    assertEquals "rows out of (kind, ts) order" 0 \
        "$(csv_sql "$TEST_TMP/export.csv" 'SELECT COUNT(*) FROM t a JOIN t b ON b.rowid = a.rowid + 1 WHERE (b.kind, b.ts) < (a.kind, a.ts)')"
    # the odd event: each field comes back whole
    assertEquals "the id with a comma" "csv,1" \
        "$(csv_sql "$TEST_TMP/export.csv" "SELECT id FROM t WHERE json_extract(event, '\$.query') LIKE 'shoes%'")"
    assertEquals "the kind with a comma, quotes and a newline" "$(printf 'odd, "kind"\nnext')" \
        "$(csv_sql "$TEST_TMP/export.csv" "SELECT kind FROM t WHERE id = 'csv,1'")"
    assertEquals "the decrypted query with a comma, quotes and a newline" \
        "$(printf 'shoes, "red"\nsize 42')" \
        "$(csv_sql "$TEST_TMP/export.csv" "SELECT json_extract(event, '\$.query') FROM t WHERE id = 'csv,1'")"
    assertEquals "the kind with only a newline" "$(printf 'two\nlines')" \
        "$(csv_sql "$TEST_TMP/export.csv" "SELECT kind FROM t WHERE id = 'csv-2'")"
    assertEquals "the kind with only a CR" "$(printf 'carriage\rreturn')" \
        "$(csv_sql "$TEST_TMP/export.csv" "SELECT kind FROM t WHERE id = 'csv-3'")"
    # and as bytes: quoted, quotes doubled, the newline inside the quotes
    assert_grep "$TEST_TMP/export.csv" '^"odd, ""kind""$' "the kind field should be quoted"
    assert_grep "$TEST_TMP/export.csv" '^next","csv,1",2026-11-01T00:00:01\.000Z,' \
        "the kind field should go on after its newline, then the quoted id"
    assert_grep "$TEST_TMP/export.csv" '""query"":""shoes, \\""red\\""\\nsize 42""\}"' \
        "the event's query should be quoted with its quotes doubled"
    assert_grep "$TEST_TMP/export.csv" "$(printf '^"carriage\rreturn",csv-3,')" \
        "a kind with a CR should be quoted"
}

test_output_file_is_0600_and_replaces_atomically() {
    pipeline "$DATA/sample.ndjson"
    echo "old" > "$TEST_TMP/out.json"
    chmod 644 "$TEST_TMP/out.json"
    ctxvault export --user user-00005 --format json -o "$TEST_TMP/out.json" \
        > "$TEST_TMP/export.out" 2> "$TEST_TMP/export.err"
    assert_status export 0 $?
    assertEquals "mode of the export file" 600 "$(stat -c %a "$TEST_TMP/out.json")"
    assertEquals "nothing on stdout with -o" 0 "$(wc -c < "$TEST_TMP/export.out")"
    assertEquals "the file holds the export" user-00005 "$(jq -r .user "$TEST_TMP/out.json")"
    assertEquals "temp files left" "out.json" "$(ls "$TEST_TMP" | grep '^out\.')"
    ctxvault export --user user-00005 --format csv --output "$TEST_TMP/new.csv" 2> "$TEST_TMP/export.err"
    assert_status export 0 $?
    assertEquals "mode of a new CSV file" 600 "$(stat -c %a "$TEST_TMP/new.csv")"
}

test_unknown_user_exits_66_naming_the_user_and_writes_nothing() {
    pipeline "$DATA/sample.ndjson"
    ctxvault export --user no-such-user --format json -o "$TEST_TMP/out.json" \
        > "$TEST_TMP/export.out" 2> "$TEST_TMP/export.err"
    assert_status export 66 $?
    assert_grep "$TEST_TMP/export.err" 'no data held about user no-such-user'
    assertFalse "no file for an unknown user" "[ -e '$TEST_TMP/out.json' ]"
    ctxvault export --user no-such-user --format csv > "$TEST_TMP/export.out" 2> "$TEST_TMP/export.err"
    assert_status export 66 $?
    assertEquals "nothing on stdout" 0 "$(wc -c < "$TEST_TMP/export.out")"
}

test_bad_usage_exits_64() {
    pipeline "$DATA/sample.ndjson"
    ctxvault export --user user-00001 --format xml > "$TEST_TMP/export.out" 2> "$TEST_TMP/export.err"
    assert_status export 64 $?
    assert_grep "$TEST_TMP/export.err" "--format 'xml'"
    assertEquals "nothing on stdout" 0 "$(wc -c < "$TEST_TMP/export.out")"
    for args in "--format json" "--user user-00001" "--user user-00001 --format json extra" \
        "--user user-00001 --format json -o"; do
        # shellcheck disable=SC2086 # split on purpose
        ctxvault export $args > /dev/null 2> "$TEST_TMP/export.err"
        assert_status export 64 $?
        assert_grep "$TEST_TMP/export.err" 'usage: ctxvault export'
    done
    ctxvault --help > "$TEST_TMP/help.out"
    assert_grep "$TEST_TMP/help.out" '^  export --user U --format json\|csv'
}

test_json_export_is_exactly_one_document() {
    pipeline "$DATA/sample.ndjson"
    CTXVAULT_NOW=2026-11-22T10:00:00Z ctxvault export --user user-00002 --format json \
        -o "$TEST_TMP/out.json" 2> "$TEST_TMP/export.err"
    assert_status export 0 $?
    assertEquals "top-level JSON documents" 1 "$(jq -c . "$TEST_TMP/out.json" | wc -l)"
    assertEquals "schema" ctxvault-export/1 "$(jq -r .schema "$TEST_TMP/out.json")"
    assertEquals "exported_at" 2026-11-22T10:00:00.000Z "$(jq -r .exported_at "$TEST_TMP/out.json")"
    assertEquals "members" '["schema","exported_at","user","profile","counts","events"]' \
        "$(jq -c keys_unsorted "$TEST_TMP/out.json")"
    assertEquals "each row is {event, stored}" 0 \
        "$(jq '[.events[][] | select(keys != ["event", "stored"])] | length' "$TEST_TMP/out.json")"
    # stdout gives the same bytes as the file
    CTXVAULT_NOW=2026-11-22T10:00:00Z ctxvault export --user user-00002 --format json \
        > "$TEST_TMP/stdout.json" 2> "$TEST_TMP/export.err"
    assertTrue "stdout and -o should give the same export" \
        "cmp -s '$TEST_TMP/out.json' '$TEST_TMP/stdout.json'"
}

. shunit2
