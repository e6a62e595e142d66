// Layers as data: every layer's config() round trips through from_config (and through JSON) to
// an equivalent layer, the registry names what is missing, and bad configs fail clearly.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <set>

#include "kiln.h"
#include "nn/config_reader.h"
#include "nn/layer_registry.h"
#include "nn/model_config.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using testing::rand_tensor;

// A custom layer, saved and loaded through the registry as a user would: y = x * factor.
class ScaleImpl : public LayerImpl {
 public:
  ScaleImpl(float init, const std::string& name) : LayerImpl("scale", name), init_(init) {}
  void build(const std::vector<Shape>& shapes) override { factor_ = add_weight("factor", {shapes[0].back()}, "ones"); }
  Tensor call(const std::vector<Tensor>& in, bool) override {
    return in[0] * (compute_value(factor_) * Tensor::scalar(init_, in[0].dtype()));
  }
  std::string class_name() const override { return "Scale"; }
  Config config() const override { return LayerImpl::config().set("init", init_); }

 private:
  float init_;
  Variable factor_;
};

const bool scale_registered = [] {
  register_layer("Scale", [](const Config& c) {
    ConfigReader r(c, "Scale config");
    std::string name = r.string("name");
    r.boolean("trainable", true);
    r.string("dtype", "");
    float init = r.real("init");
    r.finish();
    return Layer(std::make_shared<ScaleImpl>(init, name));
  });
  return true;
}();

struct Row {
  std::string class_name;
  std::function<Layer()> make;
  std::vector<Shape> inputs;  // batch first
  DType dtype = DType::f32;
};

Tensor input_like(const Shape& s, DType dtype, uint64_t seed) {
  if (dtype == DType::u8) {
    std::vector<float> v;
    RandomStream rs(seed);
    for (int64_t i = 0; i < numel(s); ++i) v.push_back(static_cast<float>(rs.below(256)));
    return Tensor::from_vector(v, s, DType::u8);
  }
  return rand_tensor(s, seed);
}

std::shared_ptr<Model> residual_block() {
  Conv2DOptions same;
  same.padding = "same";
  SymbolicTensor in = Input({6, 6, 4});
  SymbolicTensor h = Activation("relu", "rb_act")(BatchNormalization({}, "rb_bn")(Conv2D(4, 3, "", same, "rb_conv")(in)));
  SymbolicTensor out = Activation("relu", "rb_out")(Add("rb_add")({h, in}));
  return std::make_shared<Model>(in, out, "residual_block");
}

std::vector<Row> rows() {
  Conv2DOptions conv;
  conv.strides = {2, 1};
  conv.padding = "same";
  conv.groups = 2;
  conv.use_bias = false;
  conv.kernel_initializer = "he_normal";
  Conv2DOptions dilated;
  dilated.dilation_rate = {2, 2};
  dilated.bias_initializer = "ones";
  return {
      {"Dense", [] { return Dense(7, "tanh", {.use_bias = false, .kernel_initializer = "lecun_normal"}, "cfg_dense"); },
       {{3, 5}}},
      {"Dense", [] { return Dense(4, "relu").with_policy("mixed_bfloat16"); }, {{2, 3, 6}}},
      {"Conv2D", [conv] { return Conv2D(6, {3, 2}, "relu", conv); }, {{2, 9, 8, 4}}},
      {"Conv2D", [dilated] { return Conv2D(3, 3, "sigmoid", dilated); }, {{1, 9, 9, 2}}},
      // Convolution family (issue 21).
      {"DepthwiseConv2D",
       [] { return DepthwiseConv2D({3, 2}, "relu", {.strides = {2, 1}, .padding = "same", .depth_multiplier = 2, .bias_initializer = "ones"}); },
       {{2, 7, 6, 3}}},
      {"SeparableConv2D",
       [] { return SeparableConv2D(5, 3, "tanh", {.dilation_rate = {2, 1}, .depth_multiplier = 3, .use_bias = false}); },
       {{1, 8, 7, 2}}},
      {"Conv1D", [] { return Conv1D(4, 3, "relu", {.padding = "causal", .dilation_rate = 2}); }, {{2, 9, 3}}},
      {"Conv1D", [] { return Conv1D(6, 2, "", {.strides = 2, .padding = "same", .groups = 3}); }, {{2, 7, 3}}},
      {"MaxPooling2D", [] { return MaxPooling2D({3, 3}, {2, 2}, "same"); }, {{2, 7, 7, 3}}},
      {"AveragePooling2D", [] { return AveragePooling2D({2, 2}, {0, 0}, "valid"); }, {{2, 6, 5, 3}}},
      {"GlobalAveragePooling2D", [] { return GlobalAveragePooling2D(true); }, {{2, 4, 3, 5}}},
      {"BatchNormalization",
       [] { return BatchNormalization({.momentum = 0.9f, .epsilon = 1e-5f, .center = false, .scale = true}); },
       {{4, 3, 3, 2}}},
      {"Dropout", [] { return Dropout(0.3f, 1234); }, {{4, 10}}},
      {"Dropout", [] { return Dropout(0.5f); }, {{4, 10}}},  // a drawn seed, stored resolved
      {"Flatten", [] { return Flatten(); }, {{2, 3, 4, 5}}},
      {"ZeroPadding2D", [] { return ZeroPadding2D({{{1, 2}, {0, 3}}}); }, {{2, 4, 5, 3}}},
      {"ZeroPadding1D", [] { return ZeroPadding1D({2, 1}); }, {{2, 4, 3}}},
      {"Conv2DTranspose",
       [] {
         return Conv2DTranspose(3, {3, 2}, "relu",
                                {.strides = {2, 1}, .padding = "same", .output_padding = std::array<int64_t, 2>{1, 0}});
       },
       {{2, 4, 5, 3}}},
      {"Conv2DTranspose", [] { return Conv2DTranspose(2, 2, "", {.dilation_rate = {2, 2}, .use_bias = false}); }, {{1, 4, 4, 2}}},
      {"UpSampling2D", [] { return UpSampling2D({2, 3}, "bilinear"); }, {{2, 3, 4, 2}}},
      {"Resizing", [] { return Resizing(5, 7, {.interpolation = "nearest"}); }, {{2, 3, 4, 2}}},
      {"Rescaling", [] { return Rescaling(1.f / 127.5f, -1.f); }, {{2, 4, 4, 1}}, DType::u8},
      {"Activation", [] { return Activation("gelu"); }, {{2, 5}}},
      {"Activation", [] { return Activation(""); }, {{2, 5}}},
      {"Add", [] { Layer a = Add(); a->trainable = false; return a; }, {{2, 3}, {2, 3}, {2, 3}}},
      {"Softmax", [] { return Softmax(1); }, {{2, 3, 4}}},
      // u8 ids in [0, 256): every one inside the vocabulary.
      {"Embedding", [] { return Embedding(256, 5, {.embeddings_initializer = "glorot_uniform", .mask_zero = true}); },
       {{2, 7}}, DType::u8},
      {"LayerNormalization",
       [] { return LayerNormalization({.epsilon = 1e-5f, .center = false, .gamma_initializer = "glorot_uniform"}); },
       {{2, 3, 6}}},
      {"Masking", [] { return Masking(0.25f); }, {{2, 4, 3}}},
      {"MultiHeadAttention", [] { return MultiHeadAttention(2, 3, {.value_dim = 4, .output_shape = {5}}); },
       {{2, 4, 6}, {2, 3, 6}}},
      // Issue 22: recurrent layers.
      {"LSTM", [] { return LSTM(4, {.use_bias = false, .return_sequences = true, .go_backwards = true}); }, {{2, 5, 3}}},
      {"GRU", [] { return GRU(3, {.kernel_initializer = "he_uniform"}); }, {{2, 5, 3}}},
      {"SimpleRNN", [] { return SimpleRNN(3, {.return_sequences = true}); }, {{2, 5, 3}}},
      {"Bidirectional", [] { return Bidirectional(LSTM(3, {.return_sequences = true}), "ave"); }, {{2, 5, 3}}},
      {"GlobalAveragePooling1D", [] { return GlobalAveragePooling1D(true); }, {{2, 5, 3}}},
      {"GlobalMaxPooling1D", [] { return GlobalMaxPooling1D(); }, {{2, 5, 3}}},
      // Issue 22's ViT: a sequence shorter than sequence_length reads the first rows.
      {"AddPositionEmbedding", [] { return AddPositionEmbedding(7, "he_uniform"); }, {{2, 5, 3}}},
      // Issue 21: activations, pooling, merge and shape layers.
      {"Activation", [] { return Activation("hard_silu"); }, {{2, 5}}},
      {"ReLU", [] { return ReLU(); }, {{2, 5}}},
      {"ReLU", [] { return ReLU(6.f, 0.1f, 0.5f); }, {{2, 5}}},
      {"GlobalMaxPooling2D", [] { return GlobalMaxPooling2D(true); }, {{2, 4, 3, 5}}},
      {"Subtract", [] { return Subtract(); }, {{2, 3}, {2, 3}}},
      {"Multiply", [] { return Multiply(); }, {{2, 4, 4, 3}, {2, 1, 1, 3}}},
      {"Average", [] { return Average(); }, {{2, 3}, {2, 3}, {2, 3}}},
      {"Maximum", [] { return Maximum(); }, {{2, 3}, {2, 1}}},
      {"Minimum", [] { return Minimum(); }, {{2, 3}, {2, 3}}},
      {"Concatenate", [] { return Concatenate(1); }, {{2, 3, 2}, {2, 1, 2}}},
      {"Reshape", [] { return Reshape({2, -1}); }, {{2, 3, 4}}},
      {"Permute", [] { return Permute({2, 1}); }, {{2, 3, 4}}},
      {"Scale", [] { return Layer(std::make_shared<ScaleImpl>(0.75f, "cfg_scale")); }, {{2, 3}}},
      {"Functional", [] { return residual_block()->as_layer(); }, {{2, 6, 6, 4}}},
      {"Sequential",
       [] {
         auto s = std::make_shared<Sequential>(std::vector<Layer>{Dense(4, "relu"), Dropout(0.2f, 5), Dense(2)});
         s->build({3});
         return s->as_layer();
       },
       {{2, 3}}},
  };
}

std::vector<Tensor> inputs_for(const Row& row, uint64_t seed) {
  std::vector<Tensor> xs;
  for (const Shape& s : row.inputs) xs.push_back(input_like(s, row.dtype, seed++));
  return xs;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor ca = a.clone_detached(), cb = b.clone_detached();
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

TEST(LayerConfig, EveryRowRoundTripsToAnEquivalentLayer) {
  for (const Row& row : rows()) {
    SCOPED_TRACE(row.class_name);
    Layer original = row.make();
    std::vector<Tensor> xs = inputs_for(row, 11);
    Tensor y = original(xs, false);
    EXPECT_EQ(original->class_name(), row.class_name);
    std::vector<Shape> shapes;
    for (const Tensor& x : xs) shapes.push_back(x.shape());
    if (std::optional<Shape> predicted = original->compute_output_shape(shapes)) {
      EXPECT_EQ(*predicted, y.shape());
    }

    Config config = original->config();
    EXPECT_EQ(config.at("name").as_string(), original->name());
    EXPECT_EQ(config.at("trainable").kind(), Config::Kind::boolean);
    EXPECT_EQ(parse_config_json(config.to_json(), "row"), config) << config.to_json();

    Layer copy = layer_from_config(row.class_name, parse_config_json(config.to_json(2), "row"));
    EXPECT_EQ(copy->config(), config) << copy->config().to_json() << "\nvs\n" << config.to_json();
    EXPECT_EQ(copy->name(), original->name());
    EXPECT_EQ(copy->trainable, original->trainable);
    EXPECT_EQ(copy->policy().name, original->policy().name);
    Layer again = deserialize_layer(serialize_layer(original));
    EXPECT_EQ(again->config(), config);

    // Same weights in, same bits out, in inference and in training (Dropout draws the same
    // masks from the same seed; BatchNorm's moving statistics move alike).
    copy(xs, false);
    std::vector<Variable> a = original->variables(), b = copy->variables();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].name(), b[i].name());
      b[i].value().copy_from(a[i].value());
    }
    EXPECT_TRUE(same_bits(copy(xs, false), original(xs, false)));
    EXPECT_TRUE(same_bits(copy(xs, true), original(xs, true)));
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bits(a[i].value(), b[i].value())) << a[i].name();
  }
}

// Adding a layer class means adding its row above: this fails for a registered class without one.
TEST(LayerConfig, EveryRegisteredLayerClassHasARoundTripRow) {
  std::set<std::string> covered;
  for (const Row& row : rows()) covered.insert(row.class_name);
  std::vector<std::string> registered = registered_layer_classes();
  EXPECT_GE(registered.size(), 15u);
  for (const std::string& name : registered) {
    EXPECT_TRUE(covered.count(name)) << "layer class '" << name << "' is registered but has no row in rows()";
  }
  for (const std::string& name : covered) EXPECT_TRUE(is_layer_registered(name)) << name;
}

TEST(LayerConfig, DenseConfigUsesKerasNames) {
  Layer d = Dense(10, "relu", {}, "head");
  Config c = d->config();
  EXPECT_EQ(c.to_json(),
            R"({"name": "head", "trainable": true, "dtype": "float32", "units": 10, "activation": "relu", )"
            R"("use_bias": true, "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"})");
  Layer pool = MaxPooling2D();
  EXPECT_EQ(pool->config().at("strides"), Config::pair({2, 2}));  // resolved as Keras stores it
}

// Keras 3.15.1 stores a layer's activation as the function, so aliases come back under the
// function's name (Dense(activation="swish").get_config()["activation"] == "silu"), while the
// Activation layer keeps the string it was given (Activation("swish") -> "swish").
TEST(LayerConfig, ActivationAliasesSerializeAsKerasDoes) {
  EXPECT_EQ(Dense(3, "swish")->config().at("activation"), Config("silu"));
  EXPECT_EQ(Dense(3, "hard_swish")->config().at("activation"), Config("hard_silu"));
  EXPECT_EQ(Dense(3)->config().at("activation"), Config("linear"));
  EXPECT_EQ(Conv2D(2, 3, "hard_swish")->config().at("activation"), Config("hard_silu"));
  EXPECT_EQ(DepthwiseConv2D(3, "swish")->config().at("activation"), Config("silu"));
  EXPECT_EQ(Activation("hard_swish")->config().at("activation"), Config("hard_swish"));
}

TEST(LayerConfig, FromConfigTakesKerasDefaults) {
  Layer d = layer_from_config("Dense", parse_config_json(R"({"units": 3})", "x"));
  EXPECT_EQ(d->config().at("activation").as_string(), "linear");
  EXPECT_EQ(d->config().at("use_bias").as_bool(), true);
  Layer c = layer_from_config("Conv2D", parse_config_json(R"({"filters": 2, "kernel_size": 3, "strides": 2})", "x"));
  EXPECT_EQ(c->config().at("kernel_size"), Config::pair({3, 3}));
  EXPECT_EQ(c->config().at("strides"), Config::pair({2, 2}));
  EXPECT_EQ(c(rand_tensor({1, 7, 7, 1}, 1)).shape(), (Shape{1, 3, 3, 2}));
}

TEST(LayerConfig, UnknownClassNamesWhatToRegister) {
  try {
    layer_from_config("MyAttention", Config::map());
    FAIL();
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("'MyAttention'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("register_layer(\"MyAttention\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("Dense"), std::string::npos) << msg;  // lists what is registered
  }
}

TEST(LayerConfig, BadConfigsAreClearErrors) {
  struct Case {
    std::string class_name, json, message;
  };
  std::vector<Case> cases = {
      {"Dense", R"({})", "Dense config has no 'units'"},
      {"Dense", R"({"units": 0})", "'units' is 0, outside"},
      {"Dense", R"({"units": "10"})", "'units' must be an integer"},
      {"Dense", R"({"units": 2, "kernel_regularizer": null})", "unknown key 'kernel_regularizer'"},
      {"Dense", R"({"units": 2, "activation": "swoosh"})", "unknown activation 'swoosh'"},
      {"Dense", R"({"units": 2, "kernel_initializer": "variance_scaling"})", "unknown initializer 'variance_scaling'"},
      {"Dense", R"({"units": 2, "dtype": "float16"})", "unknown dtype policy 'float16'"},
      {"Dense", R"({"units": 2, "name": ""})", "'name' must be a non-empty string"},
      {"Dense", R"({"units": 2, "trainable": 1})", "'trainable' must be true or false"},
      {"Dense", R"([1])", "Dense config must be a map"},
      {"Conv2D", R"({"filters": 2})", "'kernel_size' is required"},
      {"Conv2D", R"({"filters": 2, "kernel_size": [3]})", "'kernel_size' must be an integer or a list of 2"},
      {"Conv2D", R"({"filters": 2, "kernel_size": 3, "strides": [1, 0]})", "'strides' holds 0"},
      {"Conv2D", R"({"filters": 2, "kernel_size": 3, "padding": "full"})", "'padding'"},
      {"Conv2D", R"({"filters": 2, "kernel_size": 3, "data_format": "channels_first"})", "channels_last"},
      {"Conv2D", R"({"filters": 2, "kernel_size": 3, "groups": 0})", "'groups' is 0"},
      {"MaxPooling2D", R"({"pool_size": [2, 9999999999]})", "'pool_size' holds 9999999999"},
      {"BatchNormalization", R"({"momentum": 1.5})", "'momentum' must be in [0, 1]"},
      {"BatchNormalization", R"({"epsilon": 0.0})", "'epsilon' must be positive"},
      {"BatchNormalization", R"({"axis": 1})", "'axis' is 1"},
      {"Dropout", R"({"rate": 1.0})", "'rate' must be in [0, 1)"},
      {"Dropout", R"({"rate": NaN})", "'rate' must be in [0, 1)"},
      {"Rescaling", R"({"scale": 1e39})", "outside the float32 range"},
      {"Activation", R"({})", "'activation' is required"},
      {"Softmax", R"({"axis": 100})", "'axis' is 100"},
      {"Sequential", R"({"layers": {}})", "'layers' must be a list"},
      {"Sequential", R"({"layers": [{"class_name": "Nope", "config": {}}]})", "unknown layer class 'Nope'"},
      {"Functional", R"({"layers": [], "input_layers": [], "output_layers": []})", "has no inputs or outputs"},
  };
  for (const Case& c : cases) {
    try {
      layer_from_config(c.class_name, parse_config_json(c.json, "case"));
      ADD_FAILURE() << c.class_name << " " << c.json << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << c.json << "\n" << e.what();
    }
  }
}

TEST(LayerConfig, ModelsOfRegisteredClassesAreLayerClassesToo) {
  EXPECT_TRUE(is_layer_registered("Functional"));
  EXPECT_TRUE(is_layer_registered("Sequential"));
  EXPECT_THROW(register_model("Sequential", [](const Config&) { return std::shared_ptr<Model>(); }),
               std::invalid_argument);
  try {
    model_from_config("TwoTower", Config::map());
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("register_model(\"TwoTower\""), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kiln
