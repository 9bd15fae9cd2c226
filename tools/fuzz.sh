#!/bin/sh
# fuzz.sh BUILD TARGET... - run each libFuzzer target for FUZZ_SECONDS
# (default 75: ten minutes over the eight targets) from its seed corpus
# in fuzz/corpus/TARGET. What it learns
# goes to BUILD/corpus/TARGET (the repository's corpus stays the seeds and
# the regressions); a crash goes to BUILD/crashes/. Prints the executions
# per second of each, and exits 1 when any target crashed.
set -u
build=$1
shift
secs=${FUZZ_SECONDS:-75}
# scratch files on tmpfs where there is one: the file readers fsync
[ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm
mkdir -p "$build/crashes"
failed=0 total=0
printf '%-10s %8s %12s %10s %s\n' target seconds executions "exec/s" result
for t in "$@"; do
    work=$build/corpus/$t
    mkdir -p "$work"
    log=$build/fuzz-$t.log
    # -close_fd_mask=2: the code's own error messages are not the fuzzer's
    # output (sanitizer reports still come through)
    "$build/fuzz-$t" -max_total_time="$secs" -print_final_stats=1 \
        -close_fd_mask=2 -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$build/crashes/$t-" "$work" "fuzz/corpus/$t" \
        > "$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    result=ok
    if [ "$rc" -ne 0 ]; then
        result="CRASH (exit $rc; see $log and $build/crashes)"
        failed=$((failed + 1))
    fi
    total=$((total + secs))
    printf '%-10s %8s %12s %10s %s\n' "$t" "$secs" "${runs:-?}" "${rate:-?}" "$result"
done
echo "fuzzed $# targets for $total s in total, $failed crashed"
[ "$failed" -eq 0 ]
