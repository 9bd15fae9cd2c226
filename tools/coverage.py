#!/usr/bin/env python3
"""coverage.py SUMMARY.json - line and branch coverage per folder.

Reads gcovr's --json-summary and prints one row per folder of lib/ (in
lib/LAYERS order) and one for bin/, then the total, ending with the line
"coverage: lines N% (X of Y), branches M% (X of Y)". Exits 1 when the
summary holds no file of lib/ or bin/ (a run that measured nothing).
"""
import json
import os
import sys


def pct(covered, total):
    return 100.0 * covered / total if total else 100.0


def folder_of(path):
    parts = path.split("/")
    if parts[0] == "lib" and len(parts) > 2:
        return "lib/" + parts[1]
    if parts[0] == "bin":
        return "bin"
    return None


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: coverage.py SUMMARY.json\n")
        return 2
    try:
        with open(argv[1]) as f:
            summary = json.load(f)
    except (OSError, ValueError) as e:
        sys.stderr.write("coverage: cannot read %s: %s\n" % (argv[1], e))
        return 2

    top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    try:
        with open(os.path.join(top, "lib", "LAYERS")) as f:
            layers = [w for line in f for w in line.split("#")[0].split()]
    except OSError:
        layers = []
    order = ["lib/" + layer for layer in layers] + ["bin"]

    sums = {}
    for entry in summary.get("files", []):
        folder = folder_of(entry["filename"])
        if folder is None:
            continue
        s = sums.setdefault(folder, [0, 0, 0, 0])
        s[0] += entry.get("line_covered", 0)
        s[1] += entry.get("line_total", 0)
        s[2] += entry.get("branch_covered", 0)
        s[3] += entry.get("branch_total", 0)
    if not sums:
        sys.stderr.write("coverage: no file of lib/ or bin/ in %s\n" % argv[1])
        return 1

    order += sorted(k for k in sums if k not in order)
    print("%-14s %8s %15s %9s %15s" % ("folder", "lines", "", "branches", ""))
    total = [0, 0, 0, 0]
    for folder in order:
        if folder not in sums:
            continue
        s = sums[folder]
        total = [a + b for a, b in zip(total, s)]
        print("%-14s %7.1f%% %15s %8.1f%% %15s" % (
            folder, pct(s[0], s[1]), "(%d of %d)" % (s[0], s[1]),
            pct(s[2], s[3]), "(%d of %d)" % (s[2], s[3])))
    print("coverage: lines %.1f%% (%d of %d), branches %.1f%% (%d of %d)" % (
        pct(total[0], total[1]), total[0], total[1],
        pct(total[2], total[3]), total[2], total[3]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
