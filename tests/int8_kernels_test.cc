// InferenceModel's int8 kernels (oneDNN int8 conv/matmul/reorder/pool) against the eager
// quantized ops that define them (tensor/ops/quantized.h): each node alone within one
// quantization step, and chains that keep data in int8 between layers.
#include <gtest/gtest.h>

#include <cmath>

#include "graph/trace.h"
#include "runtime_export/inference_model.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"

namespace kiln {
namespace {

using runtime_export::InferenceModel;

Tensor s8_weights(const Shape& s, uint64_t seed) { return cast(random_uniform(s, -127.f, 127.f, seed), DType::s8); }

std::vector<float> channel_scales(int64_t n, uint64_t seed) { return random_uniform({n}, 0.002f, 0.01f, seed).to_vector(); }

// Runs the traced graph eagerly and through the runtime (no passes), returns the largest
// difference in units of `step`, and checks the runtime used no eager fallback.
double max_steps(const graph::Graph& g, const Tensor& x, double step) {
  InferenceModel m(g, {.optimize = false});
  EXPECT_EQ(m.fallback_steps({x.shape()}), 0) << m.describe_plan({x.shape()});
  std::vector<float> want = g.run(x).to_vector(), got = m.run(x).to_vector();
  EXPECT_EQ(want.size(), got.size());
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(double(want[i]) - double(got[i])) / step);
  return worst;
}

TEST(Int8Kernels, QuantizeAndDequantizeRoundTrip) {
  auto fn = [](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{dequantize_linear(quantize_linear(in[0], 0.02f, 0, DType::s8), 0.02f, 0) +
                               dequantize_linear(quantize_linear(in[0], 0.01f, 3, DType::u8), 0.01f, 3)};
  };
  Tensor x = random_uniform({4, 6, 6, 5}, -2.f, 2.f, 1);
  EXPECT_LE(max_steps(graph::trace(fn, {x}), x, 0.01), 1.001);
}

TEST(Int8Kernels, ConvWithReluPoolAndDenseStayInInt8) {
  Tensor w1 = s8_weights({3, 3, 3, 8}, 2), w2 = s8_weights({72, 10}, 3);
  Tensor b1 = random_uniform({8}, -0.2f, 0.2f, 4), b2 = random_uniform({10}, -0.2f, 0.2f, 5);
  QuantizedEpilogue q1{.x_scale = 1.f / 127, .w_scales = channel_scales(8, 6), .activation = Epilogue::relu,
                       .out_scale = 0.02f, .out_dtype = DType::u8};
  QuantizedEpilogue q2{.x_scale = 0.02f, .w_scales = channel_scales(10, 7), .out_dtype = DType::f32};
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor h = qconv2d(quantize_linear(in[0], 1.f / 127, 0, DType::s8), w1, b1, Tensor(), {.padding = Padding::same}, q1);
    h = reshape(max_pool2d(h, {.pool_size = {2, 2}}), {in[0].shape()[0], 72});
    return std::vector<Tensor>{qlinear(h, w2, b2, Tensor(), q2)};
  };
  Tensor x = random_uniform({3, 6, 6, 3}, -1.f, 1.f, 8);
  graph::Graph g = graph::trace(fn, {x}, {{"w1", w1}, {"w2", w2}, {"b1", b1}, {"b2", b2}});
  // One u8 step of the hidden layer moves the f32 output by about sum |w2 * scale| * 0.02.
  EXPECT_LE(max_steps(g, x, 0.02), 2.0);
  Tensor out = InferenceModel(g, {.optimize = false}).run(x);
  double largest = 0;
  for (float v : out.to_vector()) largest = std::max(largest, std::fabs(double(v)));
  EXPECT_GT(largest, 0.05) << "degenerate";
}

TEST(Int8Kernels, ResidualAddInItsOwnTypeAndGelu) {
  Tensor wa = s8_weights({1, 1, 4, 6}, 10), wb = s8_weights({3, 3, 4, 6}, 11), wc = s8_weights({3, 3, 6, 6}, 12);
  Tensor b = random_uniform({6}, -0.1f, 0.1f, 13);
  QuantizedEpilogue qa{.x_scale = 0.01f, .w_scales = channel_scales(6, 14), .out_scale = 0.01f, .out_dtype = DType::s8};
  QuantizedEpilogue qb{.x_scale = 0.01f, .w_scales = channel_scales(6, 15), .residual_scale = 0.01f,
                       .activation = Epilogue::relu, .out_scale = 0.015f, .out_dtype = DType::u8};
  QuantizedEpilogue qc{.x_scale = 0.015f, .w_scales = channel_scales(6, 16), .activation = Epilogue::gelu_erf,
                       .out_scale = 0.01f, .out_dtype = DType::s8};
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor x8 = quantize_linear(in[0], 0.01f, 0, DType::s8);
    Tensor skip = qconv2d(x8, wa, b, Tensor(), {}, qa);
    Tensor h = qconv2d(x8, wb, b, skip, {.padding = Padding::same}, qb);  // u8 out, s8 residual
    return std::vector<Tensor>{dequantize_linear(qconv2d(h, wc, b, Tensor(), {.padding = Padding::same}, qc), 0.01f, 0)};
  };
  Tensor x = random_uniform({2, 5, 5, 4}, -1.f, 1.f, 17);
  graph::Graph g = graph::trace(fn, {x}, {{"wa", wa}, {"wb", wb}, {"wc", wc}, {"b", b}});
  EXPECT_LE(max_steps(g, x, 0.01), 3.0);
}

}  // namespace
}  // namespace kiln
