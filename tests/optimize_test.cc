// kiln::optimize: Conv2D kernels and their optimizer slots live in oneDNN's blocked layout
// across steps, while everything that reads weights still sees the Keras layout.
#include <gtest/gtest.h>

#include "graph/graph_io.h"
#include "graph/trace.h"
#include "kiln.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_export.h"
#include "tensor/onednn/packed.h"
#include "tests/temp_path.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using kiln::testing::temp_path;

// Keras's example CNN on 28x28x1 images (32 and 64 channels: oneDNN picks blocked kernels),
// with fixed layer names so checkpoints move between instances.
std::unique_ptr<Sequential> named_cnn() {
  Conv2DOptions same{.padding = "same"};
  return std::make_unique<Sequential>(
      std::vector<Layer>{Rescaling(1.f / 255, 0.f, "scale"), Conv2D(16, 3, "relu", same, "c1"), MaxPooling2D({2, 2}, {0, 0}, "valid", "p1"),
                         Conv2D(32, 3, "relu", same, "c2"), MaxPooling2D({2, 2}, {0, 0}, "valid", "p2"), Conv2D(64, 3, "relu", same, "c3"),
                         MaxPooling2D({2, 2}, {0, 0}, "valid", "p3"), Flatten("flat"), Dense(128, "relu", {}, "d1"), Dense(10, "", {}, "d2")},
      "cnn");
}

std::unique_ptr<Sequential> cnn(uint64_t seed, const std::string& policy = "float32") {
  set_global_seed(seed);
  auto m = named_cnn();
  m->set_policy(policy);
  m->build({28, 28, 1});
  return m;
}

Tensor images(int64_t n, uint64_t seed) {
  return random_uniform({n, 28, 28, 1}, 0.f, 255.f, seed);
}

Tensor labels(int64_t n) {
  std::vector<int32_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>((i * 7) % 10);
  return Tensor::from_int32(v, {n});
}

std::vector<std::vector<float>> weights_of(const Model& m) {
  std::vector<std::vector<float>> out;
  for (const Variable& v : m.variables()) out.push_back(v.value().to_vector());
  return out;
}

int packed_count(const Model& m) {
  int n = 0;
  for (const Variable& v : m.variables()) n += v.value().is_packed();
  return n;
}

void expect_near(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b, float tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size());
    float worst = 0;
    for (size_t k = 0; k < a[i].size(); ++k) worst = std::max(worst, std::abs(a[i][k] - b[i][k]));
    EXPECT_LE(worst, tol) << "variable " << i;
  }
}

// A custom loop: the losses of `steps` steps.
std::vector<float> train(Model& m, optim::Optimizer& opt, int steps) {
  SparseCategoricalCrossentropy loss_fn(true);
  std::vector<float> losses;
  for (int s = 0; s < steps; ++s) {
    Tensor x = images(8, 100 + s), y = labels(8);
    GradientTape tape;
    Tensor loss = loss_fn(y, m(x, true));
    auto grads = tape.gradient(loss, m.trainable_variables());
    opt.apply_gradients(grads, m.trainable_variables());
    losses.push_back(loss.item());
  }
  return losses;
}

TEST(PackedTensor, KeepsItsValuesAndRefusesRowMajorAccess) {
  set_global_seed(3);
  Tensor w = random_normal({3, 3, 16, 32}, 0.f, 1.f, 3);
  Tensor packed = pack_conv2d_kernel(w, {8, 14, 14, 16}, {}, DType::f32);
  ASSERT_TRUE(packed.is_packed()) << "oneDNN ran this conv on HWIO: the test needs a blocked kernel";
  EXPECT_EQ(packed.shape(), w.shape());
  EXPECT_EQ(packed.to_vector(), w.to_vector());
  EXPECT_EQ(packed.plain().to_vector(), w.to_vector());
  EXPECT_NE(packed.describe().find("packed:"), std::string::npos) << packed.describe();
  try {
    packed.data<float>();
    ADD_FAILURE() << "row-major access to a packed tensor";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("packed"), std::string::npos) << e.what();
  }
  EXPECT_THROW(packed.alias({3 * 3 * 16 * 32}, {1}, 0), std::logic_error);
  // Ops that know nothing of the layout read it through its row-major copy.
  EXPECT_EQ((packed * 2.f).to_vector(), (w * 2.f).to_vector());
  // A conv gives the same result from either layout.
  Tensor x = random_normal({2, 7, 7, 16}, 0.f, 1.f, 4);
  EXPECT_EQ(conv2d(x, packed, Tensor()).to_vector(), conv2d(x, w, Tensor()).to_vector());
  // Writes go through the layout too, and relayout keeps the tensor's identity.
  Tensor v = w.clone_detached();
  uint64_t id = v.id();
  v.relayout_from(packed);
  EXPECT_TRUE(v.is_packed());
  EXPECT_EQ(v.id(), id);
  v.copy_from(Tensor::full(w.shape(), 0.5f));
  EXPECT_EQ(v.to_vector(), std::vector<float>(w.numel(), 0.5f));
  v.fill(2.f);
  EXPECT_EQ(v.plain().to_vector(), std::vector<float>(w.numel(), 2.f));
}

TEST(Optimize, PacksConvKernelsAndKeepsKerasViews) {
  auto m = cnn(1);
  auto before = weights_of(*m);
  Tensor x = images(4, 9);
  std::vector<float> out_before = (*m)(x).to_vector();
  optim::Adam adam({});
  OptimizeReport r = optimize(*m, adam);
  EXPECT_EQ(r.packed_variables, 3) << r.describe();
  EXPECT_EQ(packed_count(*m), 3);
  EXPECT_EQ(weights_of(*m), before);
  EXPECT_EQ((*m)(x).to_vector(), out_before);
  for (const Variable& v : m->variables()) {
    if (v.value().is_packed()) {
      EXPECT_EQ(v.shape().size(), 4u) << v.name();  // HWIO shapes stay
    }
  }
  // Undone on request.
  OptimizeReport undone = optimize(*m, nullptr, {.pack_weights = false});
  EXPECT_EQ(undone.packed_variables, 0);
  EXPECT_EQ(packed_count(*m), 0);
  EXPECT_EQ(weights_of(*m), before);
}

TEST(Optimize, ModelNotBuiltYetPacksWhenItBuildsAndTakesTheDtype) {
  set_global_seed(1);
  auto m = named_cnn();
  OptimizeReport r = optimize(*m, nullptr, {.dtype = DType::bf16});
  EXPECT_EQ(r.packed_variables, 0);
  EXPECT_EQ(r.policy, "mixed_bfloat16");
  m->build({28, 28, 1});
  EXPECT_EQ(packed_count(*m), 3);
  for (const Variable& v : m->variables()) EXPECT_EQ(v.dtype(), DType::f32);  // master weights
  // A built model cannot change its policy.
  auto built = cnn(1);
  EXPECT_THROW(optimize(*built, nullptr, {.dtype = DType::bf16}), std::invalid_argument);
}

// The same training steps from the same start, packed or not: the same losses and weights.
void expect_same_training(const std::function<std::unique_ptr<optim::Optimizer>()>& make_opt, float tol,
                          const std::string& policy = "float32") {
  auto plain = cnn(5, policy), packed = cnn(5, policy);
  auto opt_plain = make_opt(), opt_packed = make_opt();
  // Packing after a first step also moves the slots that exist already.
  std::vector<float> l1 = train(*plain, *opt_plain, 1), l2 = train(*packed, *opt_packed, 1);
  optimize(*packed, *opt_packed);
  ASSERT_EQ(packed_count(*packed), 3);
  std::vector<float> a = train(*plain, *opt_plain, 4), b = train(*packed, *opt_packed, 4);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol * std::max(1.f, std::abs(a[i]))) << "step " << i;
  expect_near(weights_of(*plain), weights_of(*packed), tol);
  auto slots_a = opt_plain->slot_state(plain->trainable_variables());
  auto slots_b = opt_packed->slot_state(packed->trainable_variables());
  ASSERT_EQ(slots_a.size(), slots_b.size());
  for (size_t i = 0; i < slots_a.size(); ++i) {
    auto suffix = [](const std::string& s) { return s.substr(s.find('/')); };  // layer names are numbered
    EXPECT_EQ(suffix(slots_a[i].first), suffix(slots_b[i].first));
    EXPECT_FALSE(slots_b[i].second.is_packed());  // checkpoints see the Keras layout
    expect_near({slots_a[i].second.to_vector()}, {slots_b[i].second.to_vector()}, tol);
  }
}

TEST(Optimize, TrainsLikeTheUnpackedModelWithAdam) {
  expect_same_training([] { return std::make_unique<optim::Adam>(optim::AdamOptions{.learning_rate = 1e-3f}); },
                       1e-5f);
}

TEST(Optimize, TrainsLikeTheUnpackedModelWithSgdMomentumDecayAndClipping) {
  expect_same_training(
      [] {
        return std::make_unique<optim::SGD>(optim::SGDOptions{
            .learning_rate = 0.01f, .momentum = 0.9f, .nesterov = true, .weight_decay = 1e-3f, .clip = {.clipnorm = 1.f}});
      },
      1e-5f);
  expect_same_training(
      [] {
        return std::make_unique<optim::RMSprop>(
            optim::RMSpropOptions{.weight_decay = 1e-2f, .clip = {.clipvalue = 0.01f}, .pytorch_style = true});
      },
      1e-5f);
}

TEST(Optimize, TrainsLikeTheUnpackedModelUnderMixedBfloat16) {
  expect_same_training([] { return std::make_unique<optim::Adam>(optim::AdamOptions{.learning_rate = 1e-3f}); },
                       1e-5f, "mixed_bfloat16");
}

TEST(Optimize, CheckpointsMoveBetweenPackedAndPlainModels) {
  auto packed = cnn(2);
  packed->compile(optim::Adam({}), SparseCategoricalCrossentropy(true));
  optimize(*packed, packed->optimizer());
  data::Dataset ds = data::Dataset::from_tensor_slices(images(32, 4), labels(32)).batch(8);
  packed->fit(ds, {.epochs = 1, .verbose = 0});
  ASSERT_EQ(packed_count(*packed), 3);
  std::string path = temp_path("packed.kckpt");
  packed->save_checkpoint(path, 1);

  auto plain = cnn(77);
  plain->compile(optim::Adam({}), SparseCategoricalCrossentropy(true));
  plain->load_checkpoint(path);
  EXPECT_EQ(weights_of(*plain), weights_of(*packed));
  EXPECT_EQ(packed_count(*plain), 0);
  auto sa = packed->optimizer().slot_state(packed->trainable_variables());
  auto sb = plain->optimizer().slot_state(plain->trainable_variables());
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) EXPECT_EQ(sa[i].second.to_vector(), sb[i].second.to_vector()) << sa[i].first;

  // The other way: a plain model's weights load into a packed one, which stays packed.
  std::string plain_path = temp_path("plain.kckpt");
  auto source = cnn(31);
  source->save_weights(plain_path);
  packed->load_weights(plain_path);
  EXPECT_EQ(packed_count(*packed), 3);
  EXPECT_EQ(weights_of(*packed), weights_of(*source));
  Tensor x = images(3, 5);
  EXPECT_EQ((*packed)(x).to_vector(), (*source)(x).to_vector());
  // Training continues in the packed layout after the load.
  packed->fit(ds, {.epochs = 1, .verbose = 0});
  EXPECT_EQ(packed_count(*packed), 3);
}

TEST(Optimize, TraceGraphFileAndOnnxSeeKerasLayouts) {
  auto packed = cnn(8), plain = cnn(8);
  optimize(*packed);
  Tensor x = images(2, 6);
  graph::Graph gp = graph::trace(*packed, x), gq = graph::trace(*plain, x);
  EXPECT_EQ(runtime_export::serialize_onnx(gp), runtime_export::serialize_onnx(gq));
  std::string path = temp_path("packed.kgraph");
  graph::save_graph(gp, path);
  graph::Graph loaded = graph::load_graph(path);
  EXPECT_EQ(loaded.run({x}).to_vector(), (*plain)(x).to_vector());
  auto infer = runtime_export::trace(*packed, x);
  auto expected = (*plain)(x).to_vector();
  auto got = infer->predict(x).to_vector();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-4f);
}

}  // namespace
}  // namespace kiln
