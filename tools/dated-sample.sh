#!/bin/sh
# dated-sample.sh [FILE] - FILE (default tests/data/sample.ndjson) on
# stdout with every "ts" moved, whole hours at a time, into the current
# hour (the one before in its first three minutes, so none is in the
# future): the sample's events span two minutes of one past day, and
# retention would have run out for most of them. The file itself stays as
# it is, for the tests. Run from the repository's top (make run does).
set -eu

sample=${1:-tests/data/sample.ndjson}
die() { printf 'dated-sample: %s\n' "$*" >&2; exit 1; }
[ -r "$sample" ] || die "cannot read $sample"

stamps=$(grep -o '"ts":"[^"]*"' "$sample" | sed 's/"ts":"//; s/"$//' | sort -u)
[ -n "$stamps" ] || die "no ts in $sample"
first=$(printf '%s\n' "$stamps" | head -n 1)
base=$(date -u -d "$(echo "$first" | cut -c 1-13):00:00Z" +%s 2> /dev/null) ||
    die "cannot read the ts '$first' in $sample"
now=$(date -u +%s)
hour=$((now - now % 3600))
[ $((now - hour)) -ge 180 ] || hour=$((hour - 3600))
shift=$((hour - base))

script=$(mktemp)
trap 'rm -f "$script"' EXIT
for ts in $stamps; do
    s=$(date -u -d "$(echo "$ts" | sed 's/\.[0-9]*//')" +%s 2> /dev/null) ||
        die "cannot read the ts '$ts' in $sample"
    frac=$(echo "$ts" | sed -n 's/.*\(\.[0-9]*\)Z$/\1/p')
    echo "s/\"ts\":\"$ts\"/\"ts\":\"$(date -u -d "@$((s + shift))" +%Y-%m-%dT%H:%M:%S)${frac}Z\"/" >> "$script"
done
sed -f "$script" "$sample"
