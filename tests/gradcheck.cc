#include "tests/gradcheck.h"

#include <gtest/gtest.h>

#include <cmath>

#include "autograd/gradient_tape.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"

namespace kiln::testing {

Tensor rand_tensor(const Shape& shape, uint64_t seed, float low, float high) {
  return random_uniform(shape, low, high, seed);
}

void expect_forward_matches(const KilnFn& f, const RefFn& r, const std::vector<Tensor>& inputs, Tolerance tol,
                            DType dtype) {
  std::vector<Tensor> cast_inputs;
  std::vector<ref::RefTensor> ref_inputs;
  for (const Tensor& t : inputs) {
    Tensor c = is_floating(t.dtype()) ? cast(t, dtype) : t;
    cast_inputs.push_back(c);
    ref_inputs.push_back(ref::from(c));  // the reference sees the same (rounded) values
  }
  Tensor out = f(cast_inputs);
  ref::RefTensor expected = r(ref_inputs);
  ASSERT_EQ(out.shape(), expected.shape) << "output shape " << shape_str(out.shape()) << " vs reference "
                                         << shape_str(expected.shape);
  EXPECT_EQ(out.dtype(), dtype);
  std::vector<float> got = out.to_vector();
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double e = expected.data[i];
    if (!(std::fabs(got[i] - e) <= tol.atol + tol.rtol * std::fabs(e))) {
      if (++bad <= 5) ADD_FAILURE() << "element " << i << ": got " << got[i] << ", reference " << e;
    }
  }
  EXPECT_EQ(bad, 0) << bad << " of " << got.size() << " elements differ";
}

void expect_gradients_match(const KilnFn& f, const RefFn& r, const std::vector<Tensor>& inputs, Tolerance tol,
                            double step) {
  std::vector<ref::RefTensor> ref_inputs;
  for (const Tensor& t : inputs) ref_inputs.push_back(ref::from(t));
  ref::RefTensor out0 = r(ref_inputs);
  ref::RefTensor proj = ref::from(rand_tensor(out0.shape, 4242, -1.f, 1.f));
  auto loss = [&](const std::vector<ref::RefTensor>& xs) {
    ref::RefTensor y = r(xs);
    double s = 0;
    for (int64_t i = 0; i < y.size(); ++i) s += y.data[i] * proj.data[i];
    return s;
  };

  std::vector<Tensor> grads;
  {
    GradientTape tape;
    for (const Tensor& t : inputs) {
      if (is_floating(t.dtype())) tape.watch(t);
    }
    Tensor y = f(inputs);
    Tensor l = reduce_sum(y * ref::to_tensor(proj, y.dtype()));
    grads = tape.gradient(l, inputs, Tensor(), UnconnectedGradients::zero);
  }
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!is_floating(inputs[k].dtype())) continue;
    ASSERT_TRUE(grads[k].defined()) << "no gradient for input " << k;
    ASSERT_EQ(grads[k].shape(), inputs[k].shape()) << "gradient shape for input " << k;
    std::vector<float> analytic = grads[k].to_vector();
    int bad = 0;
    for (int64_t i = 0; i < ref_inputs[k].size(); ++i) {
      auto plus = ref_inputs, minus = ref_inputs;
      plus[k].data[i] += step;
      minus[k].data[i] -= step;
      double numeric = (loss(plus) - loss(minus)) / (2 * step);
      if (!(std::fabs(analytic[i] - numeric) <= tol.atol + tol.rtol * std::fabs(numeric))) {
        if (++bad <= 5) {
          ADD_FAILURE() << "input " << k << " element " << i << ": analytic " << analytic[i] << ", numeric "
                        << numeric;
        }
      }
    }
    EXPECT_EQ(bad, 0) << "input " << k << ": " << bad << " of " << analytic.size() << " gradient entries differ";
  }
}

std::vector<Tensor> outputs_then_projected_gradients(GradientTape& tape, const std::vector<Tensor>& outputs,
                                                     const std::vector<Tensor>& sources) {
  Tensor loss;
  uint64_t seed = 900;
  for (const Tensor& y : outputs) {
    Tensor term = reduce_sum(cast(y, DType::f32) * rand_tensor(y.shape(), seed++));
    loss = loss.defined() ? loss + term : term;
  }
  std::vector<Tensor> result;
  for (const Tensor& y : outputs) result.push_back(cast(y, DType::f32));
  for (const Tensor& g : tape.gradient(loss, sources, Tensor(), UnconnectedGradients::zero)) result.push_back(g);
  return result;
}

}  // namespace kiln::testing
