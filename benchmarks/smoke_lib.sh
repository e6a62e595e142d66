# Shared by benchmarks/smoke_*_test.sh: runs each benchmark a user can run at the smallest size
# and checks that the lines of its table were printed. Timings are never checked (the project
# forbids timed tests); KILN_BENCH_SMOKE=1 makes the binaries that exit non-zero on a missed
# speed target skip that verdict while still running every code path.
set -euo pipefail
export RUNFILES_DIR="${RUNFILES_DIR:-$TEST_SRCDIR}"
bench="$RUNFILES_DIR/kiln/benchmarks"
out="$TEST_TMPDIR"
export KILN_BENCH_SMOKE=1
# The drivers write their reports under the workspace and look for .venv-peers there by
# default: both point at this test's folder instead (the repo is never written; the peers are
# never installed in CI, so every driver runs with its peers absent).
export BUILD_WORKSPACE_DIRECTORY="$out"

# smoke NAME COMMAND...: runs COMMAND with its output in $out/NAME.log (shown when it fails).
smoke() {
  local name="$1" start=$SECONDS
  shift
  if ! "$@" > "$out/$name.log" 2>&1; then
    echo "FAIL: $name exited non-zero: $*"
    cat "$out/$name.log"
    exit 1
  fi
  echo "$name: $((SECONDS - start)) s"
}

# expect FILE REGEX: some line of FILE (a log of smoke's, or a report) matches REGEX (grep -E).
expect() {
  local file="$1"
  [[ "$file" == /* ]] || file="$out/$file.log"
  grep -qE -- "$2" "$file" || { echo "FAIL: no line of $file matches '$2'"; cat "$file"; exit 1; }
}
