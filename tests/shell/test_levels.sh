#!/bin/sh
# test_levels.sh - privacy levels as a user sets them in their profile:
# "anonymous" (data aggregated, personal data removed) leaves no
# identifier that links an anonymous user's rows to each other across
# days or to the person: no pseudonym of their email, device or IP, no
# sealed value, the user a pseudonym of the day, times to the hour; and a
# user who turns anonymous has their stored rows made so too.
SUITE=levels
. "$CV_TOP/tests/shell/lib.sh"

T0=2026-11-02T12:00:00Z

# rich EVENT-TS USER [MORE]: an interaction with every kind of identifier
rich() {
    printf '{"kind":"interaction","userId":"%s","timestamp":"%s","type":"click","emailAddress":"%s@example.org","ipAddress":"81.2.69.160","deviceInfo":{"os":"Android 14","deviceId":"dev-%s","deviceName":"%s phone"},"query":"a private query","confidenceScore":0.5%s}\n' \
        "$2" "$1" "$2" "$2" "$2" "${3:-}"
}

# day_users PREFIX: distinct stored users whose pseudonym starts with PREFIX
day_users() {
    sql "SELECT count(DISTINCT user_id) FROM events_v WHERE user_id LIKE '$1%'"
}

test_an_anonymous_users_rows_link_to_nothing() {
    {
        printf '{"kind":"profile","userId":"ann","timestamp":"2026-11-01T00:00:00Z","privacyLevel":"anonymous"}\n'
        rich 2026-11-02T10:17:23.456Z ann
        rich 2026-11-02T11:41:05Z ann
        rich 2026-11-03T09:05:00Z ann
        rich 2026-11-02T10:59:01Z bob
    } > "$TEST_TMP/in.ndjson"
    store_at "$T0" "$TEST_TMP/in.ndjson"
    assertEquals "every event stored" 5 "$(rows)"
    # no identifier of ann survives: no pseudonym, no sealed value
    assertEquals "ann's rows hold no pseudonym or sealed value" 0 \
        "$(sql "SELECT count(*) FROM events_v WHERE user_id LIKE 'anon:%' AND (body LIKE '%hash:%' OR body LIKE '%enc:%')")"
    assertEquals "bob's row keeps its pseudonyms" 1 \
        "$(sql "SELECT count(*) FROM events_v WHERE body LIKE '%\"emailAddress\":\"hash:%' AND user_id NOT LIKE 'anon:%'")"
    # what is not personal stays, for counts and aggregates
    assertEquals "ann's rows keep the device's os" 3 \
        "$(sql "SELECT count(*) FROM events_v WHERE user_id LIKE 'anon:%' AND body LIKE '%\"os\":\"Android 14\"%'")"
    # one pseudonym a day: two days, two users that cannot be joined
    assertEquals "ann on 2 November is one user" 1 "$(day_users anon:20261102:)"
    assertEquals "ann on 3 November is another" 1 "$(day_users anon:20261103:)"
    assertNotEquals "the two days' pseudonyms differ" \
        "$(sql "SELECT user_id FROM events_v WHERE user_id LIKE 'anon:20261102:%' LIMIT 1" | cut -d: -f3)" \
        "$(sql "SELECT user_id FROM events_v WHERE user_id LIKE 'anon:20261103:%' LIMIT 1" | cut -d: -f3)"
    # times to the hour: the row's ts, the body's, and the id's time
    assertEquals "ann's rows are on the hour" 3 \
        "$(sql "SELECT count(*) FROM events_v WHERE user_id LIKE 'anon:%' AND ts % 3600000 = 0")"
    assertEquals "and so is their arrival" 3 \
        "$(sql "SELECT count(*) FROM events_v WHERE user_id LIKE 'anon:%' AND created_at % 3600000 = 0")"
    assert_no_grep "$DB" '10:17:23|11:41:05|ann@example|dev-ann|ann phone' "the file holds no trace of ann's minutes or identifiers"
    # the profile, her settings, stays hers: found by her id, and only it
    ctxvault query --user ann --limit 10 > "$TEST_TMP/q.out" 2> "$TEST_TMP/q.err"
    assertEquals "ann's id finds her profile alone" 1 "$(grep -c . "$TEST_TMP/q.out")"
    assert_grep "$TEST_TMP/q.out" '"privacy_level":"anonymous"' "her profile"
    # a replay of the same events stores nothing new
    store_at "$T0" "$TEST_TMP/in.ndjson"
    assertEquals "a replay adds nothing" 5 "$(rows)"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status "verify ($(head -c 300 "$TEST_TMP/verify.err"))" 0 $?
}

test_turning_anonymous_makes_the_stored_rows_anonymous_too() {
    data_clock
    {
        printf '{"kind":"profile","userId":"cat","timestamp":"2026-11-01T00:00:00Z","privacyLevel":"private"}\n'
        rich 2026-11-01T10:17:23Z cat
        rich 2026-11-02T10:17:23Z cat
        rich 2026-11-02T10:17:23Z dan
    } > "$TEST_TMP/in.ndjson"
    store_at "$T0" "$TEST_TMP/in.ndjson"
    assertEquals "cat's rows under her pseudonym" 3 "$(ctxvault query --user cat --limit 10 | grep -c .)"
    printf '{"kind":"profile","userId":"cat","timestamp":"2026-11-02T11:00:00Z","privacyLevel":"anonymous"}\n' > "$TEST_TMP/p.ndjson"
    store_at "$T0" "$TEST_TMP/p.ndjson"
    assertEquals "cat's id finds her two profiles only" 2 "$(ctxvault query --user cat --limit 10 | grep -c .)"
    assertEquals "her interactions are anonymous now" 2 "$(day_users anon:)"
    assertEquals "and hold no pseudonym or sealed value" 0 \
        "$(sql "SELECT count(*) FROM events_v WHERE user_id LIKE 'anon:%' AND (body LIKE '%hash:%' OR body LIKE '%enc:%')")"
    assertEquals "dan is untouched" 1 "$(ctxvault query --user dan --limit 10 | grep -c .)"
    ctxvault verify > /dev/null 2> "$TEST_TMP/verify.err"
    assert_status "verify ($(head -c 300 "$TEST_TMP/verify.err"))" 0 $?
    assertEquals "on the hour" 0 "$(sql "SELECT count(*) FROM events_v WHERE user_id LIKE 'anon:%' AND ts % 3600000 <> 0")"
}

# An event is stored once whatever its user's level was when it came
# first: sent while the user was anonymous (stored under an anonymised
# id), then sent again after they left that level, it is a duplicate;
# sent before they turned anonymous and again after, too.
test_a_resend_across_a_change_of_level_is_stored_once() {
    printf '{"kind":"profile","userId":"ivy","timestamp":"2026-11-01T00:00:00Z","privacyLevel":"anonymous"}\n' > "$TEST_TMP/p1.ndjson"
    printf '{"kind":"profile","userId":"ivy","timestamp":"2026-11-01T01:00:00Z","privacyLevel":"private"}\n' > "$TEST_TMP/p2.ndjson"
    printf '{"kind":"profile","userId":"ivy","timestamp":"2026-11-01T02:00:00Z","privacyLevel":"anonymous"}\n' > "$TEST_TMP/p3.ndjson"
    { rich 2026-11-02T10:17:23Z ivy; rich 2026-11-02T10:18:00Z ivy ',"id":"ivy-own-id"'; } > "$TEST_TMP/e.ndjson"
    ctxvault-ingest --stdout "$TEST_TMP/e.ndjson" > "$TEST_TMP/e.norm" 2> /dev/null
    store_at "$T0" "$TEST_TMP/p1.ndjson"
    store_at "$T0" "$TEST_TMP/e.norm"
    assertEquals "two anonymised rows" 2 "$(sql "SELECT count(*) FROM events_v WHERE user_id LIKE 'anon:%'")"
    store_at "$T0" "$TEST_TMP/p2.ndjson"
    store_at "$T0" "$TEST_TMP/e.norm"
    assertEquals "sent again after leaving anonymous: nothing new" 4 "$(rows)"
    # and back: the rows stored in between (none) and the resend dedupe
    store_at "$T0" "$TEST_TMP/p3.ndjson"
    store_at "$T0" "$TEST_TMP/e.norm"
    assertEquals "sent again once anonymous again: nothing new" 5 "$(rows)"
    assertEquals "the events, once each" 2 "$(sql "SELECT count(*) FROM events WHERE kind = 'interaction'")"
}

# The members of a privacy policy as applications send them with a
# profile: retentionDays, autoDelete, anonymization, encryption and
# sharingConsent each have their effect.
test_a_profiles_privacy_policy_members_take_effect() {
    {
        printf '%s\n' '{"kind":"profile","userId":"eve","timestamp":"2026-11-01T00:00:00Z","retentionDays":90,"autoDelete":false,"anonymization":false,"encryption":"strong","sharingConsent":["personalisation","analytics"]}'
        printf '%s\n' '{"kind":"profile","userId":"fay","timestamp":"2026-11-01T00:00:00Z","retentionDays":90,"autoDelete":true,"anonymization":true}'
        printf '%s\n' '{"kind":"profile","userId":"gus","timestamp":"2026-11-01T00:00:00Z","encryption":"none"}'
        printf '%s\n' '{"kind":"profile","userId":"hal","timestamp":"2026-11-01T00:00:00Z","privacyLevel":"private","anonymization":true}'
        rich 2026-11-02T10:17:23Z eve
    } > "$TEST_TMP/in.ndjson"
    CTXVAULT_NOW=$T0 ctxvault-ingest --stdout "$TEST_TMP/in.ndjson" > "$TEST_TMP/norm.ndjson" 2> "$TEST_TMP/ingest.err"
    assert_status "ingest with two refused profiles" 65 $?
    assert_grep "$TEST_TMP/ingest.err" 'in.ndjson:3: "encryption": "none" is refused' "encryption none refused, with its line"
    assert_grep "$TEST_TMP/ingest.err" 'in.ndjson:4: "anonymization": true contradicts "privacy_level": "private"' "a contradiction refused"
    store_at "$T0" "$TEST_TMP/norm.ndjson"
    serve_store || return
    ctxvault profile get --user eve > "$TEST_TMP/eve.json" 2> "$TEST_TMP/eve.err"
    assert_status "profile get eve" 0 $?
    # autoDelete false: kept until the user deletes it (each kind's cap)
    assertEquals "eve's retention" forever "$(json_get '$.profile.retention_days' < "$TEST_TMP/eve.json")"
    assertEquals "eve's consents, for callers to honour" '["personalisation","analytics"]' \
        "$(json_get '$.profile.sharing_consent' < "$TEST_TMP/eve.json")"
    ctxvault profile get --user fay > "$TEST_TMP/fay.json" 2> /dev/null
    assertEquals "anonymization true is the anonymous level" anonymous \
        "$(json_get '$.profile.privacy_level' < "$TEST_TMP/fay.json")"
    assertEquals "fay's retention, autoDelete true" 90 "$(json_get '$.profile.retention_days' < "$TEST_TMP/fay.json")"
    kill -TERM "$SERVE_PID"
    wait "$SERVE_PID"
    assertEquals "eve's interaction never expires (autoDelete false)" 1 \
        "$(sql "SELECT count(*) FROM events WHERE kind = 'interaction' AND expires_at IS NULL")"
    assert_grep "$DB" '"sharingConsent":\["personalisation","analytics"\]' "consents are stored readable"
}

# "public": what [public] shares is shown to readers of a public user's
# rows without decryption; a private user's stays sealed; what a public
# user did not share stays sealed too. And no read opens a sealed value
# for a caller who did not ask to decrypt (profile.get did, once).
test_a_public_user_shares_what_the_policy_marks_shareable() {
    data_clock
    for u in pia pat; do
        lvl=public
        [ "$u" = pat ] && lvl=private
        printf '{"kind":"profile","userId":"%s","timestamp":"2026-11-01T00:00:00Z","privacyLevel":"%s","displayName":"%s secret name"}\n' "$u" "$lvl" "$u"
        printf '{"kind":"context","userId":"%s","timestamp":"2026-11-02T10:00:00Z","interestTopics":["cycling","jazz"],"recentSearches":["%s private search"],"userSegment":"casual-user"}\n' "$u" "$u"
        printf '{"kind":"interaction","userId":"%s","timestamp":"2026-11-02T10:05:00Z","type":"click","recommendedContent":[{"title":"Jazz guide"}],"element":"button.%s"}\n' "$u" "$u"
    done > "$TEST_TMP/in.ndjson"
    store_at "$T0" "$TEST_TMP/in.ndjson"
    assert_no_grep "$DB" 'cycling|Jazz guide' "shared values are sealed on disk like everyone's"
    serve_store || return
    api '{"op":"context.load","user":"pia"}'
    assertEquals "pia's interests, shared" '["cycling","jazz"]' "$(reply '$.context.interestTopics')"
    assertEquals "how many values were opened as shared" 1 "$(reply '$.shared')"
    assert_grep_text "$(reply '$.context.recentSearches')" '^enc:' "pia's searches stay sealed"
    api '{"op":"context.load","user":"pat"}'
    assert_grep_text "$(reply '$.context.interestTopics')" '^enc:' "a private user's interests stay sealed"
    assertEquals "nothing shared for a private user" "" "$(reply '$.shared')"
    api '{"op":"interactions.query","user":"pia"}'
    assertEquals "pia's recommendations, shared" "Jazz guide" "$(reply '$.events[0].recommendedContent[0].title')"
    assert_grep_text "$(reply '$.events[0].element')" '^enc:' "what no [public] rule shares stays sealed"
    # profile.get without decrypt: sealed values stay sealed
    api '{"op":"profile.get","user":"pat"}'
    assert_grep_text "$(reply '$.event.displayName')" '^enc:' "profile.get opens nothing it was not asked to"
    api '{"op":"profile.get","user":"pia"}'
    assert_grep_text "$(reply '$.event.displayName')" '^enc:' "a public user's name is not shared"
    kill -TERM "$SERVE_PID"
    wait "$SERVE_PID"
}

# assert_grep_text TEXT ERE MESSAGE
assert_grep_text() {
    printf '%s\n' "$1" | grep -E -q "$2" || fail "$3: $1"
}

. shunit2
