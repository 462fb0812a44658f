#!/usr/bin/env bash
# B3 (issue 4, knowledge/performance.md B3): durable questionnaire ingest with per-submission
# scoring, side by side with its peers in ONE run.
#
#   ours  : `tapestry bench ingest` — the real pipeline (validate, score, reliable change vs the
#           episode baseline, not-on-track, risk flag + clinician task) committed through the
#           store: single-submission commits on WAL FULL and WAL NORMAL, and group commit
#           (batches of up to GROUP_BATCH [4096] submissions or 1 ms) on WAL FULL: one fsync
#           per group, each submission acknowledged only after its group's commit.
#   peer  : bench/b3_peer.py — Python sqlite3, Tapestry's own migrations, the same pragmas, the
#           same statements per transaction, scoring in Python; plus a raw write+fsync loop in
#           the same directory (the hardware ceiling for durable single commits).
#
# Equal results are checked first (rows and checksums of both databases must match), then the
# figures are printed: submissions/s, p50/p99 commit latency, ratios vs the peer and vs fsync.
# Every run starts on a fresh data directory after `sync; sleep 2` (fsync-bound figures are
# polluted by dirty pages otherwise); each configuration runs RUNS times and the median is kept.
#
# Environment (defaults in brackets): SINGLE [20000] single commits per run, GROUP [200000]
# group-committed submissions per run, GROUP_BATCH [4096] largest group, CLIENTS [2000],
# ROUND_SECONDS [604800] seconds between a client's submissions (weekly; 0 = all at once),
# RUNS [3], FSYNC [5000] fsync writes, STEP_TIMEOUT [600] seconds per step, B3_DIR
# [target/b3] where the databases live.
#
# Figures and what each optimisation pass changed: docs/measurement.md, "B3". On this shared
# 2-core machine wall rates swing with other helpers' load (note `uptime` and the fsync-loop
# line with every figure); to judge a change, alternate single group runs of the two binaries
# on fresh data directories and compare CPU time (user + system per 200,000 submissions).
# Latest (22 Nov 2026, 01:52 and 02:22 UTC, fsync loop 2,522 and 3,799 writes/s, SINGLE=10000):
# group commit medians 54,138 and 50,916/s (every run 50,372-58,995; peer 15,889 and 17,707/s);
# single commits WAL FULL 105 % and 121 % of the peer; the lane decides on a second thread while
# it writes (docs/measurement.md, fifth pass).
set -euo pipefail
cd "$(dirname "$0")/.."

SINGLE=${SINGLE:-20000}
GROUP=${GROUP:-200000}
CLIENTS=${CLIENTS:-2000}
GROUP_BATCH=${GROUP_BATCH:-4096}
ROUND_SECONDS=${ROUND_SECONDS:-604800}
RUNS=${RUNS:-3}
FSYNC=${FSYNC:-5000}
STEP_TIMEOUT=${STEP_TIMEOUT:-600}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
B3_DIR=${B3_DIR:-$CARGO_TARGET_DIR/b3}

echo "B3: building tapestry (release)…" >&2
cargo build --release -q -p tapestry -p tapestry-bench
BIN="$CARGO_TARGET_DIR/release/tapestry"
SCORE_BIN="$CARGO_TARGET_DIR/release/score_phq9"

mkdir -p "$B3_DIR"
WORK=$(mktemp -d "$B3_DIR/run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"

settle() { sync; sleep 2; }

# ours NAME SYNC COUNT BATCH RUN
ours() {
  local dir="$WORK/$1-ours-$5"
  settle
  env -u DATABASE_URL TAPESTRY_LOG=warn timeout "$STEP_TIMEOUT" \
    "$BIN" bench ingest --data-dir "$dir" --count "$3" --batch "$4" --clients "$CLIENTS" \
    --round-seconds "$ROUND_SECONDS" --synchronous "$2" > "$WORK/ids" 2> "$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  local acked
  acked=$(wc -l < "$WORK/ids")
  [ "$acked" -eq "$3" ] || { echo "B3: $1 acknowledged $acked of $3" >&2; exit 1; }
  local line
  line=$(grep '^{' "$WORK/err" | tail -1)
  local check
  check=$(python3 bench/b3_peer.py check "$dir/tapestry.db")
  echo "{\"config\":\"$1\",\"side\":\"ours\",\"run\":$5,\"result\":$line,\"check\":$check}" >> "$RESULTS"
  rm -rf "$dir"
}

# peer NAME SYNC COUNT BATCH RUN
peer() {
  local dir="$WORK/$1-peer-$5"
  settle
  local line
  line=$(timeout "$STEP_TIMEOUT" python3 bench/b3_peer.py ingest "$dir" --count "$3" --batch "$4" \
    --clients "$CLIENTS" --round-seconds "$ROUND_SECONDS" --synchronous "$2")
  local check
  check=$(python3 bench/b3_peer.py check "$dir/tapestry.db")
  echo "{\"config\":\"$1\",\"side\":\"peer\",\"run\":$5,\"result\":$line,\"check\":$check}" >> "$RESULTS"
  rm -rf "$dir"
}

for run in $(seq 1 "$RUNS"); do
  echo "B3: run $run of $RUNS…" >&2
  settle
  line=$(timeout "$STEP_TIMEOUT" python3 bench/b3_peer.py fsync "$WORK" --count "$FSYNC")
  echo "{\"config\":\"fsync\",\"side\":\"peer\",\"run\":$run,\"result\":$line}" >> "$RESULTS"
  ours  single_full   full   "$SINGLE" 1   "$run"
  peer  single_full   full   "$SINGLE" 1   "$run"
  ours  single_normal normal "$SINGLE" 1   "$run"
  peer  single_normal normal "$SINGLE" 1   "$run"
  ours  group_full    full   "$GROUP"  "$GROUP_BATCH" "$run"
  peer  group_full    full   "$GROUP"  "$GROUP_BATCH" "$run"
done

SCORE_LINE=$(timeout "$STEP_TIMEOUT" "$SCORE_BIN" 2000000)

python3 - "$RESULTS" "$SCORE_LINE" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
score = json.loads(sys.argv[2])
ok = True
# 1. Equal results: every run of a configuration, ours and peer, must have identical checks.
for config in ("single_full", "single_normal", "group_full"):
    checks = {json.dumps(r["check"], sort_keys=True) for r in rows if r["config"] == config}
    if len(checks) != 1:
        ok = False
        print(f"MISMATCH {config}: " + " | ".join(sorted(checks)))
    else:
        print(f"equal results {config}: {checks.pop()}")
if not ok:
    sys.exit("B3: results differ between Tapestry and the peer; figures not reported")

def median(config, side, key):
    vals = [r["result"][key] for r in rows if r["config"] == config and r["side"] == side]
    return statistics.median(vals) if vals else float("nan")

fsync = median("fsync", "peer", "writes_per_s")
print(f"\nraw fsync loop: {fsync:,.0f} writes/s (p99 {median('fsync','peer','p99_us'):,.0f} µs)")
print(f"{'configuration':<16}{'side':<6}{'subm/s':>10}{'p50 µs':>10}{'p99 µs':>10}{'vs peer':>9}{'vs fsync':>9}")
summary = {"fsync_writes_per_s": fsync, "score_ns_per_submission": score["ns_per_submission"]}
for config in ("single_full", "single_normal", "group_full"):
    peer = median(config, "peer", "submissions_per_s")
    for side in ("ours", "peer"):
        rate = median(config, side, "submissions_per_s")
        print(f"{config:<16}{side:<6}{rate:>10,.0f}{median(config, side, 'p50_commit_us'):>10,.0f}"
              f"{median(config, side, 'p99_commit_us'):>10,.0f}{rate / peer:>8.0%} {rate / fsync:>8.0%}")
        summary[f"{config}_{side}_per_s"] = rate
        summary[f"{config}_{side}_p99_us"] = median(config, side, "p99_commit_us")
print("\nevery run (subm/s; ours also µs of CPU per submission, all threads):")
for config in ("single_full", "single_normal", "group_full"):
    for side in ("ours", "peer"):
        runs = [r["result"] for r in rows if r["config"] == config and r["side"] == side]
        cells = [f"{x['submissions_per_s']:,.0f}" + (f" ({x['cpu_us_per_submission']} µs)" if x.get("cpu_us_per_submission") is not None else "") for x in runs]
        print(f"  {config:<16}{side:<6}" + ", ".join(cells))
print(f"\nscoring alone (score_phq9): {score['ns_per_submission']} ns per submission")
single = summary["single_full_ours_per_s"] / summary["single_full_peer_per_s"]
print("\ntargets:")
print(f"  single commits (WAL FULL) >= 90% of peer: {single:.0%} -> {'met' if single >= 0.9 else 'NOT met'}")
g = summary["group_full_ours_per_s"]
print(f"  group commit >= 50,000 submissions/s: {g:,.0f} -> {'met' if g >= 50000 else 'NOT met'}")
s = score["ns_per_submission"]
print(f"  scoring < 1 µs per submission: {s} ns -> {'met' if s < 1000 else 'NOT met'}")
print("\n" + json.dumps({"b3": summary}))
EOF
