#!/usr/bin/env bash
# Generates benchmark inputs.
#
#   gen.sh lattice N DIR   DIR/milo.toml, DIR/Makefile and DIR/build.ninja: N phases running
#                          `true` in layers of 10, each phase depending on the whole previous
#                          layer (all phases parallel = true for milo; phony targets for make,
#                          output-less rules for ninja, so every run does all the work).
#   gen.sh flat N FILE     a milo.toml with N independent-ish phases for `milo check`
#                          (every phase after the first depends on the one before it and on
#                          the first).
#   gen.sh seq LINES FILE  a milo.toml with one phase printing LINES lines (`seq LINES`).
set -euo pipefail

WIDTH=10

lattice() {
    local n=$1 dir=$2
    mkdir -p "$dir"
    awk -v n="$n" -v w="$WIDTH" -v dir="$dir" 'BEGIN {
        toml = dir "/milo.toml"; mk = dir "/Makefile"; nj = dir "/build.ninja"
        printf "name = \"lattice-%d\"\n\n[defaults]\nparallel = true\n", n > toml
        printf ".PHONY: all\n.SUFFIXES:\n" > mk
        printf "rule t\n  command = true\n\n" > nj
        for (i = 0; i < n; i++) {
            layer = int(i / w); col = i % w
            name = "l" layer "c" col
            deps = ""; tdeps = ""; ndeps = ""
            if (layer > 0) {
                prev = layer - 1
                last = (prev + 1) * w < n ? w : n - prev * w
                for (c = 0; c < w; c++) {
                    d = "l" prev "c" c
                    deps = deps (c ? ", " : "") "\"" d "\""
                    tdeps = tdeps " " d
                    ndeps = ndeps " " d
                }
            }
            printf "\n[[phase]]\nname = \"%s\"\nrun = \"true\"\n", name > toml
            if (layer > 0) printf "depends_on = [%s]\n", deps > toml
            printf ".PHONY: %s\n%s:%s\n\t@true\n", name, name, tdeps > mk
            printf "build %s: t%s\n", name, ndeps > nj
        }
        # The goal: the last layer (everything else is below it).
        lastlayer = int((n - 1) / w)
        all = ""
        for (c = 0; c < w && lastlayer * w + c < n; c++) all = all " l" lastlayer "c" c
        printf "all:%s\n", all > mk
        printf "\nbuild all: phony%s\ndefault all\n", all > nj
    }'
    # make: `all` must be the first (default) goal.
    { echo "all:"; cat "$dir/Makefile"; } > "$dir/Makefile.tmp" && mv "$dir/Makefile.tmp" "$dir/Makefile"
}

flat() {
    local n=$1 file=$2
    awk -v n="$n" 'BEGIN {
        printf "name = \"check-%d\"\n\n[defaults]\nparallel = true\ntimeout = \"10m\"\n", n
        for (i = 0; i < n; i++) {
            printf "\n[[phase]]\nname = \"p%d\"\ndescription = \"phase number %d\"\nrun = \"echo phase %d\"\n", i, i, i
            if (i > 1) printf "depends_on = [\"p0\", \"p%d\"]\n", i - 1
            else if (i == 1) printf "depends_on = [\"p0\"]\n"
        }
    }' > "$file"
}

seqfile() {
    local lines=$1 file=$2
    printf 'name = "output"\n\n[[phase]]\nname = "print"\nrun = "seq %d"\n' "$lines" > "$file"
}

case "${1:-}" in
    lattice) lattice "$2" "$3" ;;
    flat) flat "$2" "$3" ;;
    seq) seqfile "$2" "$3" ;;
    *) sed -n '2,/^set/p' "$0" | sed '$d' >&2; exit 2 ;;
esac
