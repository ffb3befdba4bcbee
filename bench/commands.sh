#!/usr/bin/env bash
# Part 5 — command pipelines, whole process: 1,000 phases of `true` in a 10-wide lattice at
# 2 jobs, milo against `make -j2` and `ninja -j2` building the same graph (wall time, in one
# hyperfine run), and peak memory (max RSS, `/usr/bin/time -v`) for 10,000 command phases.
# milo is also run with TMPDIR on tmpfs: each command phase gets a temporary directory for its
# MILO_OUTPUT / MILO_INPUTS files, which make and ninja do not pay for.
# Prints a Markdown section. Environment: see lib.sh (RUNS defaults to 10).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup

N=${N:-1000}
N_MEM=${N_MEM:-10000}
RUNS=${RUNS:-10}
small="$BENCH_DIR/lattice$N"
big="$BENCH_DIR/lattice$N_MEM"
"$BENCH_ROOT/gen.sh" lattice "$N" "$small"
"$BENCH_ROOT/gen.sh" lattice "$N_MEM" "$big"

res="$BENCH_DIR/commands.json"
hyperfine -N --style none --warmup 2 --runs "$RUNS" --export-json "$res" \
    -n ninja "ninja -C $small -j2" \
    -n make "make -r -C $small -j2" \
    -n "milo plain" "$MILO run -f $small/milo.toml --jobs 2 --ui plain" \
    -n "milo json" "$MILO run -f $small/milo.toml --jobs 2 --ui json" \
    -n "milo plain shm" "env TMPDIR=/dev/shm $MILO run -f $small/milo.toml --jobs 2 --ui plain" >&2

ninja_t=$(res_mean "$res" 0)
make_t=$(res_mean "$res" 1)
plain_t=$(res_mean "$res" 2)
json_t=$(res_mean "$res" 3)

echo "### Command pipelines: $N phases of \`true\`, 10-wide lattice, 2 jobs"
echo
echo "| Command | Wall time (mean ± σ) | vs ninja | vs make |"
echo "|---|---|---|---|"
i=0
for label in "\`ninja -j2\`" "\`make -r -j2\`" "\`milo run --jobs 2 --ui plain\`" "\`milo run --jobs 2 --ui json\`" \
    "\`milo run --jobs 2 --ui plain\`, \`TMPDIR=/dev/shm\` (see below)"; do
    m=$(res_mean "$res" $i)
    echo "| $label | $(fmt_ms "$m" "$(res_stddev "$res" $i)") | $(ratio "$m" "$ninja_t") | $(ratio "$m" "$make_t") |"
    i=$((i + 1))
done
echo
worst=$(awk -v a="$plain_t" -v b="$json_t" 'BEGIN { print (a > b) ? a : b }')
goal=$(awk -v n="$ninja_t" 'BEGIN { print n * 1.25 }')
echo "Goal: within 1.25× of ninja's wall time — $(verdict "$worst" "$goal") ($(ratio "$plain_t" "$ninja_t") plain, $(ratio "$json_t" "$ninja_t") json)."
echo

echo "### Peak memory: $N_MEM command phases (10-wide lattice of \`true\`, 2 jobs)"
echo
echo "| Command | Max RSS | Wall time (one run) |"
echo "|---|---|---|"
milo_worst=0
for spec in "ninja|ninja -C $big -j2" "make|make -r -C $big -j2" \
    "milo plain|$MILO run -f $big/milo.toml --jobs 2 --ui plain" \
    "milo json|$MILO run -f $big/milo.toml --jobs 2 --ui json"; do
    label=${spec%%|*}
    cmd=${spec#*|}
    read -r rss wall < <(peak $cmd)
    case $label in milo*) milo_worst=$(awk -v a="$milo_worst" -v b="$rss" 'BEGIN { print (b > a) ? b : a }') ;; esac
    echo "| \`$label\` | $(fmt_mib "$rss") | $(fmt_s "$wall") |"
done
echo
echo "Goal: under 64 MiB — $(verdict "$milo_worst" $((64 * 1024))) ($(fmt_mib "$milo_worst") at most)."
echo
