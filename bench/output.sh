#!/usr/bin/env bash
# Part 6 — output: one phase printing 1,000,000 lines (`seq 1000000`) with capture on, with
# each view, output to /dev/null: wall time (hyperfine) and peak memory (`/usr/bin/time -v`).
# `--ui progress` is measured twice: with stderr not a terminal (hyperfine's /dev/null) and in a
# pseudo-terminal under `script -qfc`. Prints a Markdown section. Environment: see lib.sh
# (RUNS defaults to 5).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup

LINES=${LINES_OUT:-1000000}
RUNS=${RUNS:-5}
file="$BENCH_DIR/seq$LINES.toml"
"$BENCH_ROOT/gen.sh" seq "$LINES" "$file"

run="$MILO run -f $file"
specs=(
    "\`seq $LINES\` alone (floor)|seq $LINES"
    "\`--ui plain\`|$run --ui plain"
    "\`--ui json\`|$run --ui json"
    "\`--ui progress\`, stderr not a terminal|$run --ui progress"
    "\`--ui progress\` in a pty (\`script -qfc\`)|script -qfc \"$run --ui progress\" /dev/null"
)
args=()
for s in "${specs[@]}"; do args+=(-n "${s%%|*}" "${s#*|}"); done
res="$BENCH_DIR/output.json"
hyperfine -N --style none --warmup 1 --runs "$RUNS" --export-json "$res" "${args[@]}" >&2

echo "### Output: one phase printing $LINES lines, capture on, output to /dev/null"
echo
echo "| View | Wall time (mean ± σ) | Max RSS |"
echo "|---|---|---|"
worst_t=0
worst_rss=0
i=0
for s in "${specs[@]}"; do
    label=${s%%|*}
    cmd=${s#*|}
    m=$(res_mean "$res" $i)
    if [[ $cmd == script* ]]; then
        # Measure milo itself inside the pty, not `script`.
        script -qfc "/usr/bin/time -f %M -o $BENCH_DIR/pty-rss $run --ui progress" /dev/null >/dev/null 2>&1 || true
        rss=$(tail -1 "$BENCH_DIR/pty-rss")
    else
        read -r rss _ < <(peak $cmd)
    fi
    if [[ $cmd == "$MILO"* || $cmd == script* ]]; then
        worst_t=$(awk -v a="$worst_t" -v b="$m" 'BEGIN { print (b > a) ? b : a }')
        worst_rss=$(awk -v a="$worst_rss" -v b="$rss" 'BEGIN { print (b > a) ? b : a }')
    fi
    echo "| $label | $(fmt_s "$m" "$(res_stddev "$res" $i)") | $(fmt_mib "$rss") |"
    i=$((i + 1))
done
echo
echo "Goals: under 1.5 s — $(verdict "$worst_t" 1.5) ($(fmt_s "$worst_t") for the slowest view); peak memory under 64 MiB — $(verdict "$worst_rss" $((64 * 1024))) ($(fmt_mib "$worst_rss") at most)."
echo
