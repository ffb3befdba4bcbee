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

# Snapshots are reviewed, never silently rewritten by a test run.
export INSTA_UPDATE=no
# --locked: the dependencies are exactly those of Cargo.lock; a stale lock file fails here
# instead of being rewritten.
cargo test --workspace --locked "$@"
