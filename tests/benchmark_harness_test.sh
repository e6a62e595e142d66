#!/usr/bin/env bash
# The comparison benchmarks' Kiln side runs end to end without the peers (.venv-peers is never
# there in CI): compare on the MLP with no peer (FLOPs counted, peak measured, table written),
# and kiln_infer_bench's Fashion-MNIST path (train, write the shared data, accuracy of fp32 and
# int8 calibrated on those images). Timings here are smoke, never checked.
set -euo pipefail
export RUNFILES_DIR="${RUNFILES_DIR:-$TEST_SRCDIR}"
bench="$RUNFILES_DIR/kiln/benchmarks"
out="$TEST_TMPDIR"

"$bench/compare" --quick --models mlp --peers "" --out "$out" > "$out/compare.log" 2>&1 ||
  { cat "$out/compare.log"; exit 1; }
grep -q "^| mlp | 32 | f32 | " "$out/compare_quick.md" || { echo "no MLP f32 row"; cat "$out/compare_quick.md"; exit 1; }
grep -qE "^\| mlp \| 32 \| bf16 \| 0\.015 \| [0-9]+ " "$out/compare_quick.md" ||
  { echo "no percent-of-peak row with the MLP's 0.015 GFLOP per step"; cat "$out/compare_quick.md"; exit 1; }
grep -q "measured peak (GFLOP/s" "$out/compare_quick.md" || { echo "no measured peak"; exit 1; }
# An unknown peer is refused by name.
if "$bench/compare" --quick --models mlp --peers tensorflow --out "$out" > "$out/bad.log" 2>&1; then
  echo "compare accepted an unknown peer"; exit 1
fi
grep -q "unknown peer(s) tensorflow" "$out/bad.log" || { cat "$out/bad.log"; exit 1; }

# The sequence workloads train, count their FLOPs and have their PyTorch twins' trainable
# parameter counts (benchmarks/torch_sequence_models.py prints 138890, 81674 and 821068).
for model_params in vit:138890 lstm:81674 lm:821068; do
  model="${model_params%%:*}"
  printed=$("$bench/kiln_train_bench" --model "$model" --batch 4 --steps 2 --warmup 1 --profile_steps 0)
  [[ "$printed" == *"trainable_params=${model_params#*:}"* && "$printed" == *images_per_sec=* ]] ||
    { echo "$model: $printed"; exit 1; }
  [[ "$printed" =~ flops_per_step=[1-9] ]] || { echo "$model counted no FLOPs: $printed"; exit 1; }
done

infer="$bench/kiln_infer_bench"
"$infer" --model mlp --train "$out/mlp.weights" --train_images 2048 --epochs 1 > /dev/null
"$infer" --model mlp --write_data "$out" --calib_images 64 > /dev/null
for engine in inference int8; do
  acc=$("$infer" --model mlp --engine "$engine" --weights "$out/mlp.weights" --calib "$out/mlp_calib.npy" \
        --accuracy_x "$out/mlp_test_x.npy" --accuracy_y "$out/mlp_test_y.npy" | sed -n 's/^accuracy=\([0-9.]*\).*/\1/p')
  # 2048 images, one epoch: well above chance (0.10) when training, export and evaluation agree.
  python3 -c "import sys; a=float('$acc'); sys.exit(0 if a > 0.5 else 1)" || { echo "$engine accuracy $acc"; exit 1; }
  echo "mlp $engine accuracy $acc"
done

# MobileNetV3Small's traced models and ONNX files run only at the batch they were traced with
# (--trace_batch): accuracy in batches of 250, timing at 32, export at 32. Its accuracy after
# 256 images is near chance, so only that every path runs is checked.
"$infer" --model mobilenet_v3_small --train "$out/mnv3.weights" --train_images 256 --epochs 1 > /dev/null
"$infer" --model mobilenet_v3_small --write_data "$out" --calib_images 256 --test_images 500 > /dev/null
for engine in inference int8; do
  common=(--model mobilenet_v3_small --engine "$engine" --weights "$out/mnv3.weights"
          --calib "$out/mobilenet_v3_small_calib.npy")
  printed=$("$infer" "${common[@]}" --trace_batch 250 --accuracy_x "$out/mobilenet_v3_small_test_x.npy" \
            --accuracy_y "$out/mobilenet_v3_small_test_y.npy")
  [[ "$printed" == accuracy=*" images=500"* ]] || { echo "mobilenet_v3_small $engine accuracy: $printed"; exit 1; }
  printed=$("$infer" "${common[@]}" --trace_batch 32 --batch 32 --seconds 0.05)
  [[ "$printed" == *images_per_sec=* ]] || { echo "mobilenet_v3_small $engine timing: $printed"; exit 1; }
done
printed=$("$infer" --model mobilenet_v3_small --weights "$out/mnv3.weights" --trace_batch 32 \
          --export_onnx "$out/mnv3_b32.onnx")
[[ "$printed" == exported=* ]] || { echo "mobilenet_v3_small export: $printed"; exit 1; }
echo "mobilenet_v3_small: accuracy, timing and export at their traced batches"
echo "PASS"
