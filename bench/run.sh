#!/usr/bin/env bash
# Whole-process benchmarks of milo against make and ninja: runs commands.sh (part 5),
# output.sh (part 6), startup.sh (part 7) and, if the bench exists, inprocess.sh, and prints
# one Markdown report (also saved as $BENCH_DIR/results.md).
#
#   bash bench/run.sh                 # everything, release build of milo
#   RUNS=3 bash bench/run.sh          # fewer hyperfine runs per command
#   MILO=/path/to/milo bash bench/run.sh
#   MILO_BEFORE=/path/to/old/milo bash bench/run.sh   # part 5 also runs the old binary (before/after)
#   SKIP_INPROCESS=1 bash bench/run.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup
out="$BENCH_DIR/results.md"
{
    echo "Machine: $(machine)."
    echo "milo: $("$MILO" --version), $(cd "$REPO_ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown); $(date -u '+%Y-%m-%d %H:%M UTC'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    bash "$BENCH_ROOT/commands.sh"
    bash "$BENCH_ROOT/output.sh"
    bash "$BENCH_ROOT/startup.sh"
    if [ -z "${SKIP_INPROCESS:-}" ]; then bash "$BENCH_ROOT/inprocess.sh"; fi
    echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee "$out"
echo "raw results in $BENCH_DIR" >&2
