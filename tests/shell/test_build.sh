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

# Objects depend on the headers they include, as the compiler lists them:
# a header touched rebuilds its includers, not the whole library. (A dry
# run over the plain build, which make check has just made.)
test_a_touched_header_rebuilds_only_its_includers() {
    # -o Makefile: a Makefile edited since the last build (every object
    # depends on it) must not make this look like a rebuild of everything
    _out=$(make -C "$TOP" -s -n -o Makefile -W lib/base/backoff.h build/plain/libctxvault.a 2>&1)
    assertContains "backoff.c includes backoff.h: $_out" "$_out" "lib/base/backoff.c"
    assertContains "syncd.c includes backoff.h: $_out" "$_out" "lib/sync/syncd.c"
    assertNotContains "db.c does not include backoff.h: $_out" "$_out" "lib/storage/db.c"
}

# make check installs nothing: make deps does, and .ci/run calls it first.
test_make_check_installs_no_packages() {
    _out=$(make -C "$TOP" -n check 2>&1)
    assertContains "a dry run of make check lists its builds" "$_out" "programs"
    assertNotContains "make check calls apt-get: $_out" "$_out" "apt-get"
    assertNotContains "make check calls install-debs" "$_out" "install-debs"
    assertTrue ".ci/run calls make deps before make check" \
        "grep -q '^make deps' '$TOP/.ci/run'"
}

. shunit2
