#!/usr/bin/env bash
# Regenerates the measured tables of docs/benchmarks.md against the peers, on this machine, in
# one command: builds, runs //benchmarks:compare and //benchmarks:inference (under the timing
# lock, so no other benchmark overlaps), then copies benchmarks/results/compare.md and
# inference.md into the docs' <!-- results: ... --> blocks. Run it on a quiet machine.
#   bash benchmarks/regenerate.sh [--reps 3]        (an estimated 60-75 minutes on 2 cores)
# Needs .venv-peers (bash scripts/setup --peers); a peer missing from it is named in the tables.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
reps=3
if [[ "${1:-}" == "--reps" ]]; then reps="$2"; fi
lock=/work/.timing.lock
[[ -w "$(dirname "$lock")" ]] || lock="${TMPDIR:-/tmp}/kiln_timing.lock"
load=$(cut -d' ' -f1 /proc/loadavg)
echo "regenerate: load average $load at start (the tables are only as good as the machine is quiet)"
bazel build //benchmarks:compare //benchmarks:inference
flock -o -x "$lock" bazel run //benchmarks:compare -- --reps "$reps"
flock -o -x "$lock" bazel run //benchmarks:inference -- --reps "$reps"
python3 benchmarks/splice_results.py docs/benchmarks.md
echo "regenerate: load average $(cut -d' ' -f1 /proc/loadavg) at the end"
