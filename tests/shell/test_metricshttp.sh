#!/bin/sh
# test_metricshttp.sh - ctxvault-metrics' HTTP side answers only GET and
# HEAD, names its pages on a wrong path, and refuses a listen address or
# a textfile it cannot use with the status its --help gives.
SUITE=metricshttp
. "$CV_TOP/tests/shell/lib.sh"

# http METHOD PATH: the HTTP status of METHOD $URL/PATH; body in $TEST_TMP/body
http() {
    curl -s -o "$TEST_TMP/body" -w '%{http_code}' -X "$1" "$URL$2"
}

test_only_get_and_head_and_a_wrong_path_names_the_pages() {
    metrics_start || return
    assertEquals "GET /metrics" 200 "$(http GET /metrics)"
    assert_grep "$TEST_TMP/body" '^# TYPE ctxvault_'
    assertEquals "HEAD /metrics" 200 "$(curl -s -o /dev/null -w '%{http_code}' -I "$URL/metrics")"
    assertEquals "POST /metrics" 405 "$(http POST /metrics)"
    assert_grep "$TEST_TMP/body" '^only GET$'
    assertEquals "DELETE /health" 405 "$(http DELETE /health)"
    assertEquals "GET /nosuch" 404 "$(http GET /nosuch)"
    assert_grep "$TEST_TMP/body" 'not found: try /metrics, /health or /status'
    # "/" is the status page
    assertEquals "GET /" 200 "$(http GET /)"
    assert_grep "$TEST_TMP/body" '^ctxvault: '
}

test_a_listen_address_it_cannot_use_is_a_configuration_error() {
    conf_set stale_after 1s
    for bad in localhost:8080 127.0.0.1:99999 127.0.0.1 127.0.0.1:http; do
        ctxvault-metrics --listen "$bad" > /dev/null 2> "$TEST_TMP/err"
        assertEquals "--listen $bad" 78 $?
        assert_grep "$TEST_TMP/err" "listen '$bad' is not ADDRESS:PORT with a numeric address"
    done
}

test_a_textfile_it_cannot_write_stops_it_with_73() {
    conf_set stale_after 1s
    conf_set report_interval 200ms
    ctxvault-metrics --once --textfile "$TEST_TMP/no/such/dir/ctxvault.prom" \
        > "$TEST_TMP/out" 2> "$TEST_TMP/err"
    assertEquals "exit status" 73 $?
    assert_grep "$TEST_TMP/err" "cannot write .*no/such/dir/ctxvault.prom"
    assertEquals "nothing printed" 0 "$(nonblank "$TEST_TMP/out")"
    # a directory that is there: written, and --once prints /metrics
    ctxvault-metrics --once --textfile "$TEST_TMP/ctxvault.prom" > "$TEST_TMP/out" 2> "$TEST_TMP/err"
    assertEquals "exit status" 0 $?
    assert_grep "$TEST_TMP/ctxvault.prom" '^# TYPE ctxvault_'
    assert_grep "$TEST_TMP/out" '^# TYPE ctxvault_'
}

. shunit2
