#!/bin/sh
# test_build.sh - what the release build promises of its binaries: PIE,
# full RELRO, stack canaries and fortified libc calls (the Makefile's
# HARDEN flags). Both runs check the plain build's programs in bin/: the
# ASan build leaves the hardening out by design.
SUITE=build
. "$CV_TOP/tests/shell/lib.sh"

test_every_release_program_is_pie_with_full_relro_canaries_and_fortify() {
    for _p in ctxvault ctxvault-ingest ctxvault-encrypt ctxvault-store \
        ctxvault-ttl-sweep ctxvault-scrub ctxvault-backup ctxvault-metrics ctxvault-sync; do
        _b=$TOP/bin/$_p
        assertTrue "$_p is built" "[ -x '$_b' ]"
        assertTrue "$_p is a position-independent executable" \
            "readelf -h '$_b' | grep -q 'DYN (Position-Independent Executable'"
        assertTrue "$_p has a RELRO segment" "readelf -l '$_b' | grep -q GNU_RELRO"
        assertTrue "$_p binds now (full RELRO)" "readelf -d '$_b' | grep -q 'BIND_NOW'"
        assertTrue "$_p has stack canaries" "nm -D '$_b' | grep -q __stack_chk_fail"
        assertTrue "$_p calls fortified libc functions" "nm -D '$_b' | grep -q '_chk@'"
    done
}

. shunit2
