# Shared helpers for the whole-process benchmarks; sourced by the other scripts.
#
#   MILO=path/to/milo   benchmark this binary instead of target/release/milo (built if missing)
#   RUNS=N              hyperfine runs per command (default: per script)
#   BENCH_DIR=dir       where inputs and raw results go (default: a fresh temporary directory)

set -euo pipefail

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BENCH_ROOT/.." && pwd)"

# Installs hyperfine, ninja, make and GNU time from Debian's packages if any is missing.
ensure_tools() {
    local missing=()
    command -v hyperfine >/dev/null || missing+=(hyperfine)
    command -v jq >/dev/null || missing+=(jq)
    command -v ninja >/dev/null || missing+=(ninja-build)
    command -v make >/dev/null || missing+=(make)
    [ -x /usr/bin/time ] || missing+=(time)
    command -v script >/dev/null || missing+=(bsdutils)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq >&2
        $sudo apt-get install -y -qq hyperfine ninja-build make time bsdutils jq >&2
    fi
}

# Sets MILO to the release binary, building it if needed.
ensure_milo() {
    if [ -z "${MILO:-}" ]; then
        MILO="$REPO_ROOT/target/release/milo"
        if [ ! -x "$MILO" ] || [ -n "${BUILD:-}" ]; then
            echo "building milo (release)" >&2
            (cd "$REPO_ROOT" && cargo build --release -p milo-cli >&2)
        fi
    fi
    MILO="$(realpath "$MILO")"
    export MILO
}

# Sets BENCH_DIR to a work directory.
ensure_dir() {
    if [ -z "${BENCH_DIR:-}" ]; then
        BENCH_DIR="$(mktemp -d -t milo-bench.XXXXXX)"
    fi
    mkdir -p "$BENCH_DIR"
    BENCH_DIR="$(realpath "$BENCH_DIR")"
    export BENCH_DIR
}

setup() {
    ensure_tools
    ensure_milo
    ensure_dir
}

# Mean / standard deviation / minimum wall time in seconds of command number $2 (0-based) in
# hyperfine's JSON export $1.
res_mean() { jq -r ".results[$2].mean" "$1"; }
res_stddev() { jq -r ".results[$2].stddev // 0" "$1"; }
res_min() { jq -r ".results[$2].min" "$1"; }

# "12.3 ms ± 0.4" from seconds.
fmt_ms() { awk -v m="$1" -v s="${2:-}" 'BEGIN {
    if (s == "") printf "%.1f ms", m * 1000; else printf "%.1f ms ± %.1f", m * 1000, s * 1000 }'; }
fmt_s() { awk -v m="$1" -v s="${2:-}" 'BEGIN {
    if (s == "") printf "%.3f s", m; else printf "%.3f s ± %.3f", m, s }'; }
# a / b, two decimals, with a ×.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }

# Runs "$@" under /usr/bin/time -v (its output to /dev/null) and prints
# "<max RSS KiB> <wall seconds>".
peak() {
    local log
    log="$(mktemp)"
    /usr/bin/time -v -o "$log" "$@" >/dev/null 2>&1 || true
    awk -F': ' '
        /Maximum resident set size/ { rss = $2 }
        /Elapsed \(wall clock\)/ {
            n = split($2, t, ":"); s = 0
            for (i = 1; i <= n; i++) s = s * 60 + t[i]
            wall = s
        }
        END { print rss, wall }' "$log"
    rm -f "$log"
}

# KiB → "12.3 MiB".
fmt_mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# Markdown "met"/"missed" for value $1 < goal $2.
verdict() { awk -v v="$1" -v g="$2" 'BEGIN { print (v + 0 < g + 0) ? "met" : "**missed**" }'; }

machine() {
    echo "nproc $(nproc), $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(uname -sr), $(hyperfine --version), $(ninja --version | sed 's/^/ninja /'), $(make --version | head -1)"
}
