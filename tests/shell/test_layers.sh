#!/bin/sh
# test_layers.sh - lib/ keeps its layers: no module includes a header of a
# higher layer, and no modules include each other round a cycle
# (tools/layers.py, doc/DESIGN.md §8). The checker itself is tried on
# small trees that break each rule, so a checker that passes everything
# fails here.
SUITE=layers
. "$CV_TOP/tests/shell/lib.sh"

CHECK="python3 $TOP/tools/layers.py"

# assert_text TEXT PART: PART is in TEXT, as written
assert_text() {
    case $1 in
    *"$2"*) assertTrue 0 ;;
    *) fail "expected \"$2\" in: $1" ;;
    esac
}

# a tree of two layers, low and high, with a module in each
small_tree() {
    mkdir -p "$1/low" "$1/high"
    printf 'low\nhigh\n' > "$1/LAYERS"
    printf '#include "low/a.h"\n' > "$1/low/a.c"
    : > "$1/low/a.h"
    printf '#include "low/a.h"\n#include "high/b.h"\n' > "$1/high/b.c"
    : > "$1/high/b.h"
}

test_lib_has_no_upward_include_and_no_cycle() {
    _out=$($CHECK "$TOP/lib" 2>&1)
    assertEquals "tools/layers.py on lib/ exits 0; it said: $_out" 0 $?
    assertNull "and says nothing" "$_out"
}

test_every_lib_folder_is_a_listed_layer() {
    for _d in "$TOP"/lib/*/; do
        grep -qx "$(basename "$_d")" "$TOP/lib/LAYERS" ||
            fail "lib/$(basename "$_d") is not in lib/LAYERS"
    done
    assertEquals "lib/ holds only lib/LAYERS besides its folders" "LAYERS" \
        "$(find "$TOP/lib" -maxdepth 1 -type f -printf '%f\n')"
}

test_a_clean_small_tree_passes() {
    small_tree "$TEST_TMP/t"
    _out=$($CHECK "$TEST_TMP/t" 2>&1)
    assertEquals "a tree that keeps the rules: $_out" 0 $?
}

test_an_include_of_a_higher_layer_fails_naming_the_file_and_line() {
    small_tree "$TEST_TMP/t"
    printf '#include "low/a.h"\n#include "high/b.h"\n' > "$TEST_TMP/t/low/a.c"
    _out=$($CHECK "$TEST_TMP/t" 2>&1)
    assertEquals "exit status" 1 $?
    assert_text "$_out" "t/low/a.c:2: includes high/b.h, of a higher layer"
}

test_a_cycle_inside_one_layer_fails_naming_each_step() {
    small_tree "$TEST_TMP/t"
    printf '#include "high/c.h"\n' > "$TEST_TMP/t/high/b.h"
    printf '#include "high/d.h"\n' > "$TEST_TMP/t/high/c.c"
    : > "$TEST_TMP/t/high/c.h"
    printf '#include "high/b.h"\n' > "$TEST_TMP/t/high/d.c"
    : > "$TEST_TMP/t/high/d.h"
    _out=$($CHECK "$TEST_TMP/t" 2>&1)
    assertEquals "exit status" 1 $?
    assert_text "$_out" "include cycle: high/b -> high/c (" 
    assert_text "$_out" "t/high/b.h:1) -> high/d ("
    assert_text "$_out" "t/high/c.c:1) -> high/b ("
    assert_text "$_out" "t/high/d.c:1)"
}

test_a_folder_missing_from_the_layer_list_fails() {
    small_tree "$TEST_TMP/t"
    mkdir "$TEST_TMP/t/extra"
    : > "$TEST_TMP/t/extra/e.c"
    _out=$($CHECK "$TEST_TMP/t" 2>&1)
    assertEquals "exit status" 1 $?
    assert_text "$_out" "t/extra: a folder that lib/LAYERS does not list"
}

test_an_include_without_its_layer_fails() {
    small_tree "$TEST_TMP/t"
    printf '#include "b.h"\n' > "$TEST_TMP/t/low/a.c"
    _out=$($CHECK "$TEST_TMP/t" 2>&1)
    assertEquals "exit status" 1 $?
    assert_text "$_out" 't/low/a.c:1: includes "b.h" without its layer'
}

. shunit2
