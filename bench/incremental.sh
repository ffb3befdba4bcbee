#!/usr/bin/env bash
# Incremental runs, whole process, side by side with ninja, make and go-task (checksum mode)
# on the same graph: N phases (default 1,000) in a 10-wide lattice, each with FILES source
# files (default 100) of 4 KiB and one output file, each phase depending on the whole layer
# before it. Every tool runs the same command per phase (`cat` of its sources into its output).
#
#   1. no-op: nothing changed (milo with and without recording the run in its history);
#   2. one source file of a phase in the second-to-last layer edited: that phase and its ten
#      dependents run (each tool is given the same edit before each of its runs);
#   3. cold hashing: one phase whose sources are 1 GiB (256 files of 4 MiB), no stat cache;
#   4. restoring a 100 MiB output directory (100 files of 1 MiB) from the cache, against
#      `cp -r` of the same directory.
#
# go-task comes from PyPI (`go-task-bin`) into a virtualenv in BENCH_DIR when `task` is not on
# PATH; set NO_GOTASK=1 to leave it out. Prints a Markdown section. Environment: see lib.sh
# (RUNS defaults to 10).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup

N=${N:-1000}
FILES=${FILES:-100}
RUNS=${RUNS:-10}
WIDTH=10
dir="$BENCH_DIR/inc$N"

# --- go-task -------------------------------------------------------------------------------
TASK=""
if [ -z "${NO_GOTASK:-}" ]; then
    if command -v task >/dev/null && task --version 2>/dev/null | grep -qi task; then
        TASK=$(command -v task)
    else
        python3 -m venv "$BENCH_DIR/venv" >&2 && "$BENCH_DIR/venv/bin/pip" install -q go-task-bin >&2 &&
            TASK="$BENCH_DIR/venv/bin/task"
    fi
fi

# --- the graph -----------------------------------------------------------------------------
generate() {
    rm -rf "$dir"
    mkdir -p "$dir/out"
    # Sources: FILES files of 4 KiB per phase, distinct contents.
    python3 - "$dir" "$N" "$FILES" <<'EOF'
import os, sys
d, n, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
block = os.urandom(4096)
for p in range(n):
    sd = os.path.join(d, "src", f"p{p}")
    os.makedirs(sd)
    for f in range(files):
        with open(os.path.join(sd, f"f{f:03}.txt"), "wb") as fh:
            fh.write(f"{p}:{f}\n".encode() + block[: 4096 - 16])
EOF
    awk -v n="$N" -v w="$WIDTH" -v files="$FILES" -v dir="$dir" 'BEGIN {
        toml = dir "/milo.toml"; mk = dir "/Makefile"; nj = dir "/build.ninja"; tk = dir "/Taskfile.yml"
        printf "name = \"inc-%d\"\n\n[defaults]\nparallel = true\n", n > toml
        printf "rule cat\n  command = cat src/$p/*.txt > $out\n\n" > nj
        printf "version: \"3\"\n\ntasks:\n" > tk
        all = ""
        for (i = 0; i < n; i++) {
            layer = int(i / w)
            deps = ""; mdeps = ""; ndeps = ""; tdeps = ""
            if (layer > 0) {
                for (c = 0; c < w; c++) {
                    d = (layer - 1) * w + c
                    deps = deps (c ? ", " : "") "\"p" d "\""
                    mdeps = mdeps " out/p" d
                    tdeps = tdeps (c ? ", " : "") "p" d
                }
            }
            srcs = ""
            for (f = 0; f < files; f++) srcs = srcs sprintf(" src/p%d/f%03d.txt", i, f)
            printf "\n[[phase]]\nname = \"p%d\"\nrun = \"cat src/p%d/*.txt > out/p%d\"\nsources = [\"src/p%d/*.txt\"]\noutputs = [\"out/p%d\"]\n", i, i, i, i, i > toml
            if (layer > 0) printf "depends_on = [%s]\n", deps > toml
            printf "out/p%d:%s%s\n\tcat src/p%d/*.txt > out/p%d\n", i, srcs, mdeps, i, i > mk
            printf "build out/p%d: cat%s%s\n  p = p%d\n", i, srcs, mdeps, i > nj
            printf "  p%d:\n    run: once\n    cmds: [\"cat src/p%d/*.txt > out/p%d\"]\n    sources: [\"src/p%d/*.txt\"]\n    generates: [\"out/p%d\"]\n    method: checksum\n", i, i, i, i, i > tk
            if (layer > 0) printf "    deps: [%s]\n", tdeps > tk
            if (int((n - 1) / w) == layer) all = all " out/p" i
        }
        printf "all:%s\n", all > mk
        printf "\nbuild all: phony%s\ndefault all\n", all > nj
        printf "  default:\n    deps: [" > tk
        first = 1
        for (i = int((n - 1) / w) * w; i < n; i++) { printf "%sp%d", (first ? "" : ", "), i > tk; first = 0 }
        printf "]\n" > tk
    }'
    { echo "all:"; cat "$dir/Makefile"; } > "$dir/Makefile.tmp" && mv "$dir/Makefile.tmp" "$dir/Makefile"
}

generate
cd "$dir"
# Prime every tool's state with one full build each (their logs, checksums, history, cache).
ninja -C "$dir" >/dev/null
rm -rf out && mkdir out && make -s -r -j2 -C "$dir" >/dev/null
rm -rf out && mkdir out && "$MILO" run -f "$dir/milo.toml" --jobs 2 --ui plain >/dev/null
[ -n "$TASK" ] && "$TASK" -d "$dir" --concurrency 2 >/dev/null 2>&1
# Every tool's outputs must be current for all of them now: rebuild ninja's view of them.
ninja -C "$dir" >/dev/null

# --- 1. no-op --------------------------------------------------------------------------------
specs=(
    "\`ninja -j2\` (no-op)|ninja -C $dir -j2"
    "\`make -r -j2\` (no-op)|make -s -r -C $dir -j2"
    "\`milo run --jobs 2 --ui plain\` (no-op)|$MILO run -f $dir/milo.toml --jobs 2 --ui plain"
    "\`milo run --jobs 2 --ui plain --no-history\` (no-op)|$MILO run -f $dir/milo.toml --jobs 2 --ui plain --no-history"
)
[ -n "$TASK" ] && specs+=("\`task --concurrency 2\` (go-task, checksum, no-op)|$TASK -d $dir --concurrency 2 --silent")
args=()
for s in "${specs[@]}"; do args+=(-n "${s%%|*}" "${s#*|}"); done
noop="$BENCH_DIR/noop.json"
hyperfine -N --style none --warmup 2 --runs "$RUNS" --export-json "$noop" "${args[@]}" >&2

# --- 2. one source edited --------------------------------------------------------------------
edited=$(( (N / WIDTH - 2) * WIDTH ))   # a phase of the second-to-last layer
edit="printf 'edit %s\n' \$RANDOM\$RANDOM >> $dir/src/p$edited/f000.txt"
especs=(
    "\`ninja -j2\` (one edit)|ninja -C $dir -j2"
    "\`make -r -j2\` (one edit)|make -s -r -C $dir -j2"
    "\`milo run --jobs 2 --ui plain\` (one edit)|$MILO run -f $dir/milo.toml --jobs 2 --ui plain"
)
[ -n "$TASK" ] && especs+=("\`task --concurrency 2\` (go-task, one edit)|$TASK -d $dir --concurrency 2 --silent")
args=()
for s in "${especs[@]}"; do args+=(-n "${s%%|*}" "${s#*|}"); done
onedit="$BENCH_DIR/edit.json"
hyperfine --style none --warmup 1 --runs "$RUNS" --prepare "$edit" --export-json "$onedit" "${args[@]}" >&2

# --- 3. cold hashing of 1 GiB ----------------------------------------------------------------
big="$BENCH_DIR/hash"
rm -rf "$big" && mkdir -p "$big/src"
for i in $(seq 0 255); do head -c $((4 << 20)) /dev/urandom > "$big/src/f$i.bin"; done
cat > "$big/milo.toml" <<'EOF'
name = "hash"
[[phase]]
name = "hash"
run = "true"
sources = ["src/*.bin"]
EOF
cat "$big"/src/* > /dev/null   # in the page cache: hashing, not the disk, is measured
hash="$BENCH_DIR/hash.json"
hyperfine -N --style none --warmup 1 --runs "$RUNS" --prepare "rm -rf $big/.milo" --export-json "$hash" \
    -n "\`milo run\` hashing 1 GiB of sources, no stat cache" "$MILO run -f $big/milo.toml --ui plain --no-history" >&2

# --- 4. restoring 100 MiB --------------------------------------------------------------------
rest="$BENCH_DIR/restore"
rm -rf "$rest" && mkdir -p "$rest/data"
for i in $(seq 0 99); do head -c $((1 << 20)) /dev/urandom > "$rest/data/f$i.bin"; done
cat > "$rest/milo.toml" <<'EOF'
name = "restore"
[[phase]]
name = "copy"
run = "cp -r data site"
sources = ["data/*"]
outputs = ["site"]
EOF
"$MILO" run -f "$rest/milo.toml" --ui plain --no-history >/dev/null
cat "$rest"/data/* > /dev/null
restore="$BENCH_DIR/restore.json"
hyperfine -N --style none --warmup 1 --runs "$RUNS" --prepare "rm -rf $rest/site $rest/copy" --export-json "$restore" \
    -n "\`cp -r\` of the 100 MiB directory" "cp -r $rest/data $rest/copy" \
    -n "\`milo run\` restoring it from the cache" "$MILO run -f $rest/milo.toml --ui plain --no-history" >&2

# --- the report ------------------------------------------------------------------------------
table() {
    local res=$1 base=$2; shift 2
    local i=0
    for s in "$@"; do
        local m
        m=$(res_mean "$res" $i)
        echo "| ${s%%|*} | $(fmt_ms "$m" "$(res_stddev "$res" $i)") | $(ratio "$m" "$(res_mean "$res" "$base")") |"
        i=$((i + 1))
    done
}
echo "### Incremental runs: $N phases × $FILES sources of 4 KiB ($((N * FILES)) files), 10-wide lattice, 2 jobs"
echo
echo "Machine: $(machine)${TASK:+, $("$TASK" --version)}"
echo
echo "| Command | Wall time (mean ± σ) | vs ninja |"
echo "|---|---|---|"
table "$noop" 0 "${specs[@]}"
table "$onedit" 0 "${especs[@]}"
echo
hm=$(res_mean "$hash" 0)
echo "| Cold hashing | Wall time | Throughput |"
echo "|---|---|---|"
echo "| 1 GiB of sources (256 × 4 MiB), no stat cache, whole \`milo run\` | $(fmt_ms "$hm" "$(res_stddev "$hash" 0)") | $(awk -v t="$hm" 'BEGIN { printf "%.2f GiB/s", 1 / t }') |"
echo
echo "| Restore of a 100 MiB directory (100 × 1 MiB) | Wall time (mean ± σ) | vs \`cp -r\` |"
echo "|---|---|---|"
table "$restore" 0 "\`cp -r\`|" "\`milo run\` restoring it from the cache (whole run)|"
echo
