#!/usr/bin/env bash
# //benchmarks:scaling end to end at smoke size on this host: the Keras CNN for one step at
# 1 process and at every N that divides the cores (mpirun, shared memory), the allreduce sweep
# and the report. The two-emulated-hosts mode (--two_hosts: network namespaces, root) is not run.
source "$TEST_SRCDIR/kiln/benchmarks/smoke_lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$out/benchmarks/results"

smoke scaling "$bench/scaling" --reps 1 --steps 1 --models cnn
report="$out/benchmarks/results/scaling.md"
expect "$report" "^\| cnn \| 64 \| 1 x [0-9]+ threads \| [0-9.]+ \| [0-9]+ \| 1\.00x \|"
expect "$report" "^\| cnn \| [0-9.]+ \| [0-9.]+ \| [-+][0-9.]+% \|"
expect "$report" "^\| 64 MB \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|"
# Refused by name, before any rank starts.
if "$bench/scaling" --models lstm > "$out/bad.log" 2>&1; then
  echo "FAIL: scaling accepted --models lstm"
  exit 1
fi
expect bad "--models takes a comma-separated subset of cnn,resnet18, got 'lstm'"
echo PASS
