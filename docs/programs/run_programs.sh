#!/usr/bin/env bash
# Runs each program given (paths to the docs' program binaries) with --smoke, where each
# takes it, and fails naming every program that exits non-zero.
set -uo pipefail
[ "$#" -gt 0 ] || { echo "run_programs.sh: no programs given" >&2; exit 1; }
failed=()
for program in "$@"; do
  name=$(basename "$program")
  echo "=== $name --smoke"
  start=$SECONDS
  if "$program" --smoke; then
    echo "=== $name passed in $((SECONDS - start)) s"
  else
    echo "=== $name FAILED (exit $?)"
    failed+=("$name")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "programs that failed: ${failed[*]}" >&2
  exit 1
fi
