// cast (tensor/ops/cast.h) as Keras's ops.cast: float -> integer truncates toward zero, as
// Keras (tf.cast), PyTorch's .to(int) and ONNX Runtime's Cast do; beyond the range it
// saturates and NaN gives 0. Checked against written-out reference values for each float
// dtype into each integer dtype, against ONNX Runtime running the exported Cast, and against
// the graph imported back.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "graph/trace.h"
#include "kiln.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_import.h"
#include "runtime_export/onnx/onnx_tensor.h"  // the onnx protos
#include "data/atomic_file.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"

namespace kiln {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr double kS32Min = -2147483648.0, kS32Max = 2147483647.0;

struct Row {
  float x;
  double s8, u8, s32;
};

// Every input is exact in bf16 or rounds there to a value with the same result, so one table
// serves f32 and bf16 inputs.
const std::vector<Row>& reference() {
  static const std::vector<Row> rows = {
      {1.5758f, 1, 1, 1},
      {-1.5f, -1, 0, -1},
      {2.5f, 2, 2, 2},
      {-2.5f, -2, 0, -2},
      {-0.7f, 0, 0, 0},
      {0.7f, 0, 0, 0},
      {-0.f, 0, 0, 0},
      {1.f, 1, 1, 1},
      {126.5f, 126, 126, 126},
      {127.5f, 127, 127, 127},
      {-128.5f, -128, 0, -128},
      {-129.f, -128, 0, -129},
      {254.5f, 127, 254, 254},
      {300.f, 127, 255, 300},
      {1048576.f, 127, 255, 1048576},  // 2^20
      {-1048576.f, -128, 0, -1048576},
      {2147483648.f, 127, 255, kS32Max},  // 2^31
      {-2147483648.f, -128, 0, kS32Min},
      {3e9f, 127, 255, kS32Max},
      {-3e9f, -128, 0, kS32Min},
      {kInf, 127, 255, kS32Max},
      {-kInf, -128, 0, kS32Min},
      {kNaN, 0, 0, 0},
  };
  return rows;
}

double expected(const Row& r, DType to) { return to == DType::s8 ? r.s8 : to == DType::u8 ? r.u8 : r.s32; }

std::vector<float> column_x() {
  std::vector<float> x;
  for (const Row& r : reference()) x.push_back(r.x);
  return x;
}

std::vector<double> as_doubles(const Tensor& t) {
  std::vector<double> v;
  if (t.dtype() == DType::s32) {
    for (int32_t e : t.to_int32()) v.push_back(e);
  } else {
    for (float e : t.to_vector()) v.push_back(e);
  }
  return v;
}

TEST(Cast, FloatToIntegerTruncatesTowardZeroAndSaturates) {
  const std::vector<float> xs = column_x();
  for (DType from : {DType::f32, DType::bf16}) {
    Tensor x = cast(Tensor::from_vector(xs, {int64_t(xs.size())}), from);
    for (DType to : {DType::s8, DType::u8, DType::s32}) {
      Tensor y = cast(x, to);
      ASSERT_EQ(y.dtype(), to);
      std::vector<double> got = as_doubles(y);
      for (size_t i = 0; i < xs.size(); ++i) {
        EXPECT_EQ(got[i], expected(reference()[i], to))
            << dtype_name(from) << " " << xs[i] << " -> " << dtype_name(to);
      }
    }
  }
}

TEST(Cast, LargestF32BelowTwoToThe31FitsInS32) {
  EXPECT_EQ(cast(Tensor::from_vector({2147483520.f, -2147483520.f}, {2}), DType::s32).to_int32(),
            (std::vector<int32_t>{2147483520, -2147483520}));
}

// Big enough for the parallel loop, and a strided view: element by element like std::trunc.
TEST(Cast, LargeAndStridedInputsMatchTruncation) {
  Tensor big = random_uniform({300, 500}, -400.f, 400.f, 7);
  Tensor view = slice(big, 1, 1, 500, 3);
  std::vector<float> v;
  ASSERT_NO_THROW(v = view.to_vector());
  ASSERT_NO_THROW(cast(view, DType::s8));
  for (DType to : {DType::s8, DType::u8, DType::s32}) {
    std::vector<double> got = as_doubles(cast(view, to));
    ASSERT_EQ(got.size(), v.size());
    const double lo = to == DType::s8 ? -128 : to == DType::u8 ? 0 : kS32Min;
    const double hi = to == DType::s8 ? 127 : to == DType::u8 ? 255 : kS32Max;
    size_t wrong = 0;
    for (size_t i = 0; i < v.size(); ++i) wrong += got[i] != std::clamp(std::trunc(double(v[i])), lo, hi);
    EXPECT_EQ(wrong, 0u) << dtype_name(to);
  }
}

TEST(Cast, IntegerToIntegerSaturatesAndToFloatIsExact) {
  Tensor s32 = Tensor::from_int32({300, -5, 70000, -70000, 100}, {5});
  EXPECT_EQ(as_doubles(cast(s32, DType::u8)), (std::vector<double>{255, 0, 255, 0, 100}));
  EXPECT_EQ(as_doubles(cast(s32, DType::s8)), (std::vector<double>{127, -5, 127, -128, 100}));
  EXPECT_EQ(as_doubles(cast(cast(s32, DType::u8), DType::s8)), (std::vector<double>{127, 0, 127, 0, 100}));
  EXPECT_EQ(cast(s32, DType::f32).to_vector(), (std::vector<float>{300, -5, 70000, -70000, 100}));
  EXPECT_EQ(cast(cast(s32, DType::s8), DType::s32).to_int32(), (std::vector<int32_t>{127, -5, 127, -128, 100}));
}

TEST(Cast, BetweenFloatsRoundsAndDifferentiates) {
  Tensor x = Tensor::from_vector({1.0f, 1.00390625f, -3.3f, 200.7f}, {4});
  EXPECT_EQ(cast(x, DType::bf16).to_vector(), (std::vector<float>{1.0f, 1.0f, static_cast<float>(bf16(-3.3f)),
                                                                  static_cast<float>(bf16(200.7f))}));
  auto f = [](const std::vector<Tensor>& x) { return cast(cast(x[0], DType::bf16), DType::f32) * 1.f; };
  GradientTape tape;
  tape.watch(x);
  Tensor g = tape.gradient(reduce_sum(f({x})), x);
  EXPECT_EQ(g.dtype(), DType::f32);
  EXPECT_EQ(g.to_vector(), (std::vector<float>{1, 1, 1, 1}));
}

TEST(Cast, IntegerResultsHaveNoGradient) {
  Tensor x = Tensor::from_vector({1.5f, -2.5f}, {2});
  GradientTape tape;
  tape.watch(x);
  Tensor y = reduce_sum(cast(cast(x, DType::s32), DType::f32) + x);
  EXPECT_EQ(tape.gradient(y, x).to_vector(), (std::vector<float>{1, 1}));
}

// The traced cast runs the same in a Graph and in an InferenceModel (whose plan hands integer
// casts to the eager op).
TEST(Cast, TracedGraphAndInferenceModelTruncate) {
  auto fn = [](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{cast(cast(in[0], DType::s8), DType::f32) + cast(cast(in[0], DType::s32), DType::f32)};
  };
  Tensor x = Tensor::from_vector({1.5758f, -1.5f, 2.5f, -0.7f, 300.f, -300.f}, {2, 3});
  graph::Graph g = graph::trace(fn, {x});
  const std::vector<float> want = {1 + 1, -1 - 1, 2 + 2, 0, 127 + 300, -128 - 300};
  EXPECT_EQ(g.run(std::vector<Tensor>{x})[0].to_vector(), want);
  runtime_export::InferenceModel model(g);
  EXPECT_EQ(model.run(x).to_vector(), want);
}

// Exported, a float -> integer cast is a Cast (after a Clip where the range narrows), with no
// Round; ONNX Runtime's Cast gives Kiln's values, and importing the file gives them back.
void check_onnx(DType from, const std::vector<float>& xs, const std::vector<DType>& targets, const std::string& name) {
  Tensor x = cast(Tensor::from_vector(xs, {1, int64_t(xs.size())}), from);
  auto fn = [&](const std::vector<Tensor>& in) {
    std::vector<Tensor> out;
    for (DType to : targets) out.push_back(cast(in[0], to));
    return out;
  };
  graph::Graph g = graph::trace(fn, {x});
  std::vector<Tensor> want = g.run(std::vector<Tensor>{x});
  std::string path = testing::temp_path(name + ".onnx");
  runtime_export::export_onnx(g, path);
  testing::onnx_checker(path);

  onnx::ModelProto proto;
  ASSERT_TRUE(proto.ParseFromString(data::read_file(path)));
  int casts = 0;
  for (const auto& n : proto.graph().node()) {
    EXPECT_NE(n.op_type(), "Round") << name;
    casts += n.op_type() == "Cast";
  }
  EXPECT_EQ(casts, int(targets.size())) << name;

  Tensor feed = cast(x, DType::f32);  // a bf16 input is fp32 in the export
  auto ort = testing::run_onnx_runtime(path, {feed});
  ASSERT_TRUE(ort.has_value());
  ASSERT_EQ(ort->size(), targets.size());
  std::vector<Tensor> back = runtime_export::import_onnx(path).run(std::vector<Tensor>{feed});
  for (size_t k = 0; k < targets.size(); ++k) {
    EXPECT_EQ((*ort)[k].dtype(), targets[k]) << name;
    std::vector<double> kiln = as_doubles(want[k]), onnxrt = as_doubles((*ort)[k]), imported = as_doubles(back[k]);
    for (size_t i = 0; i < xs.size(); ++i) {
      EXPECT_EQ(onnxrt[i], kiln[i]) << name << ": ONNX Runtime casts " << xs[i] << " to " << dtype_name(targets[k]);
      EXPECT_EQ(imported[i], kiln[i]) << name << ": the imported graph casts " << xs[i] << " to "
                                      << dtype_name(targets[k]);
    }
  }
}

// Where ONNX's Cast is defined (cast.h says where it is not: NaN, and s32 at 2^31 and beyond).
std::vector<float> onnx_defined(DType to) {
  std::vector<float> xs;
  for (const Row& r : reference()) {
    if (std::isnan(r.x) || (to == DType::s32 && std::fabs(r.x) >= 2147483648.f)) continue;
    xs.push_back(r.x);
  }
  return xs;
}

TEST(Cast, OnnxRuntimeAgrees) {
  for (DType from : {DType::f32, DType::bf16}) {
    std::string f = dtype_name(from);
    check_onnx(from, onnx_defined(DType::u8), {DType::s8, DType::u8}, "cast_" + f + "_to_int8");
    check_onnx(from, onnx_defined(DType::s32), {DType::s32}, "cast_" + f + "_to_s32");
  }
}

TEST(Cast, OnnxRuntimeAgreesOnIntegerNarrowing) {
  Tensor x = Tensor::from_int32({300, -5, 70000, -70000, 100, 127, -128}, {1, 7});
  auto fn = [](const std::vector<Tensor>& in) {
    Tensor s8 = cast(in[0], DType::s8), u8 = cast(in[0], DType::u8);
    return std::vector<Tensor>{s8, u8, cast(s8, DType::u8), cast(u8, DType::s8)};
  };
  graph::Graph g = graph::trace(fn, {x});
  std::vector<Tensor> want = g.run(std::vector<Tensor>{x});
  std::string path = testing::temp_path("cast_int_narrowing.onnx");
  runtime_export::export_onnx(g, path);
  auto ort = testing::run_onnx_runtime(path, {x});
  ASSERT_TRUE(ort.has_value());
  ASSERT_EQ(ort->size(), want.size());
  std::vector<Tensor> back = runtime_export::import_onnx(path).run(std::vector<Tensor>{x});
  for (size_t k = 0; k < want.size(); ++k) {
    EXPECT_EQ(as_doubles((*ort)[k]), as_doubles(want[k])) << "output " << k;
    EXPECT_EQ(as_doubles(back[k]), as_doubles(want[k])) << "output " << k;
  }
}

}  // namespace
}  // namespace kiln
