#!/bin/sh
# memcheck.sh BUILD BINDIR - valgrind's memcheck over the C unit tests and
# one run of the filter pipeline (ingest | encrypt | store on a fresh
# instance): any invalid access, use of uninitialised memory or definite
# leak fails it (--error-exitcode). Prints one line per run and exits 1
# when any failed.
set -u
build=$1 bindir=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cvmemcheck.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
vg="valgrind --quiet --error-exitcode=99 --leak-check=full
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
    --track-origins=yes --trace-children=yes --child-silent-after-fork=no"
failed=0

run() { # NAME LOG COMMAND...: run under memcheck
    _name=$1 _log=$2
    shift 2
    if "$@" > "$_log.out" 2> "$_log"; then
        echo "ok - memcheck $_name"
    else
        echo "not ok - memcheck $_name (exit $?; valgrind's report in $_log)"
        grep -m 20 '^==[0-9]*==' "$_log" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}

run "unit tests" "$build/memcheck-unit.log" $vg "$build/unit-tests"

export CTXVAULT_HOME=$tmp/home
"$bindir/ctxvault" init > /dev/null
"$build/genevents" -n 2000 -u 20 -s 7 > "$tmp/in.ndjson"
pipe() {
    $vg "$bindir/ctxvault-ingest" --stdout "$tmp/in.ndjson" 2> "$tmp/ingest.err" |
        $vg "$bindir/ctxvault-encrypt" 2> "$tmp/encrypt.err" |
        $vg "$bindir/ctxvault-store" 2> "$tmp/store.err"
    _rc=$?
    cat "$tmp/ingest.err" "$tmp/encrypt.err" "$tmp/store.err" >&2
    [ "$_rc" -eq 0 ] && ! grep -q '^==[0-9]*== [A-Z]' "$tmp/ingest.err" "$tmp/encrypt.err"
}
run "pipeline (ingest | encrypt | store)" "$build/memcheck-pipeline.log" pipe
rows=$(sqlite3 "$CTXVAULT_HOME/data/ctxvault.db" 'SELECT count(*) FROM events')
if [ "$rows" -eq 2000 ]; then
    echo "ok - memcheck pipeline stored all 2000 events"
else
    echo "not ok - memcheck pipeline stored $rows of 2000 events"
    failed=$((failed + 1))
fi
[ "$failed" -eq 0 ]
