#!/usr/bin/env bash
# `milo watch` on a tree of FILES source files (default 100,000: 1,000 directories of 100
# empty files), one phase whose `sources` are the whole tree:
#
#   1. idle CPU: milo's own CPU time (utime + stime from /proc) over IDLE seconds (default 10)
#      while it watches and nothing changes, as a share of one core;
#   2. save-to-start latency: from writing one source file to the phase's command starting
#      (it writes a timestamp first), EDITS times (default 5); this includes the debounce
#      (100 ms) and the incremental check of the whole tree (a stat of every file).
#
# Prints a Markdown section. Environment: see lib.sh (MILO, BENCH_DIR).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_milo
ensure_dir

FILES=${FILES:-100000}
IDLE=${IDLE:-10}
EDITS=${EDITS:-5}
dir="$BENCH_DIR/watch$FILES"
rm -rf "$dir"
mkdir -p "$dir/src"
dirs=$(( (FILES + 99) / 100 ))
for ((d = 0; d < dirs; d++)); do
    mkdir -p "$dir/src/d$d"
    for ((f = 0; f < 100 && d * 100 + f < FILES; f++)); do
        : > "$dir/src/d$d/f$f.txt"
    done
done
cat > "$dir/milo.toml" <<TOML
name = "watch-bench"

[[phase]]
name = "react"
run = "date +%s.%N > started.tmp && mv started.tmp started"
sources = ["src/**"]
TOML

cd "$dir"
"$MILO" watch --ui plain --no-history > watch.out 2> watch.err &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
until grep -q "watching for changes" watch.err 2>/dev/null; do sleep 0.1; done
sleep 1

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks)
sleep "$IDLE"
after=$(ticks)
idle_pct=$(awk -v a="$before" -v b="$after" -v hz="$hz" -v s="$IDLE" 'BEGIN { printf "%.2f", (b - a) / hz / s * 100 }')

latencies=()
for ((i = 1; i <= EDITS; i++)); do
    old=$(cat started)
    t0=$(date +%s.%N)
    echo "edit $i" > "src/d$((dirs / 2))/f5.txt"
    # The command truncates the file before it writes the time: wait for a whole new line.
    now=$old
    while [ "$now" = "$old" ] || [ -z "$now" ]; do
        sleep 0.005
        now=$(cat started)
    done
    latencies+=("$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.0f", (b - a) * 1000 }')")
    until [ "$(grep -c "watching for changes" watch.err)" -gt "$i" ]; do sleep 0.05; done
    sleep 0.5
done
sorted=$(printf '%s\n' "${latencies[@]}" | sort -n)
median=$(echo "$sorted" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')

echo "### milo watch: $FILES source files"
echo
echo "| measure | value |"
echo "|---|---|"
echo "| idle CPU while watching (${IDLE} s) | ${idle_pct}% of one core |"
echo "| save → phase start, median of $EDITS (ms) | $median (all: ${latencies[*]}) |"
echo
echo "Command: \`MILO=$MILO FILES=$FILES bash bench/watch.sh\`"
