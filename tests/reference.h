#pragma once
// Plain-loop reference implementations in double, used only by tests.
#include <array>
#include <functional>
#include <vector>

#include "tensor/tensor.h"

namespace kiln::ref {

struct RefTensor {
  Shape shape;
  std::vector<double> data;
  int64_t size() const { return static_cast<int64_t>(data.size()); }
};

RefTensor from(const Tensor& t);
Tensor to_tensor(const RefTensor& r, DType dtype = DType::f32);

RefTensor unary(const RefTensor& x, const std::function<double(double)>& f);
RefTensor binary(const RefTensor& a, const RefTensor& b, const std::function<double(double, double)>& f);
RefTensor matmul(const RefTensor& a, const RefTensor& b);  // batched, broadcasting batch dims
RefTensor linear(const RefTensor& x, const RefTensor& w, const RefTensor* bias, bool relu);

struct ConvParams {
  std::array<int64_t, 2> strides{1, 1};
  bool same = false;
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
  bool explicit_pads = false;  // then pads {top, left, bottom, right} replace `same`
  std::array<int64_t, 4> pads{0, 0, 0, 0};
};
RefTensor conv2d(const RefTensor& x, const RefTensor& w, const RefTensor* bias, const ConvParams& p);

struct PoolParams {
  std::array<int64_t, 2> pool{2, 2};
  std::array<int64_t, 2> strides{2, 2};
  bool same = false;
  bool explicit_pads = false;
  std::array<int64_t, 4> pads{0, 0, 0, 0};
};
RefTensor max_pool2d(const RefTensor& x, const PoolParams& p);
RefTensor avg_pool2d(const RefTensor& x, const PoolParams& p);  // padding excluded

RefTensor batch_norm_training(const RefTensor& x, const RefTensor& gamma, const RefTensor& beta, double eps,
                              RefTensor* mean = nullptr, RefTensor* var = nullptr);
RefTensor batch_norm_inference(const RefTensor& x, const RefTensor& gamma, const RefTensor& beta,
                               const RefTensor& mean, const RefTensor& var, double eps);

RefTensor softmax(const RefTensor& x, int axis, bool log);
enum class Reduce { sum, mean, max };
RefTensor reduce(const RefTensor& x, const std::vector<int>& axes, bool keepdims, Reduce kind);
RefTensor permute(const RefTensor& x, const std::vector<int>& perm);
RefTensor slice(const RefTensor& x, int axis, int64_t start, int64_t end, int64_t step);
RefTensor concat(const std::vector<RefTensor>& xs, int axis);

// softmax(scale * q @ k^T (+ mask), over the last axis) @ v for q [..., Tq, D], k [..., Tk, D],
// v [..., Tk, Dv]; a boolean mask keeps keys where > 0.5, an additive one adds (-inf drops the
// key); causal drops keys j > i. A query with no key left gets zero weights.
RefTensor attention(const RefTensor& q, const RefTensor& k, const RefTensor& v, const RefTensor* mask, double scale,
                    bool causal, bool boolean_mask);

double gelu_erf(double x);
double gelu_tanh(double x);

}  // namespace kiln::ref
