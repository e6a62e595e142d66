#!/usr/bin/env bash
# bazel run -c opt //benchmarks:foreign_onnx -- [--reps N] [--seconds S] [--threads T] [--quick]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -d "${RUNFILES_DIR:-}/kiln/benchmarks" ]]; then here="$RUNFILES_DIR/kiln/benchmarks"; fi
if [[ -d "$0.runfiles/kiln/benchmarks" ]]; then here="$0.runfiles/kiln/benchmarks"; fi
exec /usr/bin/python3 "$here/foreign_onnx_bench.py" "$@"
