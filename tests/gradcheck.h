#pragma once
// Forward checks against the double references and finite-difference gradient checks
// (central differences of the double reference, compared with the tape's gradients).
#include <functional>
#include <vector>

#include "autograd/gradient_tape.h"
#include "tests/reference.h"

namespace kiln::testing {

using KilnFn = std::function<Tensor(const std::vector<Tensor>&)>;
using RefFn = std::function<ref::RefTensor(const std::vector<ref::RefTensor>&)>;

// Tolerance for comparing a value a against a reference r: |a - r| <= atol + rtol * |r|.
struct Tolerance {
  double atol;
  double rtol;
};
constexpr Tolerance kF32{1e-5, 1e-4};
constexpr Tolerance kBf16{2e-2, 2e-2};  // bf16 keeps 8 significant bits

// Converts floating inputs to dtype, runs both, compares the outputs. Each mismatch is a gtest
// failure (the first five are printed with their values), so a caller needs no return value.
void expect_forward_matches(const KilnFn& f, const RefFn& r, const std::vector<Tensor>& inputs, Tolerance tol,
                            DType dtype = DType::f32);
// Compares tape gradients (f32) of sum(f(x) * R) with central differences of the reference.
void expect_gradients_match(const KilnFn& f, const RefFn& r, const std::vector<Tensor>& inputs,
                            Tolerance tol = {1e-3, 1e-3}, double step = 1e-6);
// Random f32 tensor, uniform in [low, high), deterministic for a seed.
Tensor rand_tensor(const Shape& shape, uint64_t seed, float low = -1.f, float high = 1.f);
// For comparing two paths of an op with several outputs: the outputs in f32, then the tape's
// gradients (f32, zeros where unconnected) of a fixed random projection of all of them,
// sum_k sum(outputs[k] * R_k), with respect to sources (watched on tape).
std::vector<Tensor> outputs_then_projected_gradients(GradientTape& tape, const std::vector<Tensor>& outputs,
                                                     const std::vector<Tensor>& sources);

}  // namespace kiln::testing
