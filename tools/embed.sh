#!/bin/sh
# embed.sh FILE SYMBOL: print a C file defining `const char SYMBOL[]` with
# FILE's bytes, so the shipped defaults and the built-in ones never differ.
set -eu
printf '/* generated from %s by tools/embed.sh; do not edit */\n' "$1"
printf 'const char %s[] =\n' "$2"
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/' "$1"
printf ';\n'
