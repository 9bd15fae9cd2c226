# lib.sh - shared set-up for the shunit2 suites; sourced by each suite,
# which then sources shunit2. Every test gets a fresh instance in $HOME_DIR.
#
# shunit2 finds tests by grepping the suite file itself, so tests stay in
# the suites; only helpers live here.

: "${CV_BIN:?run through tests/run.sh}"
PATH=$CV_BIN:$PATH
export PATH
TOP=$CV_TOP
GEN=$CV_BUILD/genevents
DATA=$TOP/tests/data

setUp() {
    unset CTXVAULT_NOW # a test that pinned the clock (data_clock) ends with it
    TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/cvtest.XXXXXX")
    HOME_DIR=$TEST_TMP/home
    export CTXVAULT_HOME=$HOME_DIR
    ctxvault init > /dev/null || fail "ctxvault init failed"
    DB=$HOME_DIR/data/ctxvault.db
    # no HTTP port for ctxvault-metrics unless a test asks for one: suites
    # run side by side, and a fixed port would be shared
    sed -i 's|^listen .*|listen = 127.0.0.1:0|' "$HOME_DIR/ctxvault.conf"
    # a suite's own set-up last (suite_setUp, when the suite has one)
    if command -v suite_setUp > /dev/null 2>&1; then
        suite_setUp
    fi
}

tearDown() {
    # a coverage run stops the test's programs with SIGTERM first: one
    # killed by SIGKILL never writes its gcov counts
    if [ -n "${CV_STOP_GRACE:-}" ]; then
        bg_stop_gently
    fi
    # a suite's own clean-up first (suite_tearDown, when the suite has one:
    # test_supervised.sh stops supervisord and every program it started)
    if command -v suite_tearDown > /dev/null 2>&1; then
        suite_tearDown
    fi
    # shunit2 2.1.8 calls tearDown once more from its exit trap, after the
    # last test, with no test running: record nothing for that call
    if [ -z "${_shunit_test_:-}" ]; then
        bg_cleanup
        return 0
    fi
    key_leaks
    # record the test's outcome for tests/run.sh (per test, not per assert)
    if [ "${__shunit_testSuccess:-0}" -eq "${SHUNIT_TRUE:-0}" ]; then
        echo "PASS ${SUITE:-suite} ${_shunit_test_:-?}" >> "${CV_RESULTS:-/dev/null}"
    else
        echo "FAIL ${SUITE:-suite} ${_shunit_test_:-?}" >> "${CV_RESULTS:-/dev/null}"
    fi
    bg_cleanup
    rm -rf "$TEST_TMP"
}

# free_port: a TCP port nobody listens on now (python3 is a test
# dependency: make deps installs it)
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# key_leaks: after every test, each key of each keyring it made (base64
# and hex) must be in no file the test left (stderr logs, stdout captures,
# databases, backups, spools, dead letters) but the keyrings themselves
# (and files a test names keyring* because it keeps keys on purpose);
# so a whole run's logs are searched for every key
key_leaks() {
    _kl=$TEST_TMP.keys
    : > "$_kl"
    for _kr in $(find "$TEST_TMP" -type f -name 'keyring*' 2> /dev/null); do
        for _k in $(grep -o '"\(key\|id_key\)":"[^"]*"' "$_kr" | sed 's/.*":"//; s/"$//'); do
            printf '%s\n' "$_k" >> "$_kl"
            printf '%s' "$_k" | base64 -d 2> /dev/null | od -An -tx1 | tr -d ' \n' >> "$_kl"
            echo >> "$_kl"
        done
    done
    if [ -s "$_kl" ]; then
        _hits=$(grep -r -a -i -l -F -f "$_kl" "$TEST_TMP" 2> /dev/null | grep -v '/keyring[^/]*$')
        [ -z "$_hits" ] || fail "key material found in: $_hits"
    fi
    rm -f "$_kl"
}

# pipeline FILE...: ingest | encrypt | store; sets STATUS_INGEST/_ENCRYPT/_STORE
pipeline() {
    { { { ctxvault-ingest --stdout "$@" 2> "$TEST_TMP/ingest.err"; echo $? > "$TEST_TMP/ingest.rc"; } |
        { ctxvault-encrypt 2> "$TEST_TMP/encrypt.err"; echo $? > "$TEST_TMP/encrypt.rc"; } |
        { ctxvault-store 2> "$TEST_TMP/store.err"; echo $? > "$TEST_TMP/store.rc"; }; } }
    STATUS_INGEST=$(cat "$TEST_TMP/ingest.rc")
    STATUS_ENCRYPT=$(cat "$TEST_TMP/encrypt.rc")
    STATUS_STORE=$(cat "$TEST_TMP/store.rc")
}

# store_at TIME FILE: the filter pipeline with the clock at TIME
# (CTXVAULT_NOW, honoured by the programs for tests only)
store_at() {
    _sa_was=${CTXVAULT_NOW:-}
    CTXVAULT_NOW=$1
    export CTXVAULT_NOW
    pipeline "$2"
    # back to the test's clock (data_clock), or the real one
    if [ -n "$_sa_was" ]; then CTXVAULT_NOW=$_sa_was; else unset CTXVAULT_NOW; fi
    assert_status ingest 0 "$STATUS_INGEST"
    assert_status store 0 "$STATUS_STORE"
}

# rows [WHERE]: count rows in the events table
rows() {
    sqlite3 "$DB" "SELECT COUNT(*) FROM events_v ${1:+WHERE $1}"
}

# ---- helpers shared by the suites ---------------------------------------

# distinct_ids: count the distinct ids in the events table
distinct_ids() {
    sqlite3 "$DB" "SELECT COUNT(DISTINCT id) FROM events"
}

# sql QUERY: run a query on the instance's database
sql() {
    sqlite3 "$DB" "$1"
}

# gen FILE GENEVENTS-ARGS...: generated events into FILE
gen() {
    _gen_out=$1
    shift
    "$GEN" "$@" > "$_gen_out" || fail "genevents $* failed"
}

# nonblank FILE: the number of lines of FILE that are not blank
nonblank() {
    grep -a -c -v '^[[:space:]]*$' "$1"
}

# flip_byte FILE OFFSET: change the byte at OFFSET (its bits inverted), so
# the file is damaged whatever that byte was (writing a fixed 'Z' left it
# whole once in 256 runs, where the byte was a 'Z' already)
flip_byte() {
    python3 -c 'import sys
f = open(sys.argv[1], "r+b")
f.seek(int(sys.argv[2]))
b = f.read(1)
f.seek(int(sys.argv[2]))
f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}

# conf_set KEY VALUE: change a setting (by its unique key) in the instance's
# ctxvault.conf, which `ctxvault init` writes with every setting present
conf_set() {
    if ! grep -q "^$1[[:space:]]*=" "$HOME_DIR/ctxvault.conf"; then
        fail "no setting '$1' in $HOME_DIR/ctxvault.conf"
        return 1
    fi
    sed -i "s|^$1[[:space:]]*=.*|$1 = $2|" "$HOME_DIR/ctxvault.conf"
}

# json_get PATH: read one JSON document on stdin, print the value at the
# sqlite3 JSON path (e.g. '$.line'); any size, no jq needed
json_get() {
    json_q "json_extract(j, '$1')"
}

# json_q EXPR: read one JSON document on stdin as the column j, print the
# value of the SQL expression EXPR (e.g. "json_array_length(j)")
json_q() {
    { printf "WITH t(j) AS (SELECT '"; sed "s/'/''/g"; printf "') SELECT %s FROM t;\n" "$1"; } |
        sqlite3 :memory:
}

# deadletter PROGRAM: the path of PROGRAM's dead-letter file
deadletter() {
    echo "$HOME_DIR/deadletter/$1.ndjson"
}

# dl_count PROGRAM: the number of records in PROGRAM's dead-letter file
dl_count() {
    if [ -f "$(deadletter "$1")" ]; then
        grep -a -c . "$(deadletter "$1")"
    else
        echo 0
    fi
}

# dl_field PROGRAM N PATH: a field of the Nth record of PROGRAM's dead letters
dl_field() {
    sed -n "$2p" "$(deadletter "$1")" | json_get "$3"
}

# event SECOND [USER] [KIND] [EXTRA]: one valid event line, at second SECOND
# of 2026-11-01T00:00, with optional extra members (',"a":1')
event() {
    printf '{"kind":"%s","user_id":"%s","ts":"2026-11-01T00:%02d:%02dZ","type":"click"%s}\n' \
        "${3:-interaction}" "${2:-user-test}" $(($1 / 60)) $(($1 % 60)) "${4:-}"
}

# data_clock [TIME]: the clock of every program of the test at TIME
# (default 2026-11-02, the day after the fixed dates of tests/data, event
# and genevents): reads never return a row past its expiry, so data stored
# with those dates must be read within its retention whatever day the
# suite runs (an ephemeral user's, within the hour)
data_clock() {
    CTXVAULT_NOW=${1:-2026-11-02T00:00:00Z}
    export CTXVAULT_NOW
}

# wait_until SECONDS COMMAND...: retry COMMAND every 0.1 s until it succeeds.
# SECONDS is what an idle machine needs; the deadline is CV_WAIT_SCALE (3)
# times that, so a machine busy with other jobs does not fail a test that
# only waits (a condition met returns at once, so this costs nothing then)
wait_until() {
    _wu_left=$(($1 * 10 * ${CV_WAIT_SCALE:-3}))
    shift
    while [ "$_wu_left" -gt 0 ]; do
        "$@" && return 0
        sleep 0.1
        _wu_left=$((_wu_left - 1))
    done
    return 1
}

# rows_at_least N: true when the events table holds at least N rows
rows_at_least() {
    _ral=$(sqlite3 "$DB" "SELECT COUNT(*) FROM events" 2> /dev/null) || return 1
    [ "${_ral:-0}" -ge "$1" ]
}

# Background processes that tearDown must not leave behind.
BG_PIDS=
bg_track() {
    BG_PIDS="$BG_PIDS $1"
}
bg_cleanup() {
    exec 8>&-
    for _pid in $BG_PIDS; do
        kill -9 "$_pid" 2> /dev/null
    done
    for _pid in $BG_PIDS; do
        wait "$_pid" 2> /dev/null
    done
    BG_PIDS=
    return 0
}

# bg_stop_gently: SIGTERM to the background processes and supervisord
# sessions of the test, then wait up to CV_STOP_GRACE seconds for them to
# exit (bg_cleanup and sv_kill_all SIGKILL any left)
bg_stop_gently() {
    exec 8>&-
    for _pid in $BG_PIDS; do
        kill -TERM "$_pid" 2> /dev/null
    done
    for _sid in $SV_SIDS; do
        case $_sid in '' | *[!0-9]* | 0 | 1) continue ;; esac
        [ "$_sid" = "$(ps -o sid= -p $$ | tr -d ' ')" ] && continue
        pkill -TERM -s "$_sid" 2> /dev/null
    done
    wait_until "$CV_STOP_GRACE" bg_gone
}

# bg_gone: no background process or supervisord session of the test runs
# (a zombie, dead and not yet reaped, does not count)
bg_gone() {
    for _pid in $BG_PIDS; do
        [ -n "$(ps -o stat= -p "$_pid" 2> /dev/null | grep -v '^ *Z')" ] && return 1
    done
    for _sid in $SV_SIDS; do
        case $_sid in '' | *[!0-9]* | 0 | 1) continue ;; esac
        [ "$_sid" = "$(ps -o sid= -p $$ | tr -d ' ')" ] && continue
        sv_session_alive "$_sid" && return 1
    done
    return 0
}

# serve_store: ctxvault-store --serve in the background, once its control
# socket is there; sets SERVE_PID; its stderr goes to $TEST_TMP/serve.err
serve_store() {
    ctxvault-store --serve 2> "$TEST_TMP/serve.err" &
    SERVE_PID=$!
    bg_track "$SERVE_PID"
    wait_until 10 test -S "$HOME_DIR/run/control.sock" || {
        fail "store did not start: $(cat "$TEST_TMP/serve.err")"
        return 1
    }
}

# services_start: store --serve and encrypt --serve in the background, with
# their pids in STORE_PID and ENCRYPT_PID; waits until store is ready
services_start() {
    ctxvault-store --serve 2> "$TEST_TMP/store.err" &
    STORE_PID=$!
    bg_track "$STORE_PID"
    ctxvault-encrypt --serve 2> "$TEST_TMP/encrypt.err" &
    ENCRYPT_PID=$!
    bg_track "$ENCRYPT_PID"
    wait_until 10 grep -q 'ready in' "$TEST_TMP/store.err" ||
        fail "store --serve did not get ready: $(cat "$TEST_TMP/store.err")"
    wait_until 10 grep -q 'serving' "$TEST_TMP/encrypt.err" ||
        fail "encrypt --serve did not start: $(cat "$TEST_TMP/encrypt.err")"
}

# store_start [ARGS...]: run ctxvault-store in the background reading a FIFO
# that the test writes through fd 8 (store_feed FILE...), so the store stays
# up until store_close (end of input) or a signal. Sets STORE_PID; its
# stderr goes to $TEST_TMP/bgstore.err. Start nothing else in the background
# while fd 8 is open: it would inherit the FIFO and hold the input open.
store_start() {
    rm -f "$TEST_TMP/store.fifo"
    mkfifo "$TEST_TMP/store.fifo" || { fail "mkfifo failed"; return 1; }
    ctxvault-store "$@" < "$TEST_TMP/store.fifo" 2> "$TEST_TMP/bgstore.err" &
    STORE_PID=$!
    bg_track "$STORE_PID"
    exec 8> "$TEST_TMP/store.fifo"
}
store_feed() {
    cat "$@" >&8
}
# store_close: end the store's input and wait for it; sets STATUS_BGSTORE
store_close() {
    exec 8>&-
    store_wait
}
# store_wait: wait for the background store; sets STATUS_BGSTORE
store_wait() {
    wait "$STORE_PID" 2> /dev/null
    STATUS_BGSTORE=$?
}

# protect FILE OUT: ingest --stdout | encrypt, the events ready for store
protect() {
    ctxvault-ingest --stdout "$1" 2> "$TEST_TMP/ingest.err" |
        ctxvault-encrypt > "$2" 2> "$TEST_TMP/encrypt.err"
}

# assert_status NAME EXPECTED ACTUAL: an exit status, with the stage's stderr
# in the failure message when there is one
assert_status() {
    _as_err=
    [ -f "$TEST_TMP/$1.err" ] && _as_err=" (stderr: $(head -c 600 "$TEST_TMP/$1.err"))"
    assertEquals "exit status of $1$_as_err" "$2" "$3"
}

# assert_grep FILE ERE [MESSAGE]: FILE has a line matching ERE (ignoring case)
assert_grep() {
    if grep -a -q -i -E -- "$2" "$1"; then
        assertTrue 0
    else
        fail "${3:-$1 should match /$2/}; it holds: $(head -c 800 "$1" 2> /dev/null)"
    fi
}

# assert_no_grep FILE ERE [MESSAGE]: no line of FILE matches ERE
assert_no_grep() {
    if grep -a -q -i -E -- "$2" "$1"; then
        fail "${3:-$1 should not match /$2/}: $(grep -a -i -E -- "$2" "$1" | head -c 400)"
    else
        assertTrue 0
    fi
}

# ---- supervisord, for the suites that run the pipeline under it ----

SUPERVISE=$TOP/tools/supervise.sh

# The sessions of the supervisords this test started: supervise.sh runs
# supervisord as a session leader, and the programs it starts (each in a
# process group of its own) stay in its session, even once orphaned.
SV_SIDS=

# sv_start: supervisord for the test's instance; waits until every program
# is RUNNING
sv_start() {
    SUPERVISE_TIMEOUT=30 sh "$SUPERVISE" start > "$TEST_TMP/supervise.out" 2>&1
    _sv_rc=$?
    _sv_pid=$(cat "$HOME_DIR/run/supervisord.pid" 2> /dev/null)
    case $_sv_pid in '' | *[!0-9]*) ;; *) SV_SIDS="$SV_SIDS $_sv_pid" ;; esac
    if [ "$_sv_rc" -ne 0 ]; then
        fail "supervise.sh start failed: $(tail -c 2000 "$TEST_TMP/supervise.out")"
        return 1
    fi
}

# sv_session_alive SID: a process of session SID still runs (a zombie, dead
# and waiting for whatever adopted it to reap it, does not count)
sv_session_alive() {
    [ -n "$(ps -o stat= -s "$1" 2> /dev/null | grep -v '^ *Z')" ]
}

# sv_kill_all: SIGKILL to every process of every session this test started
# (supervisord and each program: the process group kill of the tests, and
# tearDown's clean-up); waits until they are gone
sv_kill_all() {
    for _sid in $SV_SIDS; do
        # never session 0 or 1, never our own
        case $_sid in '' | *[!0-9]* | 0 | 1) continue ;; esac
        [ "$_sid" = "$(ps -o sid= -p $$ | tr -d ' ')" ] && continue
        pkill -9 -s "$_sid" 2> /dev/null
        wait_until 10 eval "! sv_session_alive $_sid" ||
            echo "  (processes of session $_sid survived SIGKILL)" >&2
    done
    SV_SIDS=
}

# ---- ctxvault-metrics and the control socket -----------------------------

# metrics_start [ARGS...]: ctxvault-metrics on a free port, reports every
# 200 ms, silent services stale after 1 s; URL is its base
metrics_start() {
    conf_set report_interval 200ms
    conf_set stale_after 1s
    PORT=$(free_port)
    URL=http://127.0.0.1:$PORT
    conf_set listen "127.0.0.1:$PORT" # where `ctxvault status` looks
    ctxvault-metrics "$@" 2> "$TEST_TMP/metrics.err" &
    METRICS_PID=$!
    bg_track "$METRICS_PID"
    wait_until 10 curl -s -o /dev/null "$URL/status" ||
        fail "ctxvault-metrics did not start: $(cat "$TEST_TMP/metrics.err")"
}

# sample NAME [LABELS-REGEX]: the value of the first sample of NAME in
# /metrics whose labels match
sample() {
    curl -s "$URL/metrics" > "$TEST_TMP/metrics.txt"
    grep "^$1{" "$TEST_TMP/metrics.txt" | grep -E -- "${2:-.}" | head -n 1 | sed 's/.* //'
}

# metric_sum NAME LABELS-REGEX: the sum of the samples of NAME whose labels
# match, from ctxvault-metrics at $URL
metric_sum() {
    curl -s "$URL/metrics" | grep "^$1{" | grep -E -- "$2" |
        awk '{ s += $NF } END { print s + 0 }'
}

# api JSON: ctxvault api; the reply in REPLY, the status in STATUS_API
api() {
    REPLY=$(ctxvault api "$1" 2> "$TEST_TMP/api.err")
    STATUS_API=$?
}

# reply PATH: a member of the last reply
reply() {
    echo "$REPLY" | json_get "$1"
}
