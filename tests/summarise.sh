#!/bin/sh
# summarise.sh LOG... - add up the "N passed, N failed" closing lines of the
# test logs into one, list what failed, and fail if anything did.
set -u
passed=0 failed=0
for log in "$@"; do
    grep '^not ok - ' "$log" | sed "s|^|$(basename "$log" .log): |"
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -z "$last" ]; then
        echo "$log: no summary line (the run died)"
        failed=$((failed + 1))
        continue
    fi
    p=${last%% passed*}
    f=${last#*, }; f=${f%% failed}
    passed=$((passed + p)) failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
