#!/bin/sh
# test_docs.sh - the design is in the repository: doc/DESIGN.md has the
# sections the code cites, names a layer for every module of lib/, and
# nothing in the repository points at a design outside it; and
# doc/PROTOCOL.md lists the control ops of store's table, no more.
SUITE=docs
. "$CV_TOP/tests/shell/lib.sh"

DESIGN=$TOP/doc/DESIGN.md

# the repository's text files: git's list when there is one, else the
# tree without build output and instances
repo_files() {
    if git -C "$TOP" rev-parse > /dev/null 2>&1; then
        git -C "$TOP" ls-files | sed "s|^|$TOP/|"
    else
        find "$TOP" \( -name .git -o -name build -o -name var \) -prune \
            -o -type f -print
    fi
}

# every "DESIGN §N" or "DESIGN.md §N" anywhere: one per line, FILE:LINE:REF
design_refs() {
    repo_files | tr '\n' '\0' | xargs -0 grep -InoE 'DESIGN(\.md)? §[0-9]+' \
        2> /dev/null
}

test_design_has_numbered_sections_in_order() {
    assertTrue "doc/DESIGN.md exists" "[ -s '$DESIGN' ]"
    _n=$(grep -cE '^## §[0-9]+ ' "$DESIGN")
    assertTrue "doc/DESIGN.md has numbered sections ($_n)" "[ $_n -ge 8 ]"
    assertEquals "sections are numbered 1, 2, ... in order" \
        "$(seq -s ' ' 1 "$_n")" \
        "$(grep -oE '^## §[0-9]+' "$DESIGN" | sed 's/## §//' | tr '\n' ' ' | sed 's/ $//')"
    assert_grep "$DESIGN" '^## §[0-9]+ Layers' "a section on the layers"
}

test_every_design_reference_names_a_section_that_exists() {
    _refs=$(design_refs)
    assertNotNull "the code cites doc/DESIGN.md" "$_refs"
    _bad=$(printf '%s\n' "$_refs" | while IFS= read -r _r; do
        _sec=${_r##*§}
        grep -qE "^## §$_sec " "$DESIGN" || echo "$_r"
    done)
    assertNull "references to a section doc/DESIGN.md lacks: $_bad" "$_bad"
}

test_nothing_refers_to_a_design_outside_the_repository() {
    _bad=$(repo_files | tr '\n' '\0' | xargs -0 grep -InE \
        '\.\./shared|shared/DESIGN|issue [0-9]+|issue #[0-9]+' 2> /dev/null \
        | grep -v '^[^:]*/test_docs\.sh:')
    assertNull "references outside the repository: $_bad" "$_bad"
}

test_every_lib_folder_and_module_is_in_the_layers_section() {
    _layers=$(sed -n '/^## §[0-9]* Layers/,/^## §/p' "$DESIGN")
    assertNotNull "the layers section" "$_layers"
    for _d in "$TOP"/lib/*/; do
        _l=$(basename "$_d")
        printf '%s\n' "$_layers" | grep -qE "\`$_l/?\`" ||
            fail "lib/$_l/ is not described in doc/DESIGN.md §8"
        grep -qx "$_l" "$TOP/lib/LAYERS" ||
            fail "lib/$_l/ is not in lib/LAYERS"
        for _f in "$_d"*.c "$_d"*.h; do
            [ -e "$_f" ] || continue
            _m=$(basename "$_f")
            _m=${_m%.[ch]}
            printf '%s\n' "$_layers" | grep -qE "\`$_m(\.[ch])?\`" ||
                fail "lib/$_l/$(basename "$_f") is in no layer of doc/DESIGN.md"
        done
    done
}

# the ops doc/PROTOCOL.md's "The ops" lists: "NAME KIND" a line
protocol_ops() {
    sed -n '/^### The ops/,/^##/p' "$TOP/doc/PROTOCOL.md" |
        sed -n 's/^| `\([^`]*\)` | \([a-z]*\) |.*/\1 \2/p'
}

test_protocol_lists_the_ops_of_stores_table_with_their_kinds() {
    protocol_ops > "$TEST_TMP/doc"
    ctxvault-store --ops > "$TEST_TMP/ops"
    assertEquals "ctxvault-store --ops exits 0" 0 $?
    tr '\t' ' ' < "$TEST_TMP/ops" | sort > "$TEST_TMP/table"
    sort "$TEST_TMP/doc" > "$TEST_TMP/listed"
    assertTrue "doc/PROTOCOL.md lists ops under \"### The ops\"" \
        "[ -s '$TEST_TMP/listed' ]"
    assertTrue "ctxvault-store --ops lists ops" "[ -s '$TEST_TMP/table' ]"
    assertNull "ops listed twice in doc/PROTOCOL.md: $(uniq -d "$TEST_TMP/listed")" \
        "$(uniq -d "$TEST_TMP/listed")"
    _undoc=$(comm -23 "$TEST_TMP/table" "$TEST_TMP/listed" | tr '\n' ';')
    assertNull "ops of store's table not in doc/PROTOCOL.md (or of another kind there): $_undoc" \
        "$_undoc"
    _gone=$(comm -13 "$TEST_TMP/table" "$TEST_TMP/listed" | tr '\n' ';')
    assertNull "ops doc/PROTOCOL.md lists that store does not answer (or not with that kind): $_gone" \
        "$_gone"
}

test_readme_links_the_design() {
    assert_grep "$TOP/README.md" 'doc/DESIGN\.md' "README.md names doc/DESIGN.md"
}

. shunit2
