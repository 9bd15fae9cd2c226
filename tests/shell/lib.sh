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
    TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/cvtest.XXXXXX")
    HOME_DIR=$TEST_TMP/home
    export CTXVAULT_HOME=$HOME_DIR
    ctxvault init > /dev/null || fail "ctxvault init failed"
    DB=$HOME_DIR/data/ctxvault.db
}

tearDown() {
    # record the test's outcome for tests/run.sh (per test, not per assert)
    if [ "${__shunit_testSuccess:-0}" -eq "${SHUNIT_TRUE:-0}" ]; then
        echo "PASS ${SUITE:-suite} ${_shunit_test_:-?}" >> "${CV_RESULTS:-/dev/null}"
    else
        echo "FAIL ${SUITE:-suite} ${_shunit_test_:-?}" >> "${CV_RESULTS:-/dev/null}"
    fi
    rm -rf "$TEST_TMP"
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

# rows [WHERE]: count rows in the events table
rows() {
    sqlite3 "$DB" "SELECT COUNT(*) FROM events ${1:+WHERE $1}"
}
