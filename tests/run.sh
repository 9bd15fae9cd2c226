#!/bin/sh
# run.sh [--label NAME] BINDIR UNIT_TESTS BUILD - run every test: the C unit
# tests, then each shunit2 suite against the programs in BINDIR. Prints one
# line per test and ends with "N passed, N failed" counting all of them.
set -u
label=tests
if [ "${1:-}" = --label ]; then label=$2; shift 2; fi
bindir=$1 unit=$2 build=$3
top=$(cd "$(dirname "$0")/.." && pwd)
case $bindir in /*) ;; *) bindir=$top/$bindir ;; esac
case $unit in /*) ;; *) unit=$top/$unit ;; esac
case $build in /*) ;; *) build=$top/$build ;; esac
export CV_BIN=$bindir CV_BUILD=$build CV_TOP=$top SHUNIT_COLOR=none
results=$(mktemp)
trap 'rm -f "$results"' EXIT

passed=0 failed=0
echo "== $label: unit tests"
out=$("$unit" 2>&1); rc=$?
printf '%s\n' "$out"
p=$(printf '%s\n' "$out" | grep -c '^ok - ')
f=$(printf '%s\n' "$out" | grep -c '^not ok - ')
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "not ok - unit test binary exited $rc without reporting a failure"
    f=1
fi
passed=$((passed + p)) failed=$((failed + f))

for suite in "$top"/tests/shell/test_*.sh; do
    [ -f "$suite" ] || continue
    name=$(basename "$suite" .sh)
    echo "== $label: $name"
    : > "$results"
    t0=$(date +%s)
    CV_RESULTS=$results sh "$suite"; rc=$?
    echo "-- $label: $name took $(($(date +%s) - t0)) s" # the run must stay under 20 min
    p=$(grep -c '^PASS ' "$results")
    f=$(grep -c '^FAIL ' "$results")
    grep '^FAIL ' "$results" | sed 's/^FAIL /not ok - /'
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $name exited $rc without reporting a failure"
        f=1
    fi
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $name ran no test"
        f=1
    fi
    passed=$((passed + p)) failed=$((failed + f))
done

# No test may leave a process behind: any process still running from this
# run's programs and tools (by executable), or from a test's directory (a
# supervisord), fails the run, named by its command line, and is stopped.
leftovers() {
    for _p in /proc/[0-9]*; do
        _exe=$(readlink "$_p/exe" 2> /dev/null) || continue
        _cmd=$(tr '\0' ' ' < "$_p/cmdline" 2> /dev/null)
        case $_exe in "$bindir"/* | "$build"/*) ;; *)
            case $_cmd in *"${TMPDIR:-/tmp}"/cvtest.*) ;; *) continue ;; esac ;;
        esac
        [ "${_p#/proc/}" = $$ ] || echo "${_p#/proc/} $_cmd"
    done
}
left=
for _try in $(seq 50); do # a process killed at a test's end may take a moment
    left=$(leftovers)
    [ -z "$left" ] && break
    sleep 0.2
done
if [ -n "$left" ]; then
    printf '%s\n' "$left" | while read -r pid cmd; do
        echo "not ok - a test left a process behind: $cmd"
        kill -9 "$pid" 2> /dev/null
    done
    failed=$((failed + $(printf '%s\n' "$left" | grep -c .)))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
