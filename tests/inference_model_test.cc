// runtime_export::InferenceModel against the eager model it was traced from: the same outputs
// (fp32 within 1e-4, bf16 within bf16 rounding) for every architecture the issue names, at
// several batch sizes; no allocation after the first call of a shape; bad input; NaN; frozen
// weights; evaluate through the compile state. Threads: tests/concurrency_test.cc.
#include <gtest/gtest.h>

#include <cmath>

#include "nn/applications/applications.h"
#include "nn/layers/layers.h"
#include "nn/model.h"
#include "optim/sgd.h"
#include "graph/graph_io.h"
#include "graph/trace.h"
#include "runtime_export/inference_model.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using testing::max_abs_diff;

using runtime_export::InferenceModel;
using runtime_export::TraceOptions;

double max_abs(const Tensor& a) {
  double m = 0;
  for (float v : a.to_vector()) m = std::max(m, std::fabs(double(v)));
  return m;
}

// BatchNormalization's moving statistics start at 0 and 1, which would make folding a no-op:
// give every variable random values so that the test sees what folding does.
void randomize_batch_norms(nn::Model& model, uint64_t seed) {
  for (const Variable& v : model.variables()) {
    const std::string& n = v.name();
    Shape s = v.value().shape();
    if (n.find("moving_variance") != std::string::npos || n.find("gamma") != std::string::npos) {
      v.assign(random_uniform(s, 0.5f, 1.5f, ++seed));
    } else if (n.find("moving_mean") != std::string::npos || n.find("beta") != std::string::npos) {
      v.assign(random_uniform(s, -0.3f, 0.3f, ++seed));
    }
  }
}

Tensor images(const Shape& s, DType dtype, uint64_t seed) {
  if (dtype == DType::u8) return cast(random_uniform(s, 0.f, 255.f, seed), DType::u8);
  return random_uniform(s, -1.f, 1.f, seed);
}

struct Arch {
  std::string name;
  std::function<std::shared_ptr<nn::Model>()> make;
  Shape example;  // without the batch
  DType dtype;
};

void PrintTo(const Arch& a, std::ostream* os) { *os << a.name; }

// A functional block with residual Add and BatchNorm, written without applications.
std::shared_ptr<nn::Model> residual_functional() {
  using namespace nn;
  SymbolicTensor in = Input({10, 10, 4});
  SymbolicTensor h = Conv2D(8, 3, "", {.padding = "same"})(in);
  h = BatchNormalization()(h);
  h = Activation("relu")(h);
  SymbolicTensor skip = Conv2D(8, 1)(in);
  SymbolicTensor y = Conv2D(8, 3, "", {.padding = "same"})(h);
  y = BatchNormalization()(y);
  y = Activation("relu")(Add()({y, skip}));
  y = Dense(6, "gelu")(Flatten()(MaxPooling2D()(y)));
  return std::make_shared<Model>(in, Dense(3)(y), "residual_functional");
}

// Subclassed: C++ code in call(), softmax and a slice the runtime runs eagerly.
class Subclassed : public nn::Model {
 public:
  Subclassed() : Model("subclassed"), a_(nn::Dense(7, "relu")), b_(nn::Dense(3)) {}
  std::vector<Tensor> call(const std::vector<Tensor>& in, bool training) override {
    Tensor h = a_(in[0], training);
    return {softmax(b_(h, training), -1) + slice(sigmoid(h), 1, 0, 3)};
  }
  std::vector<nn::Layer> layers() const override { return {a_, b_}; }

 private:
  nn::Layer a_, b_;
};

std::vector<Arch> archs() {
  return {
      {"mlp", [] { return std::shared_ptr<nn::Model>(nn::applications::fashion_mnist_mlp()); }, {28, 28, 1}, DType::u8},
      {"keras_cnn", [] { return std::shared_ptr<nn::Model>(nn::applications::keras_cnn()); }, {28, 28, 1}, DType::u8},
      {"resnet18", [] { return std::shared_ptr<nn::Model>(nn::applications::resnet18({16, 16, 3})); }, {16, 16, 3},
       DType::f32},
      {"residual_functional", residual_functional, {10, 10, 4}, DType::f32},
      {"subclassed", [] { return std::make_shared<Subclassed>(); }, {5}, DType::f32},
  };
}

Shape with_batch(int64_t n, const Shape& s) {
  Shape out{n};
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

class InferenceMatchesModel : public ::testing::TestWithParam<Arch> {};

TEST_P(InferenceMatchesModel, Fp32WithinOneEMinus4AtEveryBatchSize) {
  const Arch& a = GetParam();
  set_global_seed(11);
  auto model = a.make();
  (*model)(images(with_batch(2, a.example), a.dtype, 1));  // builds
  randomize_batch_norms(*model, 100);
  auto inference = runtime_export::trace(*model, images(with_batch(2, a.example), a.dtype, 2));
  for (int64_t batch : {1, 3, 8}) {
    Tensor x = images(with_batch(batch, a.example), a.dtype, 10 + batch);
    Tensor want = (*model)(x);
    Tensor got = inference->run(x);
    EXPECT_LE(max_abs_diff(got, want), 1e-4) << a.name << " batch " << batch;
    EXPECT_GT(max_abs(want), 1e-3) << "a degenerate model proves nothing";
  }
  // Everything the models use has a kernel of the runtime's own, except what the
  // subclassed model does on purpose (softmax, slice, sigmoid, add).
  int fallbacks = inference->fallback_steps({with_batch(3, a.example)});
  if (a.name != "subclassed") {
    EXPECT_EQ(fallbacks, 0) << inference->describe_plan({with_batch(3, a.example)});
  }
}

TEST_P(InferenceMatchesModel, Bf16WithinBf16Rounding) {
  const Arch& a = GetParam();
  set_global_seed(12);
  auto model = a.make();
  (*model)(images(with_batch(2, a.example), a.dtype, 1));
  randomize_batch_norms(*model, 200);
  auto inference = runtime_export::trace(*model, images(with_batch(2, a.example), a.dtype, 2), {.dtype = DType::bf16});
  EXPECT_EQ(inference->dtype(), DType::bf16);
  Tensor x = images(with_batch(4, a.example), a.dtype, 3);
  Tensor want = (*model)(x);
  Tensor got = inference->run(x);
  EXPECT_EQ(got.dtype(), DType::f32);
  // bf16 keeps 8 bits of mantissa; errors grow with depth (ResNet-18 has 20 layers).
  double tolerance = 0.05 * std::max(1.0, max_abs(want));
  EXPECT_LE(max_abs_diff(got, want), tolerance) << a.name;
}

INSTANTIATE_TEST_SUITE_P(Architectures, InferenceMatchesModel, ::testing::ValuesIn(archs()),
                         [](const ::testing::TestParamInfo<Arch>& info) { return info.param.name; });

TEST(InferenceModel, ResNetRunsFoldedAndFusedConvolutions) {
  set_global_seed(5);
  auto model = nn::applications::resnet18({16, 16, 3});
  auto inference = runtime_export::trace(*model, random_uniform({2, 16, 16, 3}, -1.f, 1.f, 1));
  int bn = 0, fused = 0, adds = 0;
  for (const auto& n : inference->inference_graph().nodes) {
    bn += n.call.op() == "batch_norm_inference";
    fused += n.call.op() == "fused_conv2d";
    adds += n.call.op() == "add_relu" || n.call.op() == "add";
  }
  EXPECT_EQ(bn, 0);      // every BatchNorm folded into its conv
  EXPECT_EQ(adds, 0);    // every residual add fused into a conv as a sum post-op
  EXPECT_EQ(fused, 8);   // the second conv of each of the 8 blocks
  std::string plan = inference->describe_plan({{2, 16, 16, 3}});
  EXPECT_NE(plan.find("conv2d: 20"), std::string::npos) << plan;
}

TEST(InferenceModel, BatchNormAfterTheInputAndSoftmaxRunAsPrimitives) {
  using namespace nn;
  set_global_seed(4);
  SymbolicTensor in = Input({6, 6, 3});
  SymbolicTensor h = BatchNormalization()(in);  // no conv before it: nothing to fold into
  h = Conv2D(4, 3, "relu")(h);
  h = BatchNormalization()(Flatten()(h));       // after a reshape: [N, 64]
  Model model(in, Dense(5, "softmax")(h));
  Tensor x = random_uniform({3, 6, 6, 3}, -1.f, 1.f, 1);
  model(x);
  randomize_batch_norms(model, 400);
  auto inference = runtime_export::trace(model, x);
  EXPECT_EQ(inference->fallback_steps({x.shape()}), 0) << inference->describe_plan({x.shape()});
  EXPECT_LE(max_abs_diff(inference->run(x), model(x)), 1e-5);
}

TEST(InferenceModel, SteadyStateAllocatesNothing) {
  set_global_seed(6);
  auto model = nn::applications::keras_cnn();
  Tensor x = images({4, 28, 28, 1}, DType::u8, 1);
  auto inference = runtime_export::trace(*model, x);
  inference->run(x);
  inference->run(x);
  uint64_t before = allocator_stats().system_allocations;
  for (int i = 0; i < 5; ++i) inference->run(x);
  EXPECT_EQ(allocator_stats().system_allocations, before);
}

TEST(InferenceModel, BadInputIsAClearError) {
  set_global_seed(8);
  auto model = nn::applications::keras_cnn();
  auto inference = runtime_export::trace(*model, images({2, 28, 28, 1}, DType::u8, 1));
  auto expect_error = [&](const std::vector<Tensor>& in, const std::string& fragment) {
    try {
      inference->run(in);
      ADD_FAILURE() << "accepted; expected an error naming " << fragment;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error({Tensor::zeros({2, 28, 28, 1})}, "u8[N, 28, 28, 1]");        // wrong dtype
  expect_error({Tensor::zeros({2, 28, 27, 1}, DType::u8)}, "u8[2, 28, 27, 1]");  // wrong shape
  expect_error({Tensor::zeros({28, 28, 1}, DType::u8)}, "expects");          // wrong rank
  expect_error({}, "takes 1 inputs, got 0");
  EXPECT_THROW(runtime_export::trace(*model, images({2, 28, 28, 1}, DType::u8, 1), {.accelerator = "openvino"}),
               std::invalid_argument);
}

TEST(InferenceModel, NanAndInfinityPropagateAsInTheEagerModel) {
  set_global_seed(9);
  auto model = residual_functional();
  Tensor x = random_uniform({2, 10, 10, 4}, -1.f, 1.f, 1);
  (*model)(x);
  auto inference = runtime_export::trace(*model, x);
  std::vector<float> v = x.to_vector();
  v[7] = NAN;
  v[300] = INFINITY;
  Tensor bad = Tensor::from_vector(v, x.shape());
  std::vector<float> want = (*model)(bad).to_vector(), got = inference->run(bad).to_vector();
  ASSERT_EQ(want.size(), got.size());
  int nans = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(std::isnan(want[i]), std::isnan(got[i])) << i;
    nans += std::isnan(want[i]);
    if (!std::isnan(want[i])) {
      EXPECT_NEAR(want[i], got[i], 1e-4);
    }
  }
  EXPECT_GT(nans, 0);
}

TEST(InferenceModel, WeightsAreASnapshotAndEvaluateUsesTheCompileState) {
  set_global_seed(10);
  auto model = nn::applications::fashion_mnist_mlp();
  model->compile(optim::SGD(0.1f), nn::SparseCategoricalCrossentropy(true), {"accuracy"});
  Tensor x = images({16, 28, 28, 1}, DType::u8, 1);
  Tensor y = cast(random_uniform({16}, 0.f, 9.4f, 2), DType::s32);
  auto inference = runtime_export::trace(*model, x);
  Tensor before = inference->run(x);
  data::Dataset ds = data::Dataset::from_tensor_slices(x, y).batch(8);
  nn::Logs eager = model->evaluate(ds);
  nn::Logs traced = inference->evaluate(ds);
  EXPECT_NEAR(eager.at("loss"), traced.at("loss"), 1e-5);
  EXPECT_DOUBLE_EQ(eager.at("accuracy"), traced.at("accuracy"));
  Tensor predicted = inference->predict(x, 5);  // batches of 5, 5, 5 and 1: two plans
  EXPECT_LE(max_abs_diff(predicted, before), 1e-6);
  model->fit(ds, {.epochs = 1, .verbose = 0});
  EXPECT_EQ(inference->run(x).to_vector(), before.to_vector());
  EXPECT_GT(max_abs_diff((*model)(x), before), 1e-4);
  EXPECT_THROW((*inference)(x, /*training=*/true), std::invalid_argument);
}

// Issue 26: a graph whose input has a fixed batch of 0 crashed oneDNN (SIGFPE in the plan):
// a zero batch is refused whether the batch is symbolic or fixed, and such a file does not load.
TEST(InferenceModel, AZeroBatchIsRefusedAlways) {
  Tensor w = random_uniform({4, 3}, -1.f, 1.f, 1);
  graph::Graph g = graph::trace([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{matmul(in[0], w)}; },
                                {random_uniform({2, 4}, -1.f, 1.f, 2)}, {{"w", w}});
  runtime_export::InferenceModel symbolic(g);
  EXPECT_THROW(symbolic.run(Tensor::zeros({0, 4})), std::invalid_argument);
  graph::Graph fixed = g;
  for (graph::Value& v : fixed.values) {
    if (!v.shape.empty() && v.shape[0] == graph::kBatch) v.shape[0] = 0;
  }
  runtime_export::InferenceModel fixed_model(fixed);
  try {
    fixed_model.run(Tensor::zeros({0, 4}));
    ADD_FAILURE() << "ran a batch of zero";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("f32[0, 4]"), std::string::npos) << e.what();
  }
  std::string bytes = graph::serialize_graph(fixed);
  try {
    graph::parse_graph(bytes, "zero-batch.kgraph");
    ADD_FAILURE() << "loaded a graph whose input has a fixed batch of 0";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("zero-batch.kgraph"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fixed batch dimension of 0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kiln
