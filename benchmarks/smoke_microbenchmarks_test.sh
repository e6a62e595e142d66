#!/usr/bin/env bash
# The side-by-side micro-benchmarks end to end at smoke size: Google Benchmark binaries with a
# tiny --benchmark_min_time (every registered case still runs once or twice), the others with
# their sizes shrunk by flag. Each must print its table; the figures themselves mean nothing here.
source "$TEST_SRCDIR/kiln/benchmarks/smoke_lib.sh"
tiny=--benchmark_min_time=0.001

smoke overhead "$bench/overhead_benchmark" "$tiny"
expect overhead "^Matmul f32 +[0-9.]+ +[0-9.]+ +-?[0-9.]+%"
expect overhead "^Conv f32 +[0-9.]+ +[0-9.]+ +-?[0-9.]+%"
expect overhead "^KILN_BENCH_SMOKE=1: a smoke run; the targets above were not checked"

smoke depthwise "$bench/depthwise_benchmark" "$tiny"
for row in "forward f32" "forward \+ backward-data f32" "forward \+ backward-weights f32" "depthwise vs grouped f32"; do
  expect depthwise "^$row +[0-9.]+ +[0-9.]+ +[0-9.]+"
done
expect depthwise "^KILN_BENCH_SMOKE=1"

smoke concat "$bench/concat_benchmark" "$tiny"
expect concat "^rows +1000 +[0-9.]+ +[0-9.]+ +[0-9.]+x"
expect concat "^channels +2 +[0-9.]+ +[0-9.]+ +[0-9.]+x"

# The raw side checks its output against the op's before timing; a mismatch skips the
# benchmark, and its row would be missing.
smoke attention "$bench/attention_benchmark" "$tiny"
expect attention "^vit_b64_h4_t49_d16 +[0-9.]+ +[0-9.]+ +[0-9.]+x"
expect attention "^lm_b16_h4_t128_d32 +[0-9.]+ +[0-9.]+ +[0-9.]+x"

# One process per ISA cap the CPU has, each writing JSON the sweep reads back; one plain op and
# one training step (with its profile) keep it short.
smoke isa "$bench/isa_benchmark" "$tiny" "--benchmark_filter=BM_Matmul/0|BM_TrainStepMLP/0"
expect isa "^BM_Matmul/0/1024/real_time +[0-9.]+ "
expect isa "^BM_TrainStepMLP/0/real_time +[0-9.]+ \([0-9]+%\)"

smoke embedding "$bench/embedding_benchmark" --vocab 2000 --repeats 1
for row in "Adam +gather" "Adam +gather dense" "Adam +one_hot" "SGD +gather" "SGD +gather dense"; do
  expect embedding "^$row +[0-9.]+ +[0-9.]+$"
done
expect embedding "^Adam: gather dense/gather time [0-9.]+x"

# bf16 rows print only where the CPU has a native bf16 RNN, so only f32 rows are expected.
smoke rnn_split "$bench/rnn_split_benchmark" "$tiny"
expect rnn_split "^training +f32 +32 +[0-9.]+ +[0-9.]+ +[0-9.]+x +[0-9]+"
expect rnn_split "^inference +f32 +256 +[0-9.]+ +[0-9.]+ +[0-9.]+x +[0-9]+"
expect rnn_split "^f32 +32 +[0-9.]+ +[0-9.]+ +[0-9.]+x$"

smoke graph_validate "$bench/graph_validate_bench" --rounds 1
expect graph_validate "^validate: [0-9.]+ ms \(median of 1\)"
expect graph_validate "^ratio validate / optimize_for_inference: [0-9.]+"
# The composed LSTM is checked against oneDNN's before anything is timed (exit 1 on a
# mismatch); both dtypes where the CPU runs bf16 natively, else it says bf16 was skipped.
smoke rnn_composition "$bench/rnn_composition_benchmark" --batch 4 --reps 2 --warmup 1
expect rnn_composition "^f32 b4 +[0-9.]+ +[0-9.]+ +[0-9.]+ \| +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ \| +[0-9.]+x +[0-9.]+x$"
expect rnn_composition "^f32 b4 +y [0-9.e+-]+, h .* \(limit 1e-04\)$"
expect rnn_composition "^(bf16 b4 +y [0-9.e+-]+, h .*\(limit 5e-02\)|bf16: skipped, .*)$"
smoke rnn_composition_no_brgemm "$bench/rnn_composition_benchmark" --batch 3 --dtype f32 --reps 1 --warmup 0 --matmul no-brgemm
expect rnn_composition_no_brgemm "^f32 b3 +[0-9.]+ +[0-9.]+ +[0-9.]+ \| .* \| +[0-9.]+x +[0-9.]+x$"
smoke rnn_small_batch "$bench/rnn_small_batch" "$tiny"
expect rnn_small_batch "^lstm +1( +[0-9.]+){6} +[0-9.]+x +yes"
expect rnn_small_batch "^gru +64( +[0-9.]+){6} +[0-9.]+x +(yes|no)"
expect rnn_small_batch "^512 +256 +[0-9.]+ +[0-9.]+ +[0-9.]+x +(yes|no)"
echo PASS
