#!/usr/bin/env bash
# milo's own in-process figures for the same shapes, for comparison with the whole-process
# ones: the criterion bench crates/milo/benches/pipeline.rs (no-op handlers, no processes),
# lattice runs of 1,000 and 10,000 phases. Skipped if that bench does not exist.
# Prints a Markdown section.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ ! -f "$REPO_ROOT/crates/milo/benches/pipeline.rs" ]; then
    echo "crates/milo/benches/pipeline.rs does not exist; skipping the in-process figures" >&2
    exit 0
fi
ensure_dir
log="$BENCH_DIR/inprocess.log"
(cd "$REPO_ROOT" && cargo bench -p milo --bench pipeline -- --warm-up-time 1 --measurement-time 3 \
    '^run/lattice/(1000|10000)$') >"$log" 2>&1

echo "### In-process (crates/milo/benches/pipeline.rs, no-op handlers, no processes)"
echo
echo "| Benchmark | Time (criterion estimate) |"
echo "|---|---|"
awk '/^run\// { name = $1 } /time:/ && name { sub(/.*\[/, ""); sub(/\].*/, ""); split($0, t, " "); printf "| `%s` | %s %s |\n", name, t[3], t[4]; name = "" }' "$log"
echo
