#!/bin/sh
# recover.sh EXPECT STATE - the check of tests/shell/test_powercut_cases.sh
# on one post-crash state (powercut.py explore runs it): recover the
# instance in STATE as a restart would, then check it against what was
# acknowledged before the cut. Exit 0 when it holds; else say why on
# stdout (with the cut, the mode and the seed) and exit 1.
#
# EXPECT (outside the watched directory) says what must hold after N
# acknowledged steps, N = POWERCUT_MARKS (explore sets it):
#   sent          every id that may be stored (one a line, sorted)
#   need.N        ids that must be there, each once, after step N (sorted)
#   absent.N      ids that must be gone after step N (sorted)
#   restore       when it exists: `ctxvault-backup restore` must work on
#                 the recovered state and give the same ids back (its
#                 report in $W/restore.out)
#   redo.N        when it exists: sourced after the restart, with S, N, W
#                 ($W/ids: the ids then) and fail(): step N+1 was not
#                 acknowledged, so it is done again, as an operator would
#   hook          when it exists: sourced last, with S, N, W and fail()
#   lost          appended: the acknowledged ids a state lacked
# The programs come from PATH; CTXVAULT_NOW is the clock of the run.
set -u
E=$1 S=$2
N=${POWERCUT_MARKS:-0}
CTXVAULT_HOME=$S
export CTXVAULT_HOME
W=$(mktemp -d "${TMPDIR:-/tmp}/pcrecover.XXXXXX")
trap 'rm -rf "$W"' EXIT

fail() {
    echo "cut ${POWERCUT_CUT:-?} (${POWERCUT_MODE:-?}, step $N, POWERCUT_SEED=${POWERCUT_SEED:-?}): $*"
    exit 1
}

# ids: the ids the database holds now, sorted, into $W/ids; each once
ids() {
    sqlite3 "file:$S/data/ctxvault.db?mode=ro" 'SELECT id FROM events' > "$W/ids.raw" 2> "$W/sqlite.err" ||
        fail "cannot read the database: $(cat "$W/sqlite.err")"
    sort "$W/ids.raw" > "$W/ids"
    _dup=$(uniq -d "$W/ids" | head -n 3 | tr '\n' ' ')
    [ -z "$_dup" ] || fail "$1: ids stored twice: $_dup"
}

# check_ids WHEN: every acknowledged id there, none that must be gone,
# none that was never sent
check_ids() {
    ids "$1"
    if [ -f "$E/need.$N" ]; then
        comm -23 "$E/need.$N" "$W/ids" > "$W/missing"
        if [ -s "$W/missing" ]; then
            cat "$W/missing" >> "$E/lost"
            fail "$1: $(wc -l < "$W/missing") acknowledged events missing of $(wc -l < "$E/need.$N") (e.g. $(head -n 1 "$W/missing")); $(wc -l < "$W/ids") rows"
        fi
    fi
    if [ -f "$E/absent.$N" ]; then
        _back=$(comm -12 "$E/absent.$N" "$W/ids" | wc -l)
        [ "$_back" -eq 0 ] || fail "$1: $_back rows that were acknowledged as gone are back"
    fi
    _odd=$(comm -23 "$W/ids" "$E/sent" | wc -l)
    [ "$_odd" -eq 0 ] || fail "$1: $_odd rows never sent"
}

# verify: integrity, every row's keyed checksum, every sealed field opens
# (a data key or keyring version lost makes a field unreadable), the audit
# chain
check_verify() {
    ctxvault verify > "$W/verify.out" 2>&1 || fail "$1: ctxvault verify failed: $(tail -c 600 "$W/verify.out")"
}

# the restart: store opens the database (WAL recovery, quick_check, the
# journal's batches the database lacks) and exits on its empty input
ctxvault-store < /dev/null > "$W/store.out" 2> "$W/store.err" ||
    fail "the restart of store failed: $(tail -c 800 "$W/store.err")"
if [ -f "$E/redo.$N" ]; then
    ids "before the step is done again"
    . "$E/redo.$N"
fi
check_verify "after the restart"
check_ids "after the restart"

if [ -f "$E/restore" ]; then
    cp "$W/ids" "$W/ids.before"
    ctxvault-backup restore > "$W/restore.out" 2> "$W/restore.err" ||
        fail "ctxvault-backup restore failed: $(tail -c 800 "$W/restore.err")"
    check_ids "after a restore"
    cmp -s "$W/ids" "$W/ids.before" ||
        fail "a restore changed the ids: $(diff "$W/ids.before" "$W/ids" | head -n 4 | tr '\n' ' ')"
fi

if [ -f "$E/hook" ]; then
    . "$E/hook"
fi
exit 0
