#!/usr/bin/env bash
# Matching benchmarks B1 (instant match) and B2 (batch assignment, sparse and dense):
# Tapestry side by side with numpy, scipy and OR-Tools in one run. Results are
# compared first (exit 1 if any differs); then timings and ratios are printed.
#
# Environment: MATCH_OUT (output dir, default bench/out/matching), MATCH_VENV
# (throwaway venv, default bench/.venv), MATCH_QUERIES (B1 sign-ups, default 100000),
# MATCH_SKIP_DENSE_SLOTS=1 to skip scipy's dense LSA on the slot-expanded B2 graph
# (needs ~2 GB and tens of seconds).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${MATCH_OUT:-$ROOT/bench/out/matching}
VENV=${MATCH_VENV:-$ROOT/bench/.venv}
QUERIES=${MATCH_QUERIES:-100000}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check numpy scipy ortools
"$VENV/bin/python" -c 'import numpy, scipy, ortools, platform; print(f"peers: numpy {numpy.__version__}, scipy {scipy.__version__}, ortools {ortools.__version__}, Python {platform.python_version()}")'

(cd "$ROOT" && CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 cargo build --release -q -p tapestry-bench --bin match_bench)

PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c 0); fi
mkdir -p "$OUT"
echo "generating instances and timing Tapestry (seeded) ..."
"${PIN[@]}" "$TARGET/release/match_bench" "$OUT" "$QUERIES" > "$OUT/rust_stdout.json"
echo "running peers and comparing results ..."
"${PIN[@]}" "$VENV/bin/python" "$ROOT/bench/matching/peer.py" "$OUT"
