#!/usr/bin/env bash
# The Python-driven benchmarks end to end at smoke size with their peers absent (CI never has
# .venv-peers): each runs Kiln's side, says which peers it did not run and writes its report
# under $TEST_TMPDIR. compare has its own test (tests/benchmark_harness_test.sh).
source "$TEST_SRCDIR/kiln/benchmarks/smoke_lib.sh"

# ResNet-50 at 32x32, one step of batch 2 per configuration; an ISA this CPU lacks is reported
# unavailable, never run under another.
smoke amx_sample "$bench/amx_sample" --size 32 --batch 2 --steps 1 --warmup 0 --out "$out"
expect "$out/amx_sample.md" "^\| FP32 \| uncapped; effective [a-z0-9_]+ \| [0-9.]+ \|"
expect "$out/amx_sample.md" "^\| BF16 with AMX \| uncapped \(AMX\) \| (unavailable: .+|[0-9.]+) \|"

# Busy loops on 0 and 1 cores; two timed steps per setting.
smoke contention "$bench/contention" --quick --reps 1 --steps 2 --max_k 1 --out "$out"
expect "$out/contention.md" "^\| 0 \| [0-9.]+ \| [0-9]+ threads? \| [0-9]+ \| [0-9]+ \| [0-9]+ \|"
expect "$out/contention.md" "^\| 1 \| [0-9.]+ \| [0-9]+ threads? \|"
expect "$out/contention.md" "^targets: "

# The MLP: trained on 10000 images, exported, quantized, every Kiln engine at batches 1, 32, 256.
smoke inference "$bench/inference" --quick --models mlp --out "$out"
expect inference "^peers not run: ORT fp32 \(.*missing"
for batch in 32 256; do
  expect "$out/inference_quick.md" "^\| mlp \| $batch \| images/s \| [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9]+ \| n/a \(no peer\)"
done
expect "$out/inference_quick.md" "^\| mlp \| 10000 images, 1 epoch \| [0-9.]+% \|"

# torchvision's resnet10 as PyTorch exported it: imported, run fp32 and int8, agreement against
# Kiln's own fp32 (ONNX Runtime, the usual reference, is a peer).
smoke foreign_onnx "$bench/foreign_onnx" --quick --models resnet10 --out "$out"
expect foreign_onnx "^peers not run: ORT fp32 \(.*missing"
expect "$out/foreign_onnx_quick.md" "^\| resnet10 \| 256 \| images/s \| [0-9]+ \| [0-9]+ \| n/a \(ONNX Runtime not run\)"
expect "$out/foreign_onnx_quick.md" "^\| resnet10 \| 100\.00% \| [0-9.]+% \|$"
expect "$out/foreign_onnx_quick.md" "^targets: not checked \(ONNX Runtime not run\)"
echo PASS
