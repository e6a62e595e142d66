// The calibration half of post-training quantization (quant/): observers, the three
// calibration methods, activation and weight scales, and observe() over a traced graph.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "graph/trace.h"
#include "kiln.h"
#include "quant/calibrate.h"
#include "quant/entropy.h"
#include "quant/observer.h"
#include "quant/params.h"
#include "quant/threshold.h"
#include "quant/weights.h"
#include "graph/passes/optimize_for_inference.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"

namespace kiln {
namespace {

using quant::CalibrationMethod;
using quant::HistogramObserver;

// Fails the test unless fn throws std::invalid_argument whose message contains every part.
template <typename Fn>
void expect_invalid(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one mentioning '" << parts[0] << "'";
  } catch (const std::invalid_argument& e) {
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

int64_t sum(const std::vector<int64_t>& h) {
  int64_t s = 0;
  for (int64_t c : h) s += c;
  return s;
}

// The histogram a fresh observer would build for these values at a fixed range.
std::vector<int64_t> direct_histogram(const std::vector<float>& values, double range) {
  std::vector<int64_t> h(HistogramObserver::kBins, 0);
  for (float v : values) {
    int64_t b = static_cast<int64_t>(std::fabs(double(v)) * (HistogramObserver::kBins / range));
    ++h[std::min<int64_t>(b, HistogramObserver::kBins - 1)];
  }
  return h;
}

std::vector<float> append(std::vector<float> a, const std::vector<float>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

HistogramObserver observe_values(const std::vector<float>& v) {
  HistogramObserver o;
  o.update(Tensor::from_vector(v, {static_cast<int64_t>(v.size())}));
  return o;
}

// ---------------------------------------------------------------------------------------------
// Observer

TEST(QuantObserver, MinMaxIsExactForAnyLayoutAndDtype) {
  Tensor x = Tensor::from_vector({-3.f, 1.5f, 2.f, 0.25f, -0.5f, 1.f}, {2, 3});
  HistogramObserver o;
  o.update(transpose(x, 0, 1));  // a strided view
  EXPECT_EQ(o.count(), 6);
  EXPECT_EQ(o.min(), -3.f);
  EXPECT_EQ(o.max(), 2.f);
  EXPECT_EQ(o.max_abs(), 3.f);
  EXPECT_EQ(quant::threshold(o, CalibrationMethod::minmax), 3.0);
  o.update(Tensor::from_vector({4.f, -1.f}, {2}, DType::bf16));
  EXPECT_EQ(o.count(), 8);
  EXPECT_EQ(o.max(), 4.f);
  EXPECT_EQ(o.min(), -3.f);
  EXPECT_EQ(quant::threshold(o, CalibrationMethod::minmax), 4.0);
  EXPECT_EQ(sum(o.histogram()), 8);
  expect_invalid([&] { o.update(Tensor::zeros({3}, DType::u8)); }, {"f32 or bf16", "u8[3]"});
  expect_invalid([&] { o.update(Tensor()); }, {"undefined"});
}

TEST(QuantObserver, SkipsAndCountsNanAndInf) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  HistogramObserver o = observe_values({1.f, nan, -inf, -2.f, inf, nan, 0.5f});
  EXPECT_EQ(o.count(), 3);
  EXPECT_EQ(o.nan_count(), 2);
  EXPECT_EQ(o.inf_count(), 2);
  EXPECT_EQ(o.min(), -2.f);
  EXPECT_EQ(o.max(), 1.f);
  EXPECT_EQ(sum(o.histogram()), 3);
  for (auto m : {CalibrationMethod::minmax, CalibrationMethod::percentile, CalibrationMethod::kl}) {
    double t = quant::threshold(o, m);
    EXPECT_TRUE(std::isfinite(t) && t <= 2.0 && t > 0) << quant::calibration_method_name(m) << " " << t;
  }
  HistogramObserver only_nan = observe_values({nan, nan});
  EXPECT_EQ(only_nan.count(), 0);
  EXPECT_EQ(quant::threshold(only_nan, CalibrationMethod::kl), 0.0);
  expect_invalid([&] { quant::activation_params(only_nan, CalibrationMethod::minmax); }, {"no finite value", "2 NaN"});
}

TEST(QuantObserver, GrowingTheRangeRebinsExactly) {
  std::vector<float> first = random_uniform({5000}, -1.f, 1.f, 11).to_vector();
  first.push_back(1.f);  // range starts at exactly 1
  std::vector<float> second = random_normal({5000}, 0.f, 2.f, 12).to_vector();
  second.push_back(-9.5f);
  HistogramObserver o;
  o.update(Tensor::from_vector(first, {static_cast<int64_t>(first.size())}));
  EXPECT_EQ(o.range(), 1.0);
  EXPECT_EQ(o.histogram(), direct_histogram(first, 1.0));
  o.update(Tensor::from_vector(second, {static_cast<int64_t>(second.size())}));
  float max_abs = 0;
  for (float v : second) max_abs = std::max(max_abs, std::fabs(v));
  ASSERT_EQ(max_abs, 9.5f);  // so the range grows by a factor of ceil(9.5) = 10
  EXPECT_EQ(o.range(), 10.0);
  EXPECT_EQ(o.max_abs(), 9.5f);
  EXPECT_EQ(o.min(), -9.5f);
  EXPECT_EQ(o.count(), static_cast<int64_t>(first.size() + second.size()));
  EXPECT_EQ(sum(o.histogram()), o.count());
  // Integer merging is exact: the same histogram as binning everything at the final range.
  EXPECT_EQ(o.histogram(), direct_histogram(append(first, second), 10.0));

  // A slightly larger value still at least doubles the range (kept exact), and counts stay.
  o.update(Tensor::from_vector({10.5f}, {1}));
  EXPECT_EQ(o.range(), 20.0);
  EXPECT_EQ(o.max(), 10.5f);
  EXPECT_EQ(o.histogram(), direct_histogram(append(append(first, second), {10.5f}), 20.0));

  // A huge jump folds everything old into bin 0.
  o.update(Tensor::from_vector({1e9f}, {1}));
  EXPECT_GE(o.range(), 1e9);
  EXPECT_EQ(o.histogram()[0], o.count() - 1);
  EXPECT_EQ(o.histogram()[HistogramObserver::kBins - 1], 1);
  EXPECT_EQ(o.max_abs(), 1e9f);
}

TEST(QuantObserver, ZerosFirstThenValues) {
  HistogramObserver o;
  o.update(Tensor::zeros({4, 5}));
  EXPECT_EQ(o.count(), 20);
  EXPECT_EQ(o.zero_count(), 20);
  EXPECT_EQ(o.range(), 0.0);
  EXPECT_EQ(o.histogram()[0], 20);
  for (auto m : {CalibrationMethod::minmax, CalibrationMethod::percentile, CalibrationMethod::kl}) {
    EXPECT_EQ(quant::threshold(o, m), 0.0);
  }
  quant::QuantParams p = quant::activation_params(o, CalibrationMethod::kl);
  EXPECT_EQ(p.dtype, DType::u8);
  EXPECT_EQ(p.scale, quant::kMinScale);
  EXPECT_EQ(p.zero_point, 0);

  o.update(Tensor::from_vector({0.5f, 2.f}, {2}));
  EXPECT_EQ(o.range(), 2.0);
  EXPECT_EQ(o.histogram()[0], 20);
  EXPECT_EQ(o.histogram()[512], 1);
  EXPECT_EQ(o.histogram()[HistogramObserver::kBins - 1], 1);
  EXPECT_EQ(quant::threshold(o, CalibrationMethod::minmax), 2.0);
}

// ---------------------------------------------------------------------------------------------
// Calibration methods

TEST(QuantThreshold, PercentileMatchesTheSortedQuantileWithinABin) {
  std::vector<float> v = random_normal({100000}, 0.f, 1.f, 21).to_vector();
  HistogramObserver o = observe_values(v);
  std::vector<float> a(v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
  std::sort(a.begin(), a.end());
  for (double pct : {50.0, 90.0, 99.0, 99.9}) {
    double want = a[static_cast<size_t>(pct / 100 * a.size()) - 1];
    double got = quant::threshold(o, CalibrationMethod::percentile, {.percentile = pct});
    EXPECT_NEAR(got, want, o.bin_width()) << pct;
  }
  EXPECT_EQ(quant::threshold(o, CalibrationMethod::percentile, {.percentile = 100}), o.max_abs());
}

TEST(QuantThreshold, PercentileDropsRareOutliers) {
  std::vector<float> v = random_uniform({10000}, -1.f, 1.f, 22).to_vector();
  for (int i = 0; i < 5; ++i) v.push_back(i % 2 ? 100.f : -100.f);
  HistogramObserver o = observe_values(v);
  EXPECT_EQ(quant::threshold(o, CalibrationMethod::minmax), 100.0);
  double t = quant::threshold(o, CalibrationMethod::percentile, {.percentile = 99.9});
  EXPECT_GT(t, 0.9);  // above the bulk's 99.9th percentile (~0.999)
  EXPECT_LT(t, 1.1);  // far below the outliers
}

TEST(QuantThreshold, KlClipsRareOutliersOfAGaussian) {
  const float sigma = 1.f;
  std::vector<float> v = random_normal({200000}, 0.f, sigma, 23).to_vector();
  for (int i = 0; i < 20; ++i) v.push_back(i % 2 ? 30.f : -30.f);
  HistogramObserver o = observe_values(v);
  double t = quant::threshold(o, CalibrationMethod::kl);
  EXPECT_LT(t, 0.5 * o.max_abs());
  EXPECT_GT(t, 3 * sigma);
}

TEST(QuantThreshold, KlKeepsNearlyTheWholeRangeOfUniformData) {
  HistogramObserver o = observe_values(random_uniform({100000}, -1.f, 1.f, 24).to_vector());
  double t = quant::threshold(o, CalibrationMethod::kl);
  EXPECT_GT(t, 0.9 * o.max_abs());
  EXPECT_LE(t, o.max_abs());
}

TEST(QuantThreshold, KlIgnoresTheSpikeOfZerosAfterRelu) {
  // relu(N(0, 1)): half the values are exactly 0. Counted in P and Q, that spike would drag
  // the threshold down; the KL threshold should match the one of the positive half alone.
  std::vector<float> g = random_normal({100000}, 0.f, 1.f, 25).to_vector();
  std::vector<float> relu_v(g.size()), positive;
  for (size_t i = 0; i < g.size(); ++i) {
    relu_v[i] = std::max(g[i], 0.f);
    if (g[i] > 0) positive.push_back(g[i]);
  }
  HistogramObserver with_zeros = observe_values(relu_v), without = observe_values(positive);
  EXPECT_EQ(with_zeros.zero_count(), static_cast<int64_t>(g.size() - positive.size()));
  EXPECT_EQ(quant::threshold(with_zeros, CalibrationMethod::kl), quant::threshold(without, CalibrationMethod::kl));
  EXPECT_GT(quant::threshold(with_zeros, CalibrationMethod::kl), 2.0);
}

TEST(QuantThreshold, KlSearchOnRawHistograms) {
  // Everything in the first target_bins bins: the smallest candidate loses nothing.
  std::vector<int64_t> h(2048, 0);
  for (int i = 0; i < 128; ++i) h[i] = 10 + i % 3;
  EXPECT_EQ(quant::kl_threshold_bins(h, 128), 128);
  // One far outlier on top of that: clipping it costs less than coarser steps for the bulk.
  h[2047] = 1;
  int bins = quant::kl_threshold_bins(h, 128);
  EXPECT_LT(bins, 2048);
  EXPECT_GE(bins, 128);
  // Empty histogram, bad arguments.
  EXPECT_EQ(quant::kl_threshold_bins(std::vector<int64_t>(2048, 0), 128), 2048);
  expect_invalid([&] { quant::kl_threshold_bins(h, 0); }, {"target_bins"});
  expect_invalid([&] { quant::kl_threshold_bins(h, 4096); }, {"target_bins"});
  h[5] = -1;
  expect_invalid([&] { quant::kl_threshold_bins(h, 128); }, {"negative"});
}

TEST(QuantThreshold, RejectsBadOptions) {
  HistogramObserver o = observe_values({1.f, 2.f});
  expect_invalid([&] { quant::threshold(o, CalibrationMethod::percentile, {.percentile = 0}); }, {"percentile"});
  expect_invalid([&] { quant::threshold(o, CalibrationMethod::percentile, {.percentile = 100.5}); }, {"percentile"});
  expect_invalid([&] { quant::threshold(o, CalibrationMethod::kl, {.kl_target_bins = 0}); }, {"kl_target_bins"});
  EXPECT_EQ(quant::calibration_method_from_name("kl"), CalibrationMethod::kl);
  expect_invalid([&] { quant::calibration_method_from_name("entropy2"); }, {"entropy2"});
}

// ---------------------------------------------------------------------------------------------
// Activation and weight parameters

TEST(QuantParams, U8AfterReluElseS8) {
  HistogramObserver relu_like = observe_values({0.f, 0.5f, 2.55f, 1.f});
  quant::QuantParams u = quant::activation_params(relu_like, CalibrationMethod::minmax);
  EXPECT_EQ(u.dtype, DType::u8);
  EXPECT_FLOAT_EQ(u.scale, 2.55f / 255.f);
  EXPECT_EQ(u.zero_point, 0);

  HistogramObserver signed_v = observe_values({-0.01f, 0.5f, 2.54f});
  quant::QuantParams s = quant::activation_params(signed_v, CalibrationMethod::minmax);
  EXPECT_EQ(s.dtype, DType::s8);
  EXPECT_FLOAT_EQ(s.scale, 2.54f / 127.f);
  EXPECT_EQ(s.zero_point, 0);

  HistogramObserver negative_max = observe_values({-5.08f, 1.f});
  EXPECT_FLOAT_EQ(quant::activation_params(negative_max, CalibrationMethod::minmax).scale, 5.08f / 127.f);

  // u8's KL search compares against 256 levels, s8's against 128.
  std::vector<float> g = random_normal({50000}, 0.f, 1.f, 26).to_vector();
  for (float& x : g) x = std::fabs(x);
  g.push_back(20.f);
  HistogramObserver pos = observe_values(g);
  std::vector<float> neg = g;
  neg[0] = -neg[0];
  HistogramObserver sym = observe_values(neg);
  const double t128 = quant::threshold(pos, CalibrationMethod::kl, {.kl_target_bins = 128});
  const double t256 = quant::threshold(pos, CalibrationMethod::kl, {.kl_target_bins = 256});
  ASSERT_NE(t128, t256);  // or this test could not tell the two apart
  quant::QuantParams pu = quant::activation_params(pos, CalibrationMethod::kl);
  quant::QuantParams ps = quant::activation_params(sym, CalibrationMethod::kl);
  EXPECT_EQ(pu.dtype, DType::u8);
  EXPECT_EQ(ps.dtype, DType::s8);
  EXPECT_FLOAT_EQ(pu.scale, t256 / 255);
  EXPECT_FLOAT_EQ(ps.scale, quant::threshold(sym, CalibrationMethod::kl) / 127);
  EXPECT_EQ(quant::threshold(sym, CalibrationMethod::kl), t128);  // same |x| as pos
}

TEST(QuantWeights, PerChannelScalesAndRoundTrip) {
  // HWIO conv kernel: output channels on the last axis; channel 2 is all zeros.
  Tensor w = random_normal({3, 3, 2, 4}, 0.f, 0.5f, 31);
  std::vector<float> v = w.to_vector();
  for (size_t i = 2; i < v.size(); i += 4) v[i] = 0.f;
  w = Tensor::from_vector(v, w.shape());
  std::vector<float> scales = quant::weight_scales(w, -1);
  ASSERT_EQ(scales.size(), 4u);
  for (int c = 0; c < 4; ++c) {
    float m = 0;
    for (size_t i = c; i < v.size(); i += 4) m = std::max(m, std::fabs(v[i]));
    if (c == 2) {
      EXPECT_EQ(scales[c], quant::kMinScale);
    } else {
      EXPECT_FLOAT_EQ(scales[c], m / 127.f) << c;
    }
  }
  EXPECT_EQ(quant::weight_scales(w, 3), scales);

  Tensor q = quant::quantize_weights(w, -1, scales);
  ASSERT_EQ(q.dtype(), DType::s8);
  ASSERT_EQ(q.shape(), w.shape());
  const int8_t* qd = q.data<int8_t>();
  int extremes = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const double s = scales[i % 4];
    EXPECT_LE(std::fabs(qd[i] * s - v[i]), s / 2 * (1 + 1e-6)) << i;
    EXPECT_LE(std::abs(int(qd[i])), 127);
    extremes += std::abs(int(qd[i])) == 127;
  }
  EXPECT_EQ(extremes, 3);  // each nonzero channel's max|w| maps to +-127

  // Dense [in, out] kernel, channels along axis 1, per-channel error bound again.
  Tensor d = random_uniform({5, 3}, -2.f, 2.f, 32, DType::bf16);
  std::vector<float> ds = quant::weight_scales(d, 1);
  Tensor dq = quant::quantize_weights(d, 1, ds);
  std::vector<float> dv = d.to_vector();
  for (size_t i = 0; i < dv.size(); ++i) {
    EXPECT_LE(std::fabs(dq.data<int8_t>()[i] * double(ds[i % 3]) - dv[i]), ds[i % 3] / 2 * (1 + 1e-6));
  }
}

TEST(QuantWeights, RoundsHalfToEvenAndSaturates) {
  Tensor w = Tensor::from_vector({0.5f, 1.5f, 2.5f, -0.5f, -2.5f, -3.5f, 126.6f, 200.f, -200.f, -127.5f}, {10, 1});
  Tensor q = quant::quantize_weights(w, 1, {1.f});
  std::vector<float> got = q.to_vector();
  EXPECT_EQ(got, (std::vector<float>{0, 2, 2, 0, -2, -4, 127, 127, -127, -127}));
}

TEST(QuantWeights, RejectsBadInput) {
  Tensor w = random_uniform({2, 3}, -1.f, 1.f, 33);
  expect_invalid([&] { quant::quantize_weights(w, 1, {1.f, 1.f}); }, {"2 scales for 3 channels"});
  expect_invalid([&] { quant::quantize_weights(w, 0, {1.f, 0.f}); }, {"scale 1", "positive"});
  expect_invalid([&] { quant::quantize_weights(w, 0, {1.f, std::nanf("")}); }, {"scale 1"});
  expect_invalid([&] { quant::weight_scales(w, 2); }, {"axis"});
  expect_invalid([&] { quant::weight_scales(Tensor::zeros({2, 3}, DType::s8), 0); }, {"f32 or bf16"});
  Tensor bad = Tensor::from_vector({1.f, 2.f, std::numeric_limits<float>::infinity(), 0.f, 0.f, 0.f}, {2, 3});
  expect_invalid([&] { quant::weight_scales(bad, 1); }, {"non-finite", "channel 2"});
  expect_invalid([&] { quant::quantize_weights(bad, 1, {1.f, 1.f, 1.f}); }, {"non-finite"});
}

// ---------------------------------------------------------------------------------------------
// observe() over a graph

struct Mlp {
  Tensor w1 = random_normal({4, 6}, 0.f, 0.7f, 41), b1 = random_uniform({6}, -0.3f, 0.3f, 42);
  Tensor w2 = random_normal({6, 3}, 0.f, 0.7f, 43);
  graph::Graph trace() const {
    auto fn = [this](const std::vector<Tensor>& in) {
      return std::vector<Tensor>{matmul(relu(matmul(in[0], w1) + b1), w2)};
    };
    return graph::trace(fn, {random_uniform({2, 4}, -1.f, 1.f, 44)}, {{"w1", w1}, {"b1", b1}, {"w2", w2}});
  }
};

// Per value: min and max over the batches, each batch run through Graph::run on a copy of g
// that outputs every value.
std::map<int, std::pair<float, float>> independent_ranges(const graph::Graph& g, const Tensor& x, int64_t batch) {
  graph::Graph all = g;
  all.outputs.clear();
  for (int v = 0; v < static_cast<int>(g.values.size()); ++v) {
    if (!g.constant_for(v)) all.outputs.push_back(v);
  }
  std::map<int, std::pair<float, float>> r;
  for (int64_t start = 0; start < x.shape()[0]; start += batch) {
    Tensor xb = contiguous(slice(x, 0, start, std::min(start + batch, x.shape()[0])));
    std::vector<Tensor> outs = all.run(std::vector<Tensor>{xb});
    for (size_t k = 0; k < outs.size(); ++k) {
      std::vector<float> v = outs[k].to_vector();
      auto [lo, hi] = std::minmax_element(v.begin(), v.end());
      auto it = r.find(all.outputs[k]);
      if (it == r.end()) {
        r[all.outputs[k]] = {*lo, *hi};
      } else {
        it->second = {std::min(it->second.first, *lo), std::max(it->second.second, *hi)};
      }
    }
  }
  return r;
}

TEST(QuantObserve, RecordsEveryFloatingValueOfATracedFunction) {
  Mlp m;
  graph::Graph g = m.trace();
  Tensor x = random_uniform({20, 4}, -2.f, 2.f, 45);
  Tensor y = random_uniform({20, 3}, 0.f, 1.f, 46);
  auto ranges = independent_ranges(g, x, 8);
  for (const data::Dataset& ds : {data::Dataset::from_tensor_slices(x).batch(8),
                                  data::Dataset::from_tensor_slices(x, y).batch(8)}) {
    quant::Calibration c = quant::observe(g, ds);
    EXPECT_EQ(c.batches, 3);
    EXPECT_EQ(c.examples, 20);
    EXPECT_TRUE(c.warnings.empty());
    ASSERT_EQ(c.observers.size(), ranges.size()) << g.to_string();
    ASSERT_EQ(c.observers.size(), g.nodes.size() + 1);  // the input and one output per node
    EXPECT_TRUE(c.observers.count(g.inputs[0]));
    for (const auto& [v, o] : c.observers) {
      ASSERT_TRUE(ranges.count(v)) << g.values[v].name;
      EXPECT_EQ(o.min(), ranges[v].first) << g.values[v].name;
      EXPECT_EQ(o.max(), ranges[v].second) << g.values[v].name;
      EXPECT_EQ(o.count(), 20 * g.values[v].shape[1]) << g.values[v].name;
    }
    // The relu's output is non-negative: u8; the graph output is signed: s8.
    auto params = quant::activation_params(g, c, {.method = CalibrationMethod::percentile});
    int u8 = 0;
    for (const auto& node : g.nodes) u8 += node.call.op() == "relu" && params[node.outputs[0]].dtype == DType::u8;
    EXPECT_EQ(u8, 1) << g.to_string();
    EXPECT_EQ(params[g.outputs[0]].dtype, DType::s8);
  }
  quant::Calibration two = quant::observe(g, data::Dataset::from_tensor_slices(x).batch(8), {.max_batches = 2});
  EXPECT_EQ(two.batches, 2);
  EXPECT_EQ(two.examples, 16);
}

TEST(QuantObserve, TracedSequentialModel) {
  set_global_seed(5);
  nn::Sequential model({nn::Dense(8, "relu"), nn::Dense(3)});
  model.build({5});
  Tensor x = random_normal({12, 5}, 0.f, 1.f, 47);
  graph::Graph g = graph::trace(model, random_normal({2, 5}, 0.f, 1.f, 48));
  auto ranges = independent_ranges(g, x, 5);
  quant::Calibration c = quant::observe(g, data::Dataset::from_tensor_slices(x).batch(5), {.method = CalibrationMethod::kl});
  EXPECT_EQ(c.batches, 3);
  ASSERT_EQ(c.observers.size(), ranges.size()) << g.to_string();
  for (const auto& [v, o] : c.observers) {
    EXPECT_EQ(o.min(), ranges[v].first) << g.values[v].name;
    EXPECT_EQ(o.max(), ranges[v].second) << g.values[v].name;
  }
  // The model's output matches what predict computes.
  std::vector<float> pred = model.predict(x, 5).to_vector();
  EXPECT_EQ(c.observers.at(g.outputs[0]).max(), *std::max_element(pred.begin(), pred.end()));
  auto params = quant::activation_params(g, c, {.method = CalibrationMethod::kl});
  for (const auto& [v, p] : params) EXPECT_TRUE(p.scale > 0 && std::isfinite(p.scale)) << g.values[v].name;
}

// The graph quantize() calibrates: BatchNorm folded, conv + relu fused into fused_conv2d.
TEST(QuantObserve, OptimizedCnnGraphWithFusedNodes) {
  set_global_seed(6);
  nn::Sequential model({nn::Conv2D(4, 3), nn::BatchNormalization(), nn::Activation("relu"), nn::MaxPooling2D(),
                        nn::Flatten(), nn::Dense(5)});
  model.build({8, 8, 1});
  graph::Graph g = graph::passes::optimize_for_inference(
      graph::trace(model, random_uniform({2, 8, 8, 1}, 0.f, 1.f, 50)));
  int fused = 0;
  for (const auto& node : g.nodes) fused += node.call.op() == "fused_conv2d";
  ASSERT_EQ(fused, 1) << g.to_string();
  Tensor x = random_uniform({10, 8, 8, 1}, 0.f, 1.f, 51);
  auto ranges = independent_ranges(g, x, 4);
  quant::Calibration c = quant::observe(g, data::Dataset::from_tensor_slices(x).batch(4));
  ASSERT_EQ(c.observers.size(), ranges.size()) << g.to_string();
  for (const auto& [v, o] : c.observers) {
    EXPECT_EQ(o.min(), ranges[v].first) << g.values[v].name;
    EXPECT_EQ(o.max(), ranges[v].second) << g.values[v].name;
  }
  auto params = quant::activation_params(g, c);
  for (const auto& node : g.nodes) {
    if (node.call.op() == "fused_conv2d") {
      EXPECT_EQ(params.at(node.outputs[0]).dtype, DType::u8) << g.to_string();
    }
  }
}

TEST(QuantObserve, ReportsNanValues) {
  Mlp m;
  graph::Graph g = m.trace();
  std::vector<float> xv = random_uniform({6, 4}, -1.f, 1.f, 49).to_vector();
  xv[5] = std::nanf("");
  quant::Calibration c = quant::observe(g, data::Dataset::from_tensor_slices(Tensor::from_vector(xv, {6, 4})).batch(3));
  ASSERT_FALSE(c.warnings.empty());
  EXPECT_NE(c.warnings[0].find("1 NaN"), std::string::npos) << c.warnings[0];
  EXPECT_EQ(c.observers.at(g.inputs[0]).nan_count(), 1);
  EXPECT_EQ(c.observers.at(g.inputs[0]).count(), 23);
}

TEST(QuantObserve, RejectsBadCalibrationData) {
  // An image classifier front: u8[N, 28, 28, 1] pixels cast to f32 and scaled.
  auto fn = [](const std::vector<Tensor>& in) { return std::vector<Tensor>{affine(cast(in[0], DType::f32), 1 / 255.f, 0.f)}; };
  graph::Graph g = graph::trace(fn, {Tensor::zeros({2, 28, 28, 1}, DType::u8)});
  Tensor good = Tensor::zeros({4, 28, 28, 1}, DType::u8);
  quant::Calibration ok = quant::observe(g, data::Dataset::from_tensor_slices(good).batch(2));
  EXPECT_EQ(ok.batches, 2);
  EXPECT_EQ(ok.observers.count(g.inputs[0]), 0u);  // u8 input: nothing to calibrate there

  data::Dataset empty = data::Dataset::from_tensor_slices(Tensor::zeros({0, 28, 28, 1}, DType::u8)).batch(2);
  expect_invalid([&] { quant::observe(g, empty); }, {"empty"});
  expect_invalid([&] { quant::observe(g, data::Dataset::from_tensor_slices(good)); }, {"not batched", ".batch("});
  expect_invalid([&] { quant::observe(g, data::Dataset::from_tensor_slices(Tensor::zeros({4, 28, 28, 1})).batch(2)); },
                 {"u8[N, 28, 28, 1]", "batch 0 is f32[2, 28, 28, 1]"});
  expect_invalid([&] { quant::observe(g, data::Dataset::from_tensor_slices(Tensor::zeros({4, 28, 28}, DType::u8)).batch(2)); },
                 {"u8[N, 28, 28, 1]", "u8[2, 28, 28]"});
  expect_invalid([&] { quant::observe(g, data::Dataset::from_tensor_slices(Tensor::zeros({4, 28, 27, 1}, DType::u8)).batch(4)); },
                 {"u8[N, 28, 28, 1]", "u8[4, 28, 27, 1]"});
  expect_invalid([&] { quant::observe(g, data::Dataset::from_tensor_slices(good).batch(2).repeat()); }, {"infinite", "max_batches"});
  EXPECT_EQ(quant::observe(g, data::Dataset::from_tensor_slices(good).batch(2).repeat(), {.max_batches = 5}).batches, 5);
  expect_invalid([&] { quant::observe(g, data::Dataset::from_tensor_slices(good).batch(2), {.max_batches = 0}); }, {"max_batches"});
  expect_invalid([&] { quant::observe(g, data::Dataset::from_tensor_slices(good).batch(2), {.percentile = 101}); }, {"percentile"});
  // A map() stage that returns a batch of the wrong shape is caught at that batch.
  auto bad_map = data::Dataset::from_tensor_slices(good).batch(2).map([](data::Batch b) {
    return data::Batch{Tensor::zeros({2, 3}, DType::u8), b.y};
  });
  expect_invalid([&] { quant::observe(g, bad_map); }, {"batch 0 is u8[2, 3]"});

  auto two = [](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0] + in[1]}; };
  graph::Graph g2 = graph::trace(two, {Tensor::zeros({2, 3}), Tensor::zeros({2, 3})});
  expect_invalid([&] { quant::observe(g2, data::Dataset::from_tensor_slices(Tensor::zeros({4, 3})).batch(2)); },
                 {"2 inputs", "exactly one input"});
}

}  // namespace
}  // namespace kiln
