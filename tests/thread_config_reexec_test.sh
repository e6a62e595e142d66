#!/bin/bash
# apply_best_known_config restarts a program that lacks some of its OpenMP variables. With
# OMP_PROC_BIND set by the user, the OpenMP runtime has already bound the first thread to one
# CPU before that restart; the restarted program must still see, and bind its team over, every
# CPU (it once ran both threads of OMP_NUM_THREADS=2 on CPU 0).
set -euo pipefail
probe="${RUNFILES_DIR:-$TEST_SRCDIR}/kiln/tests/thread_config_probe"
[ -x "$probe" ] || { echo "thread_config_probe not found"; exit 1; }
cpus=$(nproc)
if [ "$cpus" -lt 2 ]; then
  echo "skipped: this machine gives the test $cpus CPU (the bug needs two)"
  exit 0
fi
out=$(env -u GOMP_SPINCOUNT -u OMP_WAIT_POLICY -u KILN_THREAD_CONFIG_APPLIED -u KILN_TOPOLOGY \
      OMP_NUM_THREADS=2 OMP_PROC_BIND=close OMP_PLACES=cores "$probe")
echo "$out"
first=$(echo "$out" | awk '$1 == "thread" && $2 == 0 {print $4}')
second=$(echo "$out" | awk '$1 == "thread" && $2 == 1 {print $4}')
[ -n "$first" ] && [ -n "$second" ] || { echo "FAIL: the probe did not report two threads"; exit 1; }
if [ "$first" = "$second" ]; then
  echo "FAIL: both OpenMP threads are bound to CPUs $first after the restart"
  exit 1
fi
echo "$out" | grep -q "^config 1 physical core" && { echo "FAIL: the restarted config saw one core of $cpus"; exit 1; }
echo "ok: threads bound to CPUs $first and $second"
