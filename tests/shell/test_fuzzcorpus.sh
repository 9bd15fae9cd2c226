#!/bin/sh
# test_fuzzcorpus.sh - each fuzz target (fuzz/) run once over its corpus:
# the seeds and every input a fuzzer found to crash, kept as regressions.
# The targets are the libFuzzer ones linked with fuzz/replay.c, so they run
# in this build (plain or ASan+UBSan) without clang.
SUITE=fuzzcorpus
. "$CV_TOP/tests/shell/lib.sh"

# replay TARGET: run it; fail on a nonzero exit or a sanitizer's report
replay() {
    _corpus=$TOP/fuzz/corpus/$1
    assertTrue "fuzz/corpus/$1 has inputs" "[ -n \"\$(ls '$_corpus')\" ]"
    "$CV_BUILD/fuzz-replay-$1" "$_corpus" > "$TEST_TMP/replay.out" 2> "$TEST_TMP/replay.err"
    assert_status "fuzz-replay-$1" 0 $?
    assertEquals "inputs run" "$(ls "$_corpus" | wc -l) inputs run" "$(cat "$TEST_TMP/replay.out")"
    assertFalse "a sanitizer reported: $(grep -m 3 -E 'Sanitizer|runtime error' "$TEST_TMP/replay.err")" \
        "grep -q -E 'Sanitizer|runtime error' '$TEST_TMP/replay.err'"
}

test_the_event_validator_takes_its_corpus() { replay event; }
test_the_field_policy_engine_takes_its_corpus() { replay policy; }
test_the_envelope_decoder_takes_its_corpus() { replay envelope; }
test_the_config_and_policy_loaders_take_their_corpus() { replay config; }
test_the_control_request_parser_takes_its_corpus() { replay request; }
test_the_spool_reader_takes_damaged_spools() { replay spool; }
test_the_journal_reader_takes_damaged_journals() { replay journal; }
test_the_backup_reader_refuses_altered_and_truncated_backups() { replay backup; }

. shunit2
