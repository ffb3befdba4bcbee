#!/usr/bin/env bash
# Part 5 — command pipelines, whole process: 1,000 phases of `true` in a 10-wide lattice at
# 2 jobs, milo against `make -j2` and `ninja -j2` building the same graph (wall time, in one
# hyperfine run), and peak memory (max RSS, `/usr/bin/time -v`) for 10,000 command phases.
# Every `milo run` records into a fresh run history in the benchmark directory (the default),
# and once more with `--no-history` (a "before" binary records into its own database: an
# older schema).
#
#   MILO_BEFORE=path/to/old/milo   also run that binary, in the same hyperfine run (before/after)
#
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
# Start from an empty history: one that grew over earlier runs would make runs slower.
rm -rf "$small/.milo" "$big/.milo"

before=${MILO_BEFORE:+$(realpath "$MILO_BEFORE")}
specs=(
    "\`ninja -j2\`|ninja -C $small -j2"
    "\`make -r -j2\`|make -r -C $small -j2"
    "\`milo run --jobs 2 --ui plain\`|$MILO run -f $small/milo.toml --jobs 2 --ui plain"
    "\`milo run --jobs 2 --ui json\`|$MILO run -f $small/milo.toml --jobs 2 --ui json"
    "\`milo run --jobs 2 --ui plain --no-history\`|$MILO run -f $small/milo.toml --jobs 2 --ui plain --no-history"
)
if [ -n "$before" ]; then
    specs+=(
        "before: \`--ui plain\`|$before run -f $small/milo.toml --jobs 2 --ui plain --db $BENCH_DIR/before.db"
        "before: \`--ui json\`|$before run -f $small/milo.toml --jobs 2 --ui json --db $BENCH_DIR/before.db"
    )
fi
args=()
for s in "${specs[@]}"; do args+=(-n "${s%%|*}" "${s#*|}"); done
res="$BENCH_DIR/commands.json"
hyperfine -N --style none --warmup 2 --runs "$RUNS" --export-json "$res" "${args[@]}" >&2

ninja_t=$(res_mean "$res" 0)
make_t=$(res_mean "$res" 1)
plain_t=$(res_mean "$res" 2)
json_t=$(res_mean "$res" 3)

echo "### Command pipelines: $N phases of \`true\`, 10-wide lattice, 2 jobs"
echo
echo "| Command | Wall time (mean ± σ) | User + sys CPU | vs ninja | vs make |"
echo "|---|---|---|---|---|"
i=0
for s in "${specs[@]}"; do
    m=$(res_mean "$res" $i)
    cpu=$(jq -r ".results[$i] | (.user + .system)" "$res")
    echo "| ${s%%|*} | $(fmt_ms "$m" "$(res_stddev "$res" $i)") | $(fmt_ms "$cpu") | $(ratio "$m" "$ninja_t") | $(ratio "$m" "$make_t") |"
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
mem_specs=(
    "ninja|ninja -C $big -j2"
    "make|make -r -C $big -j2"
    "milo plain|$MILO run -f $big/milo.toml --jobs 2 --ui plain"
    "milo json|$MILO run -f $big/milo.toml --jobs 2 --ui json"
    "milo plain --no-history|$MILO run -f $big/milo.toml --jobs 2 --ui plain --no-history"
)
[ -n "$before" ] && mem_specs+=("before: milo plain|$before run -f $big/milo.toml --jobs 2 --ui plain --db $BENCH_DIR/before-big.db")
milo_worst=0
for spec in "${mem_specs[@]}"; do
    label=${spec%%|*}
    cmd=${spec#*|}
    read -r rss wall < <(peak $cmd)
    case $label in milo*) milo_worst=$(awk -v a="$milo_worst" -v b="$rss" 'BEGIN { print (b > a) ? b : a }') ;; esac
    echo "| \`$label\` | $(fmt_mib "$rss") | $(fmt_s "$wall") |"
done
echo
echo "Goal: under 64 MiB — $(verdict "$milo_worst" $((64 * 1024))) ($(fmt_mib "$milo_worst") at most)."
echo
