#!/usr/bin/env bash
# Part 7 — startup: `milo --version` and `milo check` on a 100-phase file (hyperfine, no
# shell, with warm-up), next to the floor of starting any process (`true`) and to
# `ninja --version` / `make --version`. Prints a Markdown section. Environment: see lib.sh
# (RUNS defaults to 300).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup

RUNS=${RUNS:-300}
file="$BENCH_DIR/check100.toml"
"$BENCH_ROOT/gen.sh" flat 100 "$file"
"$MILO" check -f "$file" >/dev/null

specs=(
    "\`true\` (process start floor)|$(command -v true)"
    "\`ninja --version\`|$(command -v ninja) --version"
    "\`make --version\`|$(command -v make) --version"
    "\`milo --version\`|$MILO --version"
    "\`milo check\` (100 phases)|$MILO check -f $file"
)
args=()
for s in "${specs[@]}"; do args+=(-n "${s%%|*}" "${s#*|}"); done
res="$BENCH_DIR/startup.json"
hyperfine -N --style none --warmup 20 --runs "$RUNS" --export-json "$res" "${args[@]}" >&2

echo "### Startup"
echo
echo "| Command | Wall time (mean ± σ) | min |"
echo "|---|---|---|"
i=0
worst=0
for s in "${specs[@]}"; do
    m=$(res_mean "$res" $i)
    case ${s#*|} in "$MILO"*) worst=$(awk -v a="$worst" -v b="$m" 'BEGIN { print (b > a) ? b : a }') ;; esac
    echo "| ${s%%|*} | $(fmt_ms "$m" "$(res_stddev "$res" $i)") | $(fmt_ms "$(res_min "$res" $i)") |"
    i=$((i + 1))
done
echo
echo "Goal: under 10 ms — $(verdict "$worst" 0.010) ($(fmt_ms "$worst") for the slower of the two)."
echo
