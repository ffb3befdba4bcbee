#!/usr/bin/env bash
# A single-node Slurm cluster for milo's Slurm tests and benchmark: nothing in /etc, no systemd.
#
#   scripts/slurm-cluster.sh start    install (Debian, as root) if missing, configure, start, wait
#   scripts/slurm-cluster.sh stop     cancel every job, stop exactly the daemons `start` started
#   scripts/slurm-cluster.sh status   whether it runs; prints the SLURM_CONF to export
#   scripts/slurm-cluster.sh env      prints `export SLURM_CONF=...` (for eval)
#
# Everything lives under $MILO_SLURM_DIR (default /tmp/milo-slurm): the munge key and socket,
# slurm.conf, state, spool, logs and the PIDs of the daemons it started. `start` exits 2 (and
# says why) when Slurm is missing and cannot be installed here (not root, no apt-get).
set -euo pipefail

DIR="${MILO_SLURM_DIR:-/tmp/milo-slurm}"
CTLD_PORT="${MILO_SLURM_CTLD_PORT:-16817}"
SLURMD_PORT="${MILO_SLURM_SLURMD_PORT:-16818}"
CONF="$DIR/etc/slurm.conf"
HOST="$(hostname -s)"

log() { echo "slurm-cluster: $*" >&2; }

need_install() {
  local missing=()
  command -v slurmctld >/dev/null 2>&1 || [ -x /usr/sbin/slurmctld ] || missing+=(slurmctld)
  command -v slurmd >/dev/null 2>&1 || [ -x /usr/sbin/slurmd ] || missing+=(slurmd)
  command -v sbatch >/dev/null 2>&1 || missing+=(slurm-client)
  command -v munged >/dev/null 2>&1 || [ -x /usr/sbin/munged ] || missing+=(munge)
  echo "${missing[*]:-}"
}

install() {
  local missing
  missing="$(need_install)"
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "Slurm is not installed ($missing missing) and this is not root: cannot install it;"
    log "install Debian's slurmctld slurmd slurm-client munge, or run as root"
    exit 2
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    log "Slurm is not installed ($missing missing) and there is no apt-get to install it"
    exit 2
  fi
  log "installing $missing"
  # shellcheck disable=SC2086
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
}

alive() { [ -f "$DIR/run/$1.pid" ] && kill -0 "$(cat "$DIR/run/$1.pid")" 2>/dev/null; }

write_config() {
  mkdir -p "$DIR"/{etc,state,spool,log,run}
  mkdir -p -m 0700 "$DIR/munge"
  chmod 0700 "$DIR/munge"
  if [ ! -s "$DIR/munge/munge.key" ]; then
    head -c 1024 /dev/urandom >"$DIR/munge/munge.key"
  fi
  chmod 0400 "$DIR/munge/munge.key"
  local node mem
  node="$(/usr/sbin/slurmd -C | head -n 1)"
  mem="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")"
  # Leave a margin: slurmd drains a node whose memory is below what is configured.
  mem=$((mem > 1024 ? mem - 512 : mem))
  node="$(sed "s/RealMemory=[0-9]*/RealMemory=$mem/" <<<"$node") NodeAddr=127.0.0.1 State=UNKNOWN"
  cat >"$CONF" <<EOF
# Written by milo's scripts/slurm-cluster.sh: a single-node cluster under $DIR.
# batch_sched_delay=0: a batch job is scheduled when submitted (else at the next 3 s tick);
# sched_interval=2, bf_interval=1: a job whose --begin time comes starts within about 2 s.
ClusterName=milo
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.daemon.pid
SlurmdPidFile=$DIR/run/slurmd.daemon.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/cgroup
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=1
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=5
MinJobAge=3600
$node
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
  echo "CgroupPlugin=autodetect" >"$DIR/etc/cgroup.conf"
}

# Starts "$@" in its own session in the background, recording its PID as $DIR/run/$name.pid.
launch() {
  local name="$1"; shift
  setsid "$@" </dev/null >"$DIR/log/$name.out" 2>&1 &
  echo $! >"$DIR/run/$name.pid"
}

wait_for() {
  local what="$1" tries="$2"; shift 2
  local i
  for ((i = 0; i < tries; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "$what did not come up; see $DIR/log"
  return 1
}

node_idle() { [ "$(sinfo -h -n "$HOST" -o %t 2>/dev/null)" = "idle" ]; }

start() {
  install
  export SLURM_CONF="$CONF"
  if alive slurmctld && alive slurmd && alive munged; then
    log "already running under $DIR"
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  stop_daemons quiet
  write_config
  launch munged /usr/sbin/munged -F -f --socket="$DIR/munge/munge.socket" \
    --key-file="$DIR/munge/munge.key" --pid-file="$DIR/run/munged.daemon.pid" \
    --seed-file="$DIR/munge/munge.seed" --log-file="$DIR/log/munged.log"
  wait_for munged 50 test -S "$DIR/munge/munge.socket"
  launch slurmctld /usr/sbin/slurmctld -D -i -f "$CONF"
  wait_for slurmctld 100 scontrol ping
  launch slurmd /usr/sbin/slurmd -D -f "$CONF"
  wait_for "the node (idle)" 150 node_idle
  # The first job after a fresh start waits for the first scheduler pass: absorb it here.
  local id
  id="$(sbatch --parsable --job-name=milo-warmup --output=/dev/null --wrap=true)"
  local i
  for ((i = 0; i < 100; i++)); do
    [ -z "$(squeue -h -j "$id" 2>/dev/null)" ] && break
    sleep 0.1
  done
  log "running under $DIR (munged $(cat "$DIR/run/munged.pid"), slurmctld $(cat "$DIR/run/slurmctld.pid"), slurmd $(cat "$DIR/run/slurmd.pid"))"
  echo "export SLURM_CONF=$CONF"
}

# Stops exactly the daemons recorded under $DIR/run, newest first.
stop_daemons() {
  local name pid i
  for name in slurmd slurmctld munged; do
    [ -f "$DIR/run/$name.pid" ] || continue
    pid="$(cat "$DIR/run/$name.pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then
        log "$name ($pid) still running 5 s after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
    rm -f "$DIR/run/$name.pid"
  done
  [ "${1:-}" = quiet ] || log "stopped"
}

stop() {
  export SLURM_CONF="$CONF"
  if alive slurmctld; then
    # Running jobs' slurmstepd outlive slurmd: cancel them first and wait until they ended.
    scancel --full --user="$(id -un)" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
      [ -z "$(squeue -h -t running,completing,pending,configuring 2>/dev/null)" ] && break
      sleep 0.1
    done
  fi
  stop_daemons
  # proctrack/cgroup leaves its freezer hierarchy behind.
  local cg="/sys/fs/cgroup/freezer/slurm_$HOST"
  if [ -d "$cg" ]; then
    find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  fi
}

status() {
  export SLURM_CONF="$CONF"
  if alive slurmctld && alive slurmd && alive munged && scontrol ping >/dev/null 2>&1; then
    echo "running under $DIR: $(sinfo -h -o '%P %t %c CPUs' 2>/dev/null)"
    echo "export SLURM_CONF=$CONF"
  else
    echo "not running (under $DIR)"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env   (MILO_SLURM_DIR=$DIR)" >&2; exit 64 ;;
esac
