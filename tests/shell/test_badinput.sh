#!/bin/sh
# test_badinput.sh - every kind of bad line is rejected with its line number
# and a reason, on stderr and in the dead-letter file, while the valid lines
# around it are stored; blank and CRLF lines are valid input.
SUITE=badinput
. "$CV_TOP/tests/shell/lib.sh"

# between FILE: write FILE as a valid event, the bad line read on stdin (with
# its newline), and another valid event
between() {
    { event 1 u-around; cat; event 3 u-around; } > "$1"
}

# assert_line2_rejected FILE REASON-ERE: run the pipeline on FILE (built by
# `between`) and check the rejection of line 2 and the storing of lines 1, 3
assert_line2_rejected() {
    pipeline "$1"
    assert_status ingest 65 "$STATUS_INGEST"
    assert_status encrypt 0 "$STATUS_ENCRYPT"
    assert_status store 0 "$STATUS_STORE"
    assert_grep "$TEST_TMP/ingest.err" "$1:2: .*($2)" \
        "stderr should say '$1:2: <reason matching $2>'"
    assert_no_grep "$TEST_TMP/ingest.err" "$1:[13]:" "a valid line was reported"
    assertEquals "rows (the two valid lines)" 2 "$(rows)"
    assertEquals "rows of the valid lines" 2 "$(rows "ts IN (1793491201000, 1793491203000)")"
    assertEquals "dead-letter records" 1 "$(dl_count ingest)"
    assertEquals "dead-letter line number" 2 "$(dl_field ingest 1 '$.line')"
    reason=$(dl_field ingest 1 '$.reason')
    echo "$reason" | grep -q -i -E -- "$2" ||
        fail "dead-letter reason '$reason' should match /$2/"
}

# nested N: a valid event whose "state" holds N nested objects (so the line
# is nested N+1 deep)
nested() {
    o= c= i=0
    while [ "$i" -lt "$1" ]; do
        o="$o{\"n\":" c="$c}" i=$((i + 1))
    done
    printf '{"kind":"snapshot","user_id":"u-deep","ts":"2026-11-01T00:00:02Z","state":%s1%s}\n' "$o" "$c"
}

test_line_that_is_not_json_is_rejected_with_line_number() {
    printf '{"kind":"interaction","user_id":"u1","ts":"2026-11-\n' | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'JSON'
}

test_json_that_is_not_an_object_is_rejected_with_line_number() {
    printf '[{"kind":"interaction","user_id":"u1"}]\n' | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'object'
}

test_bad_utf8_is_rejected_with_line_number() {
    printf '{"kind":"interaction","user_id":"u1","ts":"2026-11-01T00:00:02Z","note":"caf\303\050 \377\376"}\n' |
        between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'UTF-?8'
}

test_bad_utf8_in_a_key_is_rejected_with_line_number() {
    printf '{"kind":"interaction","user_id":"u1","ts":"2026-11-01T00:00:02Z","k\377":1}\n' |
        between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'UTF-?8'
}

test_raw_nul_byte_is_rejected_with_line_number() {
    printf '{"kind":"interaction","user_id":"u1","ts":"2026-11-01T00:00:02Z","q":"cheap\000flights"}\n' |
        between "$TEST_TMP/in.ndjson"
    assertEquals "the test file should hold a NUL" 1 "$(tr -dc '\000' < "$TEST_TMP/in.ndjson" | wc -c)"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'NUL'
}

test_nul_escape_is_rejected_with_line_number() {
    printf '{"kind":"interaction","user_id":"u1","ts":"2026-11-01T00:00:02Z","q":"cheap\\u0000flights"}\n' |
        between "$TEST_TMP/in.ndjson"
    assert_grep "$TEST_TMP/in.ndjson" 'cheap\\u0000flights' "the test line should hold \\u0000"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'NUL|u0000'
}

test_nesting_deeper_than_64_is_rejected_with_line_number() {
    nested 64 | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'nest|deep'
}

test_very_deep_nesting_is_rejected_without_a_crash() {
    nested 5000 | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'nest|deep'
}

test_nesting_of_exactly_64_levels_is_accepted() {
    nested 63 > "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows" 1 "$(rows)"
}

test_line_longer_than_configured_max_line_is_rejected_with_line_number() {
    conf_set max_line 1KiB
    pad=$(printf '%01100d' 0)
    event 2 u1 interaction ",\"pad\":\"$pad\"" | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'longer than'
    assert_grep "$TEST_TMP/ingest.err" 'longer than 1024' "the limit should be named"
}

test_line_just_under_configured_max_line_is_accepted() {
    conf_set max_line 1KiB
    event 2 u1 interaction ",\"pad\":\"$(printf '%0900d' 0)\"" > "$TEST_TMP/in.ndjson"
    assertTrue "the line should be under 1 KiB" "[ \$(wc -c < '$TEST_TMP/in.ndjson') -lt 1024 ]"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assertEquals "rows" 1 "$(rows)"
}

test_event_under_1mib_with_a_large_encrypted_field_is_stored() {
    # accepted by ingest under the default limit, the event grows when
    # encrypt seals its free text; it must still be stored
    { printf '{"kind":"interaction","user_id":"u1","ts":"2026-11-01T00:00:02Z","notes":"'
      head -c 900000 /dev/zero | tr '\0' x; printf '"}\n'; } > "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status encrypt 0 "$STATUS_ENCRYPT"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows" 1 "$(rows)"
}

test_line_of_exactly_max_line_bytes_is_accepted_by_ingest() {
    conf_set max_line 1KiB
    for n in 1024 1025; do
        base=$(event 2 u1 interaction ',"pad":""' | tr -d '\n')
        event 2 u1 interaction ",\"pad\":\"$(printf "%0$((n - ${#base}))d" 0)\"" > "$TEST_TMP/in.$n"
        assertEquals "length of the test line" $((n + 1)) "$(wc -c < "$TEST_TMP/in.$n")"
    done
    ctxvault-ingest --stdout "$TEST_TMP/in.1024" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 0 $?
    ctxvault-ingest --stdout "$TEST_TMP/in.1025" > /dev/null 2> "$TEST_TMP/ingest.err"
    assert_status ingest 65 $?
}

test_line_over_default_max_line_of_1mib_is_rejected_with_line_number() {
    # 1.1 MiB of padding inside an otherwise valid event
    head -c 1153434 /dev/zero | tr '\0' x > "$TEST_TMP/pad"
    { printf '{"kind":"trace","user_id":"u1","ts":"2026-11-01T00:00:02Z","pad":"'
      cat "$TEST_TMP/pad"; printf '"}\n'; } | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'longer than'
    assert_grep "$TEST_TMP/ingest.err" 'longer than 1048576' "the default limit should be 1 MiB"
}

test_missing_kind_is_rejected_with_line_number() {
    printf '{"user_id":"u1","ts":"2026-11-01T00:00:02Z","type":"click"}\n' | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'kind.*missing|missing.*kind'
}

test_missing_user_id_is_rejected_with_line_number() {
    printf '{"kind":"interaction","ts":"2026-11-01T00:00:02Z","type":"click"}\n' | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'user_id.*missing|missing.*user_id'
}

test_empty_user_id_is_rejected_with_line_number() {
    printf '{"kind":"interaction","user_id":"","ts":"2026-11-01T00:00:02Z"}\n' | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'user_id.*empty|empty.*user_id'
}

test_user_id_of_wrong_type_is_rejected_with_line_number() {
    printf '{"kind":"interaction","user_id":3,"ts":"2026-11-01T00:00:02Z"}\n' | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'user_id.*(string|number|type)'
}

test_user_id_as_object_is_rejected_with_line_number() {
    printf '{"kind":"interaction","user_id":{"id":"u1"},"ts":"2026-11-01T00:00:02Z"}\n' | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'user_id.*(string|object|type)'
}

test_kind_of_wrong_type_is_rejected_with_line_number() {
    printf '{"kind":42,"user_id":"u1","ts":"2026-11-01T00:00:02Z"}\n' | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'kind.*(string|number|type)'
}

test_impossible_timestamp_is_rejected_with_line_number() {
    printf '{"kind":"interaction","user_id":"u1","ts":"2026-13-45T99:00:00Z"}\n' | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" '"?ts"?.*(RFC|timestamp|time)'
}

test_timestamp_that_is_not_rfc3339_is_rejected_with_line_number() {
    printf '{"kind":"interaction","user_id":"u1","ts":"yesterday"}\n' | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" '"?ts"?.*(RFC|timestamp|time)'
}

test_timestamp_of_wrong_type_is_rejected_with_line_number() {
    printf '{"kind":"interaction","user_id":"u1","ts":true}\n' | between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" '"?ts"?'
}

test_profile_with_retention_days_of_wrong_type_is_rejected_with_line_number() {
    # store cannot file such a profile: ingest must reject it, not pass it on
    printf '{"kind":"profile","user_id":"u1","ts":"2026-11-01T00:00:02Z","privacy_level":"private","retention_days":"ten"}\n' |
        between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'retention_days'
}

test_profile_with_unknown_privacy_level_is_rejected_with_line_number() {
    printf '{"kind":"profile","user_id":"u1","ts":"2026-11-01T00:00:02Z","privacy_level":"bogus","retention_days":30}\n' |
        between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'privacy_level'
}

test_duplicate_key_is_rejected_with_line_number() {
    printf '{"kind":"interaction","kind":"trace","user_id":"u1","ts":"2026-11-01T00:00:02Z"}\n' |
        between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'duplicate key'
}

test_duplicate_key_in_a_nested_object_is_rejected_with_line_number() {
    printf '{"kind":"interaction","user_id":"u1","ts":"2026-11-01T00:00:02Z","device":{"os":"a","os":"b"}}\n' |
        between "$TEST_TMP/in.ndjson"
    assert_line2_rejected "$TEST_TMP/in.ndjson" 'duplicate key'
}

test_blank_lines_are_skipped_and_accepted() {
    { event 1; printf '\n   \n\t\n'; event 2; printf '\r\n'; event 3; echo; } > "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows" 3 "$(rows)"
    assertEquals "dead-letter records" 0 "$(dl_count ingest)"
}

test_crlf_lines_are_accepted() {
    { event 1 | sed 's/$/\r/'; event 2; event 3 | sed 's/$/\r/'; } > "$TEST_TMP/in.ndjson"
    assertEquals "CR bytes in the input" 2 "$(tr -dc '\r' < "$TEST_TMP/in.ndjson" | wc -c)"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows" 3 "$(rows)"
    assertEquals "stored bodies ending in CR" 0 "$(rows "body LIKE '%' || char(13) || '%'")"
}

test_last_line_without_newline_is_accepted() {
    { event 1; event 2 | tr -d '\n'; } > "$TEST_TMP/in.ndjson"
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 0 "$STATUS_INGEST"
    assertEquals "rows" 2 "$(rows)"
}

test_missing_input_file_exits_66_and_other_files_are_processed() {
    event 1 > "$TEST_TMP/a.ndjson"
    event 2 > "$TEST_TMP/b.ndjson"
    pipeline "$TEST_TMP/a.ndjson" "$TEST_TMP/missing.ndjson" "$TEST_TMP/b.ndjson"
    assert_status ingest 66 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    assert_grep "$TEST_TMP/ingest.err" "$TEST_TMP/missing.ndjson" "the missing file should be named"
    assertEquals "rows from the files that exist" 2 "$(rows)"
}

test_line_numbers_count_per_file() {
    { event 1; event 2; } > "$TEST_TMP/a.ndjson"
    { event 3; echo '{"kind":"interaction"}'; } > "$TEST_TMP/b.ndjson"
    pipeline "$TEST_TMP/a.ndjson" "$TEST_TMP/b.ndjson"
    assert_status ingest 65 "$STATUS_INGEST"
    assert_grep "$TEST_TMP/ingest.err" "$TEST_TMP/b.ndjson:2: " "the bad line is line 2 of b.ndjson"
    assertEquals "rows" 3 "$(rows)"
    assertEquals "dead-letter source" "$TEST_TMP/b.ndjson" "$(dl_field ingest 1 '$.source')"
}

test_bad_lines_on_stdin_are_reported_with_line_numbers() {
    printf '{"kind":"interaction","user_id":"u1","ts":"2026-11-01T00:00:02Z","x":1,"x":2}\n' |
        between "$TEST_TMP/in.ndjson"
    ctxvault-ingest --stdout < "$TEST_TMP/in.ndjson" 2> "$TEST_TMP/ingest.err" |
        ctxvault-encrypt 2> /dev/null | ctxvault-store 2> /dev/null
    assert_grep "$TEST_TMP/ingest.err" ':2: .*duplicate key' "stdin line 2 should be reported"
    assertEquals "rows" 2 "$(rows)"
    assertEquals "dead-letter line" 2 "$(dl_field ingest 1 '$.line')"
}

test_sample_bad_file_stores_exactly_its_valid_lines() {
    # tests/data/README: 56 lines, 28 valid events, 14 blank, 14 bad ones
    pipeline "$DATA/bad.ndjson"
    assert_status ingest 65 "$STATUS_INGEST"
    assert_status encrypt 0 "$STATUS_ENCRYPT"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows" 28 "$(rows)"
    assertEquals "dead-letter records" 14 "$(dl_count ingest)"
    got=$(sed 's/.*"line":\([0-9]*\).*/\1/' "$(deadletter ingest)" | tr '\n' ' ')
    assertEquals "rejected line numbers" "2 6 10 14 18 22 26 30 34 38 42 46 50 54 " "$got"
    for n in 2 6 10 54; do
        assert_grep "$TEST_TMP/ingest.err" "bad.ndjson:$n: " "line $n should be reported"
    done
}

test_generated_bad_stream_stores_every_valid_event() {
    # 1000 valid events; bad lines after events 25, 75, ... (20), and one
    # line over 1 MiB after event 500
    gen "$TEST_TMP/in.ndjson" -n 1000 -s 31 -u 20 --bad
    pipeline "$TEST_TMP/in.ndjson"
    assert_status ingest 65 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
    assertEquals "rows" 1000 "$(rows)"
    assertEquals "distinct ids" 1000 "$(distinct_ids)"
    assertEquals "dead-letter records" 21 "$(dl_count ingest)"
    assertEquals "rejections reported on stderr" 21 \
        "$(grep -c "in.ndjson:[0-9]*: " "$TEST_TMP/ingest.err")"
}

. shunit2
