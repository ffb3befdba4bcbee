#!/usr/bin/env bash
# Runs milo's whole test suite on a fresh machine, installing what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: pgrep/ps (procps) to prove no process outlives milo;
# headless Chromium to check the HTML run report in a browser (milo-report).
missing=()
command -v pgrep >/dev/null 2>&1 || missing+=(procps)
[ -n "${MILO_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}"
  else
    echo "please install: ${missing[*]}" >&2; exit 1
  fi
fi

# The Slurm tests (crates/milo-cli/tests/slurm.rs) run on a single-node cluster this script
# starts (installing Debian's Slurm packages as root when missing) and stops afterwards; where
# Slurm cannot be installed, they say so and do not run.
slurm_started=""
if bash scripts/slurm-cluster.sh status >/dev/null 2>&1; then
  echo "test.sh: using the Slurm cluster already running (scripts/slurm-cluster.sh status)" >&2
else
  rc=0
  bash scripts/slurm-cluster.sh start >/dev/null || rc=$?
  if [ "$rc" -eq 0 ]; then
    slurm_started=1
    trap 'bash scripts/slurm-cluster.sh stop || true' EXIT
  elif [ "$rc" -eq 2 ]; then
    echo "test.sh: SKIPPING the Slurm tests: Slurm is not installed and cannot be installed here (see above)" >&2
  else
    echo "test.sh: the Slurm test cluster did not start (see its log directory, MILO_SLURM_DIR or /tmp/milo-slurm)" >&2
    exit 1
  fi
fi
[ -z "$slurm_started" ] || echo "test.sh: started a Slurm test cluster (stopped when the tests end)" >&2

# Snapshots are reviewed, never silently rewritten by a test run.
export INSTA_UPDATE=no
# --locked: the dependencies are exactly those of Cargo.lock; a stale lock file fails here
# instead of being rewritten.
cargo test --workspace --locked "$@"
