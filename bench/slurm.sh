#!/usr/bin/env bash
# Slurm: 200 phases of `true` on the single-node cluster of scripts/slurm-cluster.sh at
# `--jobs 16`, against Slurm's own cost for the same 200 jobs (a plain `sbatch` loop, then
# `squeue` every 0.5 s until none is left), RUNS times each, alternating; and the controller
# queries per second milo made (MILO_SLURM_STATS), against the peers' one query per job per
# poll.
#
#   N=200 JOBS=16 RUNS=3 MILO=path/to/milo bash bench/slurm.sh
#
# Prints a Markdown section. Starts the cluster if it is not running (and leaves it running).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_milo
ensure_dir

N=${N:-200}
JOBS=${JOBS:-16}
RUNS=${RUNS:-3}
eval "$(bash "$REPO_ROOT/scripts/slurm-cluster.sh" start)"
export SLURM_CONF

dir="$BENCH_DIR/slurm$N"
mkdir -p "$dir"
{
    echo 'name = "bench"'
    echo 'executor = "slurm"'
    echo '[defaults]'
    echo 'parallel = true'
    for i in $(seq 1 "$N"); do
        printf '[[phase]]\nname = "p%d"\nrun = "true"\n' "$i"
    done
} > "$dir/milo.toml"

now() { date +%s.%N; }

plain_run() {
    local name="bench-plain-$$-$1" i
    for i in $(seq 1 "$N"); do
        sbatch --parsable --job-name="$name" --output=/dev/null --wrap=true >/dev/null
    done
    while [ -n "$(squeue -h --name="$name" -t pending,running,completing,configuring -o %i)" ]; do
        sleep 0.5
    done
}

milo_times=() plain_times=() stats=()
for r in $(seq 1 "$RUNS"); do
    t0=$(now); plain_run "$r"; t1=$(now)
    plain_times+=("$(echo "$t1 - $t0" | bc -l)")
    t0=$(now)
    line=$(cd "$dir" && MILO_SLURM_STATS=1 "$MILO" run --no-history --ui plain --jobs "$JOBS" 2>&1 >/dev/null | grep 'slurm stats' || true)
    t1=$(now)
    milo_times+=("$(echo "$t1 - $t0" | bc -l)")
    stats+=("$line")
done

mean() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%.2f", s / NR }'; }
m=$(mean "${milo_times[@]}")
p=$(mean "${plain_times[@]}")
last="${stats[-1]}"
squeue_n=$(sed -n 's/.*squeue \([0-9]*\).*/\1/p' <<<"$last")
scontrol_n=$(sed -n 's/.*scontrol \([0-9]*\).*/\1/p' <<<"$last")
last_t="${milo_times[-1]}"
qps=$(echo "($squeue_n + $scontrol_n) / $last_t" | bc -l)

cat <<MD
## Slurm: $N phases of \`true\` at \`--jobs $JOBS\` (single-node cluster)

\`N=$N JOBS=$JOBS RUNS=$RUNS bash bench/slurm.sh\` on $(nproc) CPUs, Slurm $(sbatch --version | awk '{print $2}')
(\`batch_sched_delay=0\`, \`OverSubscribe=FORCE:4\`; see scripts/slurm-cluster.sh).

| | mean wall time ($RUNS runs) | runs |
|---|---|---|
| plain \`sbatch\` loop + \`squeue\` every 0.5 s | ${p} s | ${plain_times[*]} |
| \`milo run --jobs $JOBS\` | ${m} s | ${milo_times[*]} |

milo / plain: $(echo "$m / $p" | bc -l | xargs printf '%.2f')×. Controller queries of the last milo run:
$squeue_n \`squeue\` + $scontrol_n \`scontrol\` in ${last_t} s = $(printf '%.2f' "$qps") per second
(\`$last\`); one query per job per poll would be up to $JOBS per poll.
MD
