// Whole-model save and load (nn/model_io.h): predictions bit for bit, training that resumes bit
// for bit, subclassed models, and files that are corrupt, truncated or from another version.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "data/atomic_file.h"
#include "kiln.h"
#include "nn/applications/applications.h"
#include "nn/model_config.h"
#include "nn/model_io.h"
#include "tests/gradcheck.h"
#include "tests/blobs.h"
#include "tests/temp_path.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using testing::rand_tensor;

using kiln::testing::temp_path;

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor ca = a.clone_detached(), cb = b.clone_detached();
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

Tensor u8_images(const Shape& s, uint64_t seed) {
  RandomStream rs(seed);
  std::vector<float> v;
  for (int64_t i = 0; i < numel(s); ++i) v.push_back(static_cast<float>(rs.below(256)));
  return Tensor::from_vector(v, s, DType::u8);
}

// Saves, loads and checks that the copy is the same model: config, weights and predictions.
std::shared_ptr<Model> round_trip(Model& model, const Tensor& x, const std::string& file) {
  std::string path = temp_path(file);
  save_model(model, path);
  std::shared_ptr<Model> loaded = load_model(path);
  EXPECT_EQ(loaded->class_name(), model.class_name());
  EXPECT_EQ(loaded->name(), model.name());
  EXPECT_EQ(loaded->config(), model.config());
  std::vector<Variable> a = model.variables(), b = loaded->variables();
  EXPECT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    EXPECT_EQ(a[i].name(), b[i].name());
    EXPECT_TRUE(same_bits(a[i].value(), b[i].value())) << a[i].name();
    EXPECT_EQ(a[i].trainable(), b[i].trainable());
  }
  EXPECT_TRUE(same_bits(loaded->predict(x, 4), model.predict(x, 4)));
  return loaded;
}

TEST(SaveModel, FashionMnistMlpPredictsIdentically) {
  auto model = applications::fashion_mnist_mlp();
  model->build({28, 28, 1}, DType::u8);
  auto loaded = round_trip(*model, u8_images({6, 28, 28, 1}, 1), "mlp.kmodel");
  EXPECT_EQ(loaded->layers().size(), 5u);
  EXPECT_NE(dynamic_cast<Sequential*>(loaded.get()), nullptr);
}

TEST(SaveModel, KerasCnnPredictsIdentically) {
  auto model = applications::keras_cnn();
  model->build({28, 28, 1}, DType::u8);
  round_trip(*model, u8_images({5, 28, 28, 1}, 2), "cnn.kmodel");
}

TEST(SaveModel, ResNet18PredictsIdentically) {
  auto model = applications::resnet18({16, 16, 3}, 10);
  // Moving statistics away from their initial values, so the file must carry them.
  data::Dataset ds = data::Dataset::from_tensor_slices(rand_tensor({8, 16, 16, 3}, 3), Tensor::from_int32({0, 1, 2, 3, 4, 5, 6, 7}, {8})).batch(4);
  model->compile(optim::SGD(0.01f), SparseCategoricalCrossentropy(true));
  model->fit(ds, {.epochs = 1, .verbose = 0});
  auto loaded = round_trip(*model, rand_tensor({3, 16, 16, 3}, 4), "resnet18.kmodel");
  EXPECT_EQ(loaded->plan().steps, model->plan().steps);  // ReLUs folded alike
  EXPECT_EQ(loaded->graph().nodes.size(), model->graph().nodes.size());
}

TEST(SaveModel, NestedFunctionalModelPredictsIdentically) {
  SymbolicTensor bin = Input({6, 6, 3});
  Conv2DOptions same;
  same.padding = "same";
  SymbolicTensor bh = Activation("relu", "nb_relu")(BatchNormalization({}, "nb_bn")(Conv2D(3, 3, "", same, "nb_conv")(bin)));
  auto block = std::make_shared<Model>(bin, Add("nb_add")({bh, bin}), "nested_block");
  auto head = std::make_shared<Sequential>(std::vector<Layer>{Flatten("nh_flat"), Dense(5, "", {}, "nh_dense")}, "nested_head");
  SymbolicTensor in = Input({6, 6, 3});
  SymbolicTensor h = (*block)((*block)(in));  // the block twice: shared weights
  Model outer(in, (*head)(h), "nested_outer");
  auto loaded = round_trip(outer, rand_tensor({4, 6, 6, 3}, 5), "nested.kmodel");
  EXPECT_EQ(loaded->layers().size(), 2u);
  EXPECT_EQ(loaded->layers()[0]->class_name(), "Functional");
  EXPECT_EQ(loaded->layers()[1]->class_name(), "Sequential");
}

TEST(SaveModel, MixedPrecisionPoliciesAndMultipleInputsSurvive) {
  SymbolicTensor a = Input({4}), b = Input({4}, DType::u8);
  SymbolicTensor h = Dense(8, "relu", {}, "mp_dense").with_policy("mixed_bfloat16")(a);
  SymbolicTensor r = Rescaling(0.5f, 0.f, "mp_rescale")(b);
  SymbolicTensor out = Dense(2, "", {}, "mp_head")(Add("mp_add")({Dense(4, "", {}, "mp_proj")(h), r}));
  Model model({a, b}, {out, h}, "two_in_two_out");
  std::string path = temp_path("mp.kmodel");
  save_model(model, path);
  auto loaded = load_model(path);
  EXPECT_EQ(loaded->config(), model.config());
  EXPECT_EQ(loaded->layers()[0]->policy().name, "mixed_bfloat16");
  std::vector<Tensor> xs = {rand_tensor({3, 4}, 6), u8_images({3, 4}, 7)};
  std::vector<Tensor> y1 = model.call(xs, false), y2 = loaded->call(xs, false);
  ASSERT_EQ(y2.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(same_bits(y1[i], y2[i]));
  EXPECT_EQ(y2[1].dtype(), DType::bf16);
}

TEST(SaveModel, LoadingDrawsNoGlobalSeeds) {
  auto model = applications::fashion_mnist_mlp();
  model->build({28, 28, 1}, DType::u8);
  std::string path = temp_path("seeds.kmodel");
  save_model(*model, path);
  set_global_seed(123);
  uint64_t expected = next_global_seed();
  set_global_seed(123);
  load_model(path);
  EXPECT_EQ(next_global_seed(), expected);
}

// --- training resumes bit for bit ---

using kiln::testing::blobs;

std::unique_ptr<Model> resume_model(const optim::Optimizer& opt) {
  set_global_seed(7);
  SymbolicTensor in = Input({2});
  SymbolicTensor h = Dropout(0.2f, 11, "rs_drop")(BatchNormalization({}, "rs_bn")(Dense(16, "relu", {}, "rs_d1")(in)));
  auto m = std::make_unique<Model>(in, Dense(3, "", {}, "rs_d2")(h), "resume");
  m->compile(opt, SparseCategoricalCrossentropy(true), {"accuracy"});
  return m;
}

void expect_resumes_bit_for_bit(const optim::Optimizer& opt, const std::string& file) {
  SCOPED_TRACE(file);
  data::Dataset train = blobs(300, 4).shuffle(300, 8).batch(16);
  auto straight = resume_model(opt);
  History full = straight->fit(train, {.epochs = 4, .verbose = 0});

  auto first = resume_model(opt);
  first->fit(train, {.epochs = 2, .verbose = 0});
  std::string path = temp_path(file);
  save_model(*first, path);
  first.reset();
  std::shared_ptr<Model> resumed = load_model(path);
  ASSERT_TRUE(resumed->compiled());
  EXPECT_EQ(resumed->optimizer().iterations(), 2 * train.cardinality());
  EXPECT_EQ(resumed->metric_names(), (std::vector<std::string>{"accuracy"}));
  History rest = resumed->fit(train, {.epochs = 4, .verbose = 0, .initial_epoch = 2});
  ASSERT_EQ(rest.epochs, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(rest.history["loss"][0], full.history["loss"][2]);
  EXPECT_EQ(rest.history["loss"][1], full.history["loss"][3]);
  std::vector<Variable> a = straight->variables(), b = resumed->variables();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bits(a[i].value(), b[i].value())) << a[i].name();
}

TEST(SaveModel, TrainingResumesBitForBitWithTheOptimizerState) {
  expect_resumes_bit_for_bit(optim::Adam(optim::AdamOptions{.learning_rate = 0.01f, .amsgrad = true}), "adam.kmodel");
  expect_resumes_bit_for_bit(
      optim::SGD(optim::SGDOptions{.schedule = std::make_shared<optim::CosineDecay>(0.05f, 40, 0.1f), .momentum = 0.9f,
                                   .nesterov = true, .weight_decay = 1e-3f}),
      "sgd.kmodel");
  expect_resumes_bit_for_bit(optim::RMSprop(optim::RMSpropOptions{.learning_rate = 0.005f, .momentum = 0.5f, .centered = true,
                                                                  .clip = {.clipnorm = 1.f}}),
                             "rmsprop.kmodel");
}

TEST(SaveModel, OptimizerStateIsOptional) {
  auto model = resume_model(optim::Adam(0.01f));
  model->fit(blobs(60, 1).batch(20), {.epochs = 1, .verbose = 0});
  std::string path = temp_path("no_opt.kmodel");
  save_model(*model, path, {.include_optimizer = false});
  auto loaded = load_model(path);
  EXPECT_FALSE(loaded->compiled());
  Tensor x = rand_tensor({5, 2}, 3);
  EXPECT_TRUE(same_bits(loaded->predict(x), model->predict(x)));
  // Uncompiled models save without it too.
  SymbolicTensor in = Input({2});
  Model plain(in, Dense(2)(in));
  save_model(plain, path);
  EXPECT_FALSE(load_model(path)->compiled());
}

// --- subclassed models ---

class TwoDense : public Model {
 public:
  explicit TwoDense(const std::string& name = "two_dense") : Model(name), a_(Dense(4, "relu")), b_(Dense(2)) {}
  std::vector<Tensor> call(const std::vector<Tensor>& in, bool training) override {
    return {b_(a_(in[0], training), training)};
  }
  std::vector<Layer> layers() const override { return {a_, b_}; }

 private:
  Layer a_, b_;
};

class Registered : public TwoDense {
 public:
  explicit Registered(const std::string& name) : TwoDense(name) {}
  std::string class_name() const override { return "Registered"; }
};

TEST(SaveModel, SubclassedModelNamesWhatToRegister) {
  TwoDense model;
  model.build({3});
  try {
    save_model(model, temp_path("sub.kmodel"));
    FAIL();
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("TwoDense"), std::string::npos) << msg;
    EXPECT_NE(msg.find("register_model(\"TwoDense\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("class_name()"), std::string::npos) << msg;
  }
  Sequential unbuilt({Dense(2)});
  EXPECT_THROW(save_model(unbuilt, temp_path("unbuilt.kmodel")), std::logic_error);
}

TEST(SaveModel, RegisteredSubclassedModelLoadsThroughItsFactory) {
  Registered model("reg_model");
  model.build({3});
  std::string path = temp_path("registered.kmodel");
  save_model(model, path);
  try {
    load_model(path);  // not registered yet
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("register_model(\"Registered\""), std::string::npos) << e.what();
  }
  register_model("Registered", [](const Config& c) { return std::make_shared<Registered>(c.at("name").as_string()); });
  auto loaded = load_model(path);
  EXPECT_NE(dynamic_cast<Registered*>(loaded.get()), nullptr);
  EXPECT_EQ(loaded->name(), "reg_model");
  Tensor x = rand_tensor({4, 3}, 9);
  EXPECT_TRUE(same_bits((*loaded)(x), model(x)));
  // Registered models nest in functional models like any layer; their layers may be named
  // afresh by the factory, so their weights go by position.
  auto inner = std::make_shared<Registered>("reg_inner");
  SymbolicTensor in = Input({3});
  Model outer(in, Dense(2, "", {}, "reg_head")((*inner)(in)), "reg_outer");
  save_model(outer, path);
  auto outer_loaded = load_model(path);
  EXPECT_EQ(outer_loaded->config(), outer.config());
  EXPECT_NE(outer_loaded->variables()[0].name(), outer.variables()[0].name());
  EXPECT_TRUE(same_bits((*outer_loaded)(x), outer(x)));
}

// --- files that are not right ---

std::string file_bytes(const std::string& path) { return data::read_file(path); }

void put_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A saved model from sections, with a correct CRC, so the parser's own checks are reached.
std::string assemble(const std::vector<std::pair<std::string, std::string>>& sections, uint32_t version = 1) {
  std::string out = "KILNMODL";
  auto put32 = [&](uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  put32(version);
  put32(static_cast<uint32_t>(sections.size()));
  for (const auto& [tag, bytes] : sections) {
    out += tag;
    uint64_t n = bytes.size();
    out.append(reinterpret_cast<const char*>(&n), 8);
    out += bytes;
  }
  put32(static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(out.data()), out.size())));
  return out;
}

std::string load_error(const std::string& path) {
  try {
    load_model(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(accepted)";
}

std::string small_arch(const std::string& units = "3") {
  return R"({"class_name": "Sequential", "config": {"name": "s", "layers": [{"class_name": "Dense", "config": )"
         R"({"name": "d", "units": )" + units + R"(}}], "build_input_shape": [null, 2]}})";
}

std::string small_weights() {
  return serialize_checkpoint({{"d/kernel", Tensor::zeros({2, 3})}, {"d/bias", Tensor::zeros({3})}});
}

TEST(LoadModel, CorruptTruncatedAndWrongVersionFilesAreClearErrors) {
  const std::string path = temp_path("bad.kmodel");
  EXPECT_NE(load_error(temp_path("missing.kmodel")).find("cannot be opened"), std::string::npos);

  put_file(path, assemble({{"ARCH", small_arch()}, {"WGTS", small_weights()}}));
  ASSERT_EQ(load_error(path), "(accepted)");
  std::string good = file_bytes(path);

  struct Case {
    std::string bytes, message;
  };
  std::string flipped = good;
  flipped[40] ^= 0x10;
  std::vector<Case> cases = {
      {"", "not a Kiln saved model"},
      {"KILNCKPT" + good.substr(8), "not a Kiln saved model"},
      {good.substr(0, 12), "truncated"},
      {good.substr(0, good.size() - 1), "checksum"},
      {flipped, "checksum"},
      {assemble({{"ARCH", small_arch()}, {"WGTS", small_weights()}}, 2), "format version 2; this Kiln reads version 1"},
      {assemble({{"ARCH", small_arch()}}), "1 sections"},
      {assemble({{"WGTS", small_weights()}, {"ARCH", small_arch()}}), "should be ARCH"},
      {assemble({{"ARCH", small_arch() + " x"}, {"WGTS", small_weights()}}), "unexpected text after the value at byte"},
      {assemble({{"ARCH", "{\"class_name\": \"Sequential\"}"}, {"WGTS", small_weights()}}), "has no 'config'"},
      {assemble({{"ARCH", small_arch()}, {"WGTS", small_weights().substr(0, 30)}}), "(weights)"},
      {assemble({{"ARCH", small_arch("2")}, {"WGTS", small_weights()}}), "variable 'd/kernel' is saved as"},
      {assemble({{"ARCH", small_arch()},
                 {"WGTS", serialize_checkpoint({{"d/bias", Tensor::zeros({3})}, {"d/kernel", Tensor::zeros({2, 3})}})}}),
       "weight 0 is named 'd/bias' but the model's variable 0 is 'd/kernel'"},
      {assemble({{"ARCH", small_arch()}, {"WGTS", serialize_checkpoint({{"d/kernel", Tensor::zeros({2, 3})}})}}),
       "more than the file holds"},
      {assemble({{"ARCH", small_arch()}, {"WGTS", serialize_checkpoint({{"d/kernel", Tensor::zeros({2, 3})},
                                                                          {"d/bias", Tensor::zeros({3})},
                                                                          {"extra", Tensor::zeros({1})}})}}),
       "holds 3 weights, but the model it describes has 2 variables"},
      // A layer asking for far more weights than the file holds fails before allocating them.
      {assemble({{"ARCH", small_arch("100000")}, {"WGTS", small_weights()}}), "more than the file holds"},
      {assemble({{"ARCH", R"({"class_name": "Sequential", "config": {"layers": [{"class_name": "Flatten", "config": {}}], )"
                          R"("build_input_shape": [null, 100000, 100000]}})"},
                 {"WGTS", serialize_checkpoint({})}}),
       "over the loader's limit"},
      // A tiny file describing hours of work: a pooling window of 8192 x 8192 over 64 x 64 'same'.
      {assemble({{"ARCH", R"({"class_name": "Sequential", "config": {"layers": [{"class_name": "MaxPooling2D", )"
                          R"("config": {"pool_size": 8192, "strides": 1, "padding": "same"}}], )"
                          R"("build_input_shape": [null, 64, 64, 1]}})"},
                 {"WGTS", serialize_checkpoint({})}}),
       "more work than the loader allows"},
      {assemble({{"ARCH", R"({"class_name": "Sequential", "config": {"layers": [{"class_name": "Attention", "config": {}}]}})"},
                 {"WGTS", small_weights()}}),
       "register_layer(\"Attention\""},
      {assemble({{"ARCH", R"({"class_name": "MyNet", "config": {}})"}, {"WGTS", small_weights()}}),
       "register_model(\"MyNet\""},
      {assemble({{"ARCH", small_arch()}, {"WGTS", small_weights()}, {"COMP", "{}"}, {"OPTS", serialize_checkpoint({})}}),
       "compile state"},
      {good + "x", "checksum"},
  };
  for (const Case& c : cases) {
    put_file(path, c.bytes);
    std::string msg = load_error(path);
    EXPECT_NE(msg.find(c.message), std::string::npos) << "want: " << c.message << "\ngot: " << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }
  // Every strict prefix of a good file is rejected.
  for (size_t n = 0; n < good.size(); n += 7) {
    put_file(path, good.substr(0, n));
    EXPECT_NE(load_error(path), "(accepted)") << n;
  }
}

TEST(LoadModel, FunctionalGraphErrorsAreCaught) {
  const std::string path = temp_path("graph.kmodel");
  auto arch = [](const std::string& layers, const std::string& outputs) {
    return R"({"class_name": "Functional", "config": {"name": "f", "layers": [)"
           R"({"class_name": "InputLayer", "name": "in", "config": {"batch_shape": [null, 2]}, "inbound_nodes": []}, )" +
           layers + R"(], "input_layers": [["in", 0, 0]], "output_layers": [)" + outputs + "]}}";
  };
  auto dense = [](const std::string& name, const std::string& inbound) {
    return R"({"class_name": "Dense", "name": ")" + name + R"(", "config": {"name": ")" + name +
           R"(", "units": 2}, "inbound_nodes": [)" + inbound + "]}";
  };
  std::string w = serialize_checkpoint({{"a/kernel", Tensor::zeros({2, 2})}, {"a/bias", Tensor::zeros({2})},
                                        {"b/kernel", Tensor::zeros({2, 2})}, {"b/bias", Tensor::zeros({2})}});
  struct Case {
    std::string arch, message;
  };
  std::vector<Case> cases = {
      {arch(dense("a", R"([["in", 0, 0]])") + ", " + dense("b", R"([["a", 0, 0]])"), R"(["b", 0, 0])"), "(accepted)"},
      {arch(dense("a", R"([["b", 0, 0]])") + ", " + dense("b", R"([["a", 0, 0]])"), R"(["b", 0, 0])"), "cycle"},
      {arch(dense("a", R"([["in", 0, 0]])") + ", " + dense("b", R"([["zz", 0, 0]])"), R"(["b", 0, 0])"),
       "unknown layer 'zz'"},
      {arch(dense("a", R"([["in", 0, 0]])") + ", " + dense("b", R"([["a", 3, 0]])"), R"(["b", 0, 0])"), "node 3 of layer 'a'"},
      {arch(dense("a", R"([["in", 0, 0]])") + ", " + dense("b", R"([["a", 0, 1]])"), R"(["b", 0, 0])"), "refers to tensor 1 of layer 'a', which has 1 output(s)"},
      {arch(dense("a", R"([["in", 0, 0]])") + ", " + dense("a", R"([["a", 0, 0]])"), R"(["a", 0, 0])"), "two layers are named 'a'"},
      {arch(dense("a", R"([["in", 0, 0]])") + ", " + dense("b", R"([["in", 0, 0]])"), R"(["b", 0, 0])"),
       "'a' does not lead to any output"},
      {arch(dense("a", R"([["in", 0, 0]])") + ", " + dense("b", ""), R"(["a", 0, 0])"), "'b' is never called"},
      {arch(dense("a", R"([["in", 0, 0], ["in", 0]])") + ", " + dense("b", R"([["a", 0, 0]])"), R"(["b", 0, 0])"),
       "must be [layer name, node index, tensor index]"},
  };
  for (const Case& c : cases) {
    put_file(path, assemble({{"ARCH", c.arch}, {"WGTS", w}}));
    std::string msg = load_error(path);
    EXPECT_NE(msg.find(c.message), std::string::npos) << "want: " << c.message << "\ngot: " << msg << "\n" << c.arch;
  }
}

// Issue 26: a compile state with iterations = INT64_MAX loaded and the first fit step
// overflowed. Counts are bounded where they are set, and a step at the bound fails cleanly.
TEST(LoadModel, StepCountsAreBoundedWhereSetAndAtTheStep) {
  auto model = resume_model(optim::SGD(0.01f));
  optim::Optimizer& opt = model->optimizer();
  EXPECT_THROW(opt.set_iterations(-1), std::invalid_argument);
  EXPECT_THROW(opt.set_iterations(INT64_MAX), std::invalid_argument);
  opt.set_iterations(optim::kMaxIterations);
  try {
    model->fit(blobs(20, 1).batch(20), {.epochs = 1, .verbose = 0});
    ADD_FAILURE() << "stepped past the step limit";
  } catch (const std::overflow_error& e) {
    EXPECT_NE(std::string(e.what()).find("at its limit"), std::string::npos) << e.what();
  }
}

// Issue 26: each probe tensor was bounded, their sum was not, so a few-KB file with one
// input dimension of 2^20 drove a load to gigabytes. All probes of a load share one budget.
TEST(LoadModel, ProbesShareOneActivationBudgetForTheWholeLoad) {
  SymbolicTensor in = Input({int64_t{1} << 20, 5, 2});
  SymbolicTensor x = in;
  for (int i = 0; i < 8; ++i) x = Activation("relu")(x);
  Model wide(in, x);
  std::string path = temp_path("wide.kmodel");
  save_model(wide, path);
  EXPECT_LT(std::filesystem::file_size(path), 4096u);
  try {
    load_model(path);
    ADD_FAILURE() << "loaded a weightless model whose probes need "
                  << 16 * (uint64_t{40} << 20) << " bytes together";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("budget for all activations together"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_EQ(load_activation_budget(0), kMaxLoadActivationBytes);
  EXPECT_EQ(load_activation_budget(UINT64_MAX), UINT64_MAX);
}
}  // namespace
}  // namespace kiln
