#!/usr/bin/env bash
# The Python original (github.com/lbliii/milo-cli) on the shapes of
# `cargo bench -p milo --bench pipeline`: 5,000 no-op phases as a chain, a fan-out (one root,
# the rest parallel after it) and a 10-wide lattice, each run to its end through the original's
# `Store.run_saga(pipeline.build_saga())`, timed from the saga's start to @@PIPELINE_COMPLETE.
#
#   MILO_PY_SRC=dir   a checkout of lbliii/milo-cli (required; its `src/` is used in place)
#   N=5000 RUNS=3     phases per shape, runs per shape (the best and the mean are printed)
#   PYTHON=python3.13 the interpreter (the original wants 3.14: see below)
#
# The original needs Python 3.14. On 3.13, in a copy of its `src/` and of its one dependency,
# `kida-templates` (the version its pyproject asks for, from PyPI): `except A, B:` (PEP 758,
# 3.14 syntax) becomes `except (A, B):`, and kida's package `__init__` (which loads its
# template engine, written with 3.14 t-strings) is replaced by a stub exporting only the
# worker-count helper the original's Store calls, from kida's own `utils/workers.py`. The
# recursion limit is raised to 4×N: the original checks for cycles recursively, one frame per
# link of a chain.
set -euo pipefail
: "${MILO_PY_SRC:?set MILO_PY_SRC to a checkout of github.com/lbliii/milo-cli}"
N=${N:-5000}
RUNS=${RUNS:-3}
PYTHON=${PYTHON:-python3.13}
work=$(mktemp -d -t milo-py.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$MILO_PY_SRC/src/milo" "$work/milo"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.14 -d "$work/wheels" \
    "kida-templates>=0.11.0,<0.13.0" >&2
(cd "$work" && "$PYTHON" -m zipfile -e wheels/*.whl "$work")
printf 'from kida.utils.workers import WorkloadType, get_optimal_workers\n' > "$work/kida/__init__.py"
: > "$work/kida/utils/__init__.py"
# PEP 758: unparenthesised `except A, B:` → `except (A, B):` (only outside `as` clauses).
find "$work/milo" "$work/kida" -name '*.py' -print0 | xargs -0 sed -i -E 's/^([[:space:]]*)except ([A-Za-z_.]+(, *[A-Za-z_.]+)+):/\1except (\2):/'
PYTHONPATH="$work" N="$N" RUNS="$RUNS" "$PYTHON" - <<'EOF'
import os, sys, threading, time
from milo.pipeline import Phase, Pipeline
from milo.state import Store

N, RUNS = int(os.environ["N"]), int(os.environ["RUNS"])
# The original's cycle check recurses once per link of a chain (Python's default limit: 1,000).
sys.setrecursionlimit(max(10_000, 4 * N))

def noop():
    return None

def chain(n):
    return [Phase(f"p{i}", handler=noop, depends_on=(() if i == 0 else (f"p{i-1}",))) for i in range(n)]

def fan_out(n):
    return [Phase("root", handler=noop)] + [
        Phase(f"p{i}", handler=noop, depends_on=("root",), parallel=True) for i in range(1, n)
    ]

def lattice(n, w=10):
    out = []
    for i in range(n):
        layer, col = divmod(i, w)
        deps = () if layer == 0 else tuple(f"l{layer-1}c{c}" for c in range(w))
        out.append(Phase(f"l{layer}c{col}", handler=noop, depends_on=deps, parallel=True))
    return out

def run_once(phases):
    pipeline = Pipeline("bench", *phases)
    reducer = pipeline.build_reducer()
    done = threading.Event()
    def middleware(dispatch, get_state):
        def wrapped(action):
            dispatch(action)
            if action.type in ("@@PIPELINE_COMPLETE", "@@PIPELINE_FAILED", "@@SAGA_ERROR"):
                if action.type == "@@SAGA_ERROR":
                    print("saga error:", action.payload, file=sys.stderr)
                done.set()
        return wrapped
    store = Store(reducer, None, (middleware,))
    start = time.perf_counter()
    store.run_saga(pipeline.build_saga()())
    if not done.wait(600):
        raise SystemExit("the run did not end")
    elapsed = time.perf_counter() - start
    status = store.state.status
    store.shutdown()
    if status != "completed":
        raise SystemExit(f"the run ended {status}")
    return elapsed

import sys
print(f"python {sys.version.split()[0]}, {N} phases, {RUNS} runs")
for name, shape in [("chain", chain), ("fan_out", fan_out), ("lattice", lattice)]:
    times = [run_once(shape(N)) for _ in range(RUNS)]
    print(f"{name}: best {min(times):.3f} s, mean {sum(times)/len(times):.3f} s")
EOF
