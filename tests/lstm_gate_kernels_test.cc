// The composed LSTM's gate kernels (tensor/ops/lstm_gate_kernels.h) in every build this CPU
// can run: their exp, sigmoid and tanh against the C library, and one forward and one backward
// step against a double-precision reference, in f32 and bf16, over unit ranges that split
// vectors, with a row stride for h, and with and without dy.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "tensor/ops/lstm_gate_kernels.h"

namespace kiln {
namespace {

using rnn_detail::GateIsa;

std::vector<GateIsa> gate_isas() {
  std::vector<GateIsa> out{GateIsa::baseline};
  if (rnn_detail::gate_isa() >= GateIsa::avx512) out.push_back(GateIsa::avx512);
  if (rnn_detail::gate_isa() >= GateIsa::avx512_bf16) out.push_back(GateIsa::avx512_bf16);
  return out;
}

const char* isa_label(GateIsa isa) {
  return isa == GateIsa::avx512_bf16 ? "avx512_bf16" : isa == GateIsa::avx512 ? "avx512" : "baseline";
}

TEST(LstmGateKernels, ExpSigmoidAndTanhAreAccurateToF32) {
  std::vector<float> x;
  for (double v = -87.0; v <= 88.0; v += 1.0 / 1024) x.push_back(static_cast<float>(v));
  const int64_t n = static_cast<int64_t>(x.size());
  for (GateIsa isa : gate_isas()) {
    std::vector<float> e(n), s(n), t(n);
    rnn_detail::gate_math(rnn_detail::GateFunction::exp, x.data(), e.data(), n, isa);
    rnn_detail::gate_math(rnn_detail::GateFunction::sigmoid, x.data(), s.data(), n, isa);
    rnn_detail::gate_math(rnn_detail::GateFunction::tanh, x.data(), t.data(), n, isa);
    double exp_rel = 0, sigmoid_abs = 0, sigmoid_rel = 0, tanh_abs = 0;
    for (int64_t k = 0; k < n; ++k) {
      const double v = x[k], want_e = std::exp(v), want_s = 1 / (1 + std::exp(-v)), want_t = std::tanh(v);
      exp_rel = std::max(exp_rel, std::abs(e[k] - want_e) / want_e);
      sigmoid_abs = std::max(sigmoid_abs, std::abs(s[k] - want_s));
      if (want_s > 1e-30) sigmoid_rel = std::max(sigmoid_rel, std::abs(s[k] - want_s) / want_s);
      tanh_abs = std::max(tanh_abs, std::abs(t[k] - want_t));
    }
    std::printf("%s, max error over [-87, 88]: exp relative %.3g, sigmoid absolute %.3g relative %.3g, tanh absolute %.3g\n",
                isa_label(isa), exp_rel, sigmoid_abs, sigmoid_rel, tanh_abs);
    EXPECT_LT(exp_rel, 3e-7) << isa_label(isa);
    EXPECT_LT(sigmoid_abs, 2e-7) << isa_label(isa);
    EXPECT_LT(sigmoid_rel, 5e-7) << isa_label(isa);
    EXPECT_LT(tanh_abs, 3e-7) << isa_label(isa);
  }
}

TEST(LstmGateKernels, SaturateWithoutNaNOutsideTheExpRange) {
  const std::vector<float> x{-1e30f, -1000.f, -90.f, 90.f, 1000.f, 1e30f};
  const int64_t n = static_cast<int64_t>(x.size());
  for (GateIsa isa : gate_isas()) {
    std::vector<float> s(n), t(n);
    rnn_detail::gate_math(rnn_detail::GateFunction::sigmoid, x.data(), s.data(), n, isa);
    rnn_detail::gate_math(rnn_detail::GateFunction::tanh, x.data(), t.data(), n, isa);
    for (int64_t k = 0; k < n; ++k) {
      const bool positive = x[k] > 0;
      EXPECT_NEAR(s[k], positive ? 1.0 : 0.0, 1e-30) << isa_label(isa) << " sigmoid(" << x[k] << ")";
      EXPECT_EQ(t[k], positive ? 1.f : -1.f) << isa_label(isa) << " tanh(" << x[k] << ")";
    }
  }
}

float bf16_value(uint16_t v) { return std::bit_cast<float>(static_cast<uint32_t>(v) << 16); }
double sigmoid_ref(double x) { return 1 / (1 + std::exp(-x)); }

struct StepData {
  int64_t batch, units, h_stride, y_stride;
  std::vector<float> pre, c_prev, dy, dh_recurrent, dc_next;
};

StepData make_step(int64_t batch, int64_t units, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> wide(-6.f, 6.f), narrow(-1.f, 1.f);
  StepData d{batch, units, units + 5, 3 * units, {}, {}, {}, {}, {}};
  for (int64_t k = 0; k < batch * 4 * units; ++k) d.pre.push_back(wide(rng));
  for (int64_t k = 0; k < batch * units; ++k) {
    d.c_prev.push_back(2 * narrow(rng));
    d.dh_recurrent.push_back(narrow(rng));
    d.dc_next.push_back(narrow(rng));
  }
  for (int64_t k = 0; k < batch * d.y_stride; ++k) d.dy.push_back(narrow(rng));
  return d;
}

// Runs one forward step and one backward step over the units in `ranges` and checks every
// output against the formulas in double precision.
template <typename Data>
void check_step(const StepData& d, GateIsa isa, bool with_dy, const std::vector<std::pair<int64_t, int64_t>>& ranges) {
  const int64_t b = d.batch, u = d.units;
  const bool bf16 = sizeof(Data) == 2;
  const double tol = bf16 ? 1e-2 : 2e-6;
  auto as_double = [](Data v) -> double {
    if constexpr (sizeof(Data) == 2) {
      return bf16_value(v);
    } else {
      return v;
    }
  };
  std::vector<float> gates = d.pre, c_next(b * u, -7.f);
  std::vector<Data> h(b * d.h_stride, Data{}), y(b * d.y_stride, Data{});
  rnn_detail::GateForwardStep f;
  f.batch = b, f.units = u, f.bf16 = bf16, f.gates = gates.data(), f.c_prev = d.c_prev.data(), f.c_next = c_next.data();
  f.h_next = h.data(), f.h_row_stride = d.h_stride, f.y = y.data(), f.y_row_stride = d.y_stride;
  for (auto [j0, j1] : ranges) rnn_detail::lstm_gates_forward(f, j0, j1, isa);

  std::vector<float> dc = d.dc_next, dbias(4 * u, 0.5f);
  std::vector<Data> dgates(b * 4 * u, Data{});
  rnn_detail::GateBackwardStep g;
  g.batch = b, g.units = u, g.bf16 = bf16, g.gates = gates.data(), g.c_prev = d.c_prev.data(), g.c = c_next.data();
  g.dy = with_dy ? d.dy.data() : nullptr, g.dy_row_stride = d.y_stride, g.dh_recurrent = d.dh_recurrent.data();
  g.dc = dc.data(), g.dgates = dgates.data(), g.dbias = dbias.data();
  for (auto [j0, j1] : ranges) rnn_detail::lstm_gates_backward(g, j0, j1, isa);

  std::vector<double> dbias_ref(4 * u, 0.5);
  double worst = 0;
  auto check = [&](double got, double want, const char* what, int64_t r, int64_t j) {
    const double err = std::abs(got - want) / std::max(1.0, std::abs(want));
    worst = std::max(worst, err);
    if (err > tol) ADD_FAILURE() << isa_label(isa) << " " << what << " row " << r << " unit " << j << ": " << got << " vs " << want;
  };
  for (int64_t r = 0; r < b; ++r) {
    for (int64_t j = 0; j < u; ++j) {
      const float* p = d.pre.data() + r * 4 * u;
      const double i = sigmoid_ref(p[j]), fg = sigmoid_ref(p[u + j]), cc = std::tanh(p[2 * u + j]), o = sigmoid_ref(p[3 * u + j]);
      const double c = fg * d.c_prev[r * u + j] + i * cc, hv = o * std::tanh(c);
      const float* a = gates.data() + r * 4 * u;
      check(a[j], i, "i", r, j), check(a[u + j], fg, "f", r, j), check(a[2 * u + j], cc, "c~", r, j), check(a[3 * u + j], o, "o", r, j);
      check(c_next[r * u + j], c, "c", r, j);
      check(as_double(h[r * d.h_stride + j]), hv, "h", r, j);
      check(as_double(y[r * d.y_stride + j]), hv, "y", r, j);
      const double tc = std::tanh(c);
      const double dh = d.dh_recurrent[r * u + j] + (with_dy ? d.dy[r * d.y_stride + j] : 0.0);
      const double dcell = d.dc_next[r * u + j] + dh * o * (1 - tc * tc);
      const double dg[4] = {dcell * cc * i * (1 - i), dcell * d.c_prev[r * u + j] * fg * (1 - fg), dcell * i * (1 - cc * cc),
                            dh * tc * o * (1 - o)};
      check(dc[r * u + j], dcell * fg, "dc", r, j);
      for (int k = 0; k < 4; ++k) {
        check(as_double(dgates[r * 4 * u + k * u + j]), dg[k], "dgates", r, j);
        dbias_ref[k * u + j] += dg[k];
      }
    }
  }
  for (int64_t k = 0; k < 4 * u; ++k) check(dbias[k], dbias_ref[k], "dbias", -1, k);
  std::printf("%s %s %s dy, %zu range(s): worst relative error %.3g\n", isa_label(isa), bf16 ? "bf16" : "f32",
              with_dy ? "with" : "without", ranges.size(), worst);
}

TEST(LstmGateKernels, OneStepMatchesTheFormulasInEveryBuild) {
  // 37 units: two whole vectors and a partial one; 11 rows: a row block and a partial one.
  const StepData d = make_step(11, 37, 5);
  const std::vector<std::vector<std::pair<int64_t, int64_t>>> splits{{{0, 37}}, {{0, 16}, {16, 37}}, {{0, 32}, {32, 37}}};
  for (GateIsa isa : gate_isas()) {
    for (const auto& ranges : splits) {
      for (bool with_dy : {true, false}) {
        check_step<float>(d, isa, with_dy, ranges);
        check_step<uint16_t>(d, isa, with_dy, ranges);
      }
    }
  }
}

}  // namespace
}  // namespace kiln
