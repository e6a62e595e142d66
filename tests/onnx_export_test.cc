// ONNX export checked outside Kiln: every model is exported, passed through Debian's
// onnx.checker (full_check) and run in ONNX Runtime (scripts/onnx_check.py, the venv that
// scripts/setup makes), whose outputs must match Kiln's within 1e-4; then imported back, where
// the round trip must match within 1e-5. Bad input: unmappable ops, corrupt files, wrong feeds.
#include <gtest/gtest.h>
#include "runtime_export/onnx/onnx_tensor.h"  // the onnx protos

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "data/atomic_file.h"
#include "data/npy.h"
#include "graph/trace.h"
#include "kiln.h"
#include "nn/applications/applications.h"
#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using kiln::testing::temp_path;
namespace fs = std::filesystem;

using kiln::testing::max_abs_diff;

// Export, check, run in ONNX Runtime and compare; then import and compare. Returns the graph
// imported back.
graph::Graph check_export(const graph::Graph& g, const std::vector<Tensor>& inputs, const std::string& name) {
  const std::vector<Tensor> expected = g.run(inputs);
  const std::string model = temp_path(name + ".onnx");
  runtime_export::export_onnx(g, model);
  kiln::testing::onnx_checker(model);
  if (auto ort = kiln::testing::run_onnx_runtime(model, inputs)) {
    EXPECT_EQ(ort->size(), expected.size()) << name;
    for (size_t i = 0; i < expected.size() && i < ort->size(); ++i) {
      const Tensor& got = (*ort)[i];
      EXPECT_EQ(got.dtype(), expected[i].dtype() == DType::bf16 ? DType::f32 : expected[i].dtype()) << name;
      float diff = max_abs_diff(got, cast(expected[i], got.dtype()));
      std::printf("%s output %zu: ONNX Runtime vs Kiln max abs diff %.3g\n", name.c_str(), i, diff);
      EXPECT_LE(diff, 1e-4f) << name << " output " << i;
    }
  }
  graph::Graph back = runtime_export::import_onnx(model);
  std::vector<Tensor> again = back.run(inputs);
  EXPECT_EQ(again.size(), expected.size());
  for (size_t i = 0; i < again.size() && i < expected.size(); ++i) {
    EXPECT_EQ(again[i].dtype(), expected[i].dtype());
    float diff = max_abs_diff(again[i], expected[i]);
    std::printf("%s output %zu: imported graph vs Kiln max abs diff %.3g\n", name.c_str(), i, diff);
    EXPECT_LE(diff, 1e-5f) << name << " output " << i << "\n" << back.to_string();
  }
  return back;
}

// Checks the model at another batch size than traced (the batch is symbolic), against predict.
void check_model(Model& model, const Shape& example, DType dtype, const std::string& name) {
  Shape traced{2}, other{3};
  traced.insert(traced.end(), example.begin(), example.end());
  other.insert(other.end(), example.begin(), example.end());
  auto sample = [&](const Shape& s, uint64_t seed) {
    return dtype == DType::u8 ? cast(random_uniform(s, 0.f, 255.f, seed), DType::u8) : random_uniform(s, -1.f, 1.f, seed);
  };
  graph::Graph g = graph::trace(model, sample(traced, 1));
  Tensor x = sample(other, 2);
  graph::Graph back = check_export(g, {x}, name);
  float diff = max_abs_diff(back.run(x), model.predict(x));
  std::printf("%s: imported graph vs Model::predict max abs diff %.3g\n", name.c_str(), diff);
  EXPECT_LE(diff, 1e-5f);
}

TEST(OnnxExport, Mlp) {
  set_global_seed(1);
  auto mlp = applications::fashion_mnist_mlp();
  mlp->build({28, 28, 1}, DType::u8);
  check_model(*mlp, {28, 28, 1}, DType::u8, "mlp");
}

TEST(OnnxExport, KerasCnn) {
  set_global_seed(2);
  auto cnn = applications::keras_cnn();
  cnn->build({28, 28, 1}, DType::u8);
  check_model(*cnn, {28, 28, 1}, DType::u8, "keras_cnn");
}

TEST(OnnxExport, ResNet18) {
  set_global_seed(3);
  auto resnet = applications::resnet18({32, 32, 3}, 10);
  graph::Graph g = graph::trace(*resnet, random_uniform({2, 32, 32, 3}, -1.f, 1.f, 4));
  Tensor x = random_uniform({2, 32, 32, 3}, -1.f, 1.f, 5);
  graph::Graph back = check_export(g, {x}, "resnet18");
  // NCHW inside: one Transpose in and one back before the head's reshape, none between blocks.
  onnx::ModelProto proto;
  ASSERT_TRUE(proto.ParseFromString(data::read_file(temp_path("resnet18.onnx"))));
  int transposes = 0, convs = 0;
  for (const auto& n : proto.graph().node()) {
    transposes += n.op_type() == "Transpose";
    convs += n.op_type() == "Conv";
  }
  EXPECT_EQ(convs, 20);
  EXPECT_EQ(transposes, 2);
  // On import the Transposes fold into the values: no permute nodes are left.
  int permutes = 0;
  for (const auto& n : back.nodes) permutes += n.call.op() == "permute";
  EXPECT_EQ(permutes, 0) << back.to_string();
}

TEST(OnnxExport, FunctionalModelWithBatchNormAndResidualAdd) {
  set_global_seed(4);
  auto in = Input({8, 8, 4});
  Conv2DOptions same;
  same.padding = "same";
  auto h = Conv2D(4, 3, "", same)(in);
  h = BatchNormalization()(h);
  h = Activation("relu")(h);
  auto y = Add()({h, in});
  y = Activation("relu")(y);
  y = AveragePooling2D({3, 3}, {2, 2}, "same")(y);
  auto out = Dense(3)(GlobalAveragePooling2D()(y));
  Model model(in, out, "residual");
  model.compile(optim::SGD(0.1f), MeanSquaredError());  // non-trivial moving statistics
  Tensor xs = random_uniform({8, 8, 8, 4}, -1.f, 1.f, 3), ys = random_uniform({8, 3}, -1.f, 1.f, 4);
  model.fit(data::Dataset::from_tensor_slices(xs, ys).batch(4), {.epochs = 1, .verbose = 0});
  check_model(model, {8, 8, 4}, DType::f32, "residual_bn");
}

class TwoHeads : public Model {
 public:
  TwoHeads() : Model("two_heads"), a_(Dense(5, "relu", {}, "th_a")), b_(Dense(2, "", {}, "th_b")) {}
  std::vector<Tensor> call(const std::vector<Tensor>& in, bool training) override {
    Tensor h = a_(in[0], training);
    return {softmax(b_(h, training)) + slice(sigmoid(h), 1, 0, 2)};
  }
  std::vector<Layer> layers() const override { return {a_, b_}; }

 private:
  Layer a_, b_;
};

TEST(OnnxExport, SubclassedModel) {
  set_global_seed(5);
  TwoHeads model;
  check_model(model, {6}, DType::f32, "subclassed");
  // The Model overload traces, then exports.
  const std::string path = temp_path("subclassed_direct.onnx");
  runtime_export::export_onnx(model, {random_uniform({2, 6}, -1.f, 1.f, 7)}, path);
  Tensor x = random_uniform({4, 6}, -1.f, 1.f, 8);
  EXPECT_LE(max_abs_diff(runtime_export::import_onnx(path).run(x), model.predict(x)), 1e-5f);
}

// Every other op the exporter maps, including the fused nodes the runtime's fusion pass writes.
TEST(OnnxExport, OpCoverageAndFusedNodes) {
  Tensor k = random_uniform({3, 3, 4, 4}, -0.5f, 0.5f, 1), b = random_uniform({4}, -0.5f, 0.5f, 2);
  Tensor w = random_uniform({64, 5}, -0.5f, 0.5f, 3), wb = random_uniform({5}, -0.5f, 0.5f, 4);
  Tensor m3 = random_uniform({5, 5}, -0.5f, 0.5f, 7);
  auto fn = [&](const std::vector<Tensor>& in) {
    Conv2dAttrs s2;
    s2.padding = Padding::same;
    s2.strides = {2, 2};
    Tensor x = in[0];
    Tensor c = fused_conv2d(x, k, b, x, Conv2dAttrs{.padding = Padding::same}, Epilogue::gelu_erf);
    Tensor d = fused_conv2d(c, k, Tensor(), Tensor(), s2, Epilogue::gelu_tanh);  // 8x8 -> 4x4, stride 2 'same'
    Tensor e = elu(leaky_relu(d, 0.1f)) + swish(d) * clip(d, -0.2f, 0.3f);
    e = maximum(abs(e), square(tanh(e))) - minimum(softplus(e), exp(e * 0.5f));
    e = max_pool2d(e, Pool2dAttrs{.pool_size = {2, 2}, .strides = {1, 1}, .padding = Padding::same});
    Tensor r = reduce_mean(e, {1, 2}, true) + reduce_max(e, {3}, true) * 0.5f;  // stays NCHW
    Tensor f = reshape(r, {x.shape()[0], -1});                                    // [N, 64]
    Tensor h = fused_linear(f, w, wb, Tensor(), Epilogue::relu);
    h = fused_linear(h, m3, wb, h, Epilogue::none);
    h = h / (abs(h) + 1.f);
    Tensor p = matmul(reshape(h, {x.shape()[0], 1, 5}), m3);  // 3-D matmul
    Tensor q = concat({reshape(p, {x.shape()[0], 5}), log_softmax(h, 1), sqrt(sigmoid(h)), log(sigmoid(h) + 1.f)}, 1);
    q = q + pow(abs(q), 2.f) / 3.f + reduce_sum(q, {1}, true);
    Tensor cmp = greater(q, Tensor::scalar(0.1f)) + less(q, Tensor::scalar(-0.1f)) + equal(q, q) +
                 greater_equal(q, Tensor::scalar(0.f));
    Tensor t = permute(reshape(slice(q + cmp, 1, 2, 20, 3), {x.shape()[0], 2, 3}), {0, 2, 1});
    Tensor am = cast(argmax(q, 1), DType::f32);
    // Kiln's casts truncate toward zero and saturate; the input scaled by one multiply is
    // bitwise the same in both runtimes, so the truncation is compared, not float noise.
    Tensor u8 = cast(cast(reduce_max(x, {1, 2, 3}) * 300.f, DType::u8), DType::f32);
    Tensor s32 = cast(cast(reduce_max(x, {1, 2, 3}) * -1e3f, DType::s32), DType::f32);
    // Axis ops on NCHW values: axes remapped, no Transpose until the output.
    Tensor axes4 = concat({softmax(slice(e, 1, 1, 4, 2), 3), log_softmax(slice(d, 1, 0, 2), 2)}, 3);
    return std::vector<Tensor>{softmax(q), t, am, u8 + s32, add_relu(e, d), axes4};
  };
  graph::Graph g = graph::trace(fn, {random_uniform({2, 8, 8, 4}, -1.f, 1.f, 5)}, {{"k", k}, {"b", b}, {"w", w}, {"wb", wb}, {"m3", m3}});
  std::set<std::string> ops;
  for (const auto& n : g.nodes) ops.insert(n.call.op());
  for (const char* op : {"fused_conv2d", "fused_linear", "cast", "argmax", "greater", "permute", "slice", "concat", "div"}) {
    EXPECT_TRUE(ops.count(op)) << op << " not traced:\n" << g.to_string();
  }
  check_export(g, {random_uniform({3, 8, 8, 4}, -1.f, 1.f, 6)}, "coverage");
}

// Explicit per-side pads (PyTorch's padding, ONNX's pads) on conv, depthwise conv and both
// poolings: exported as written, run by ONNX Runtime, and imported back as explicit pads.
TEST(OnnxExport, ExplicitPadsRoundTrip) {
  Tensor k = random_uniform({3, 3, 4, 6}, -0.5f, 0.5f, 1), b = random_uniform({6}, -0.5f, 0.5f, 2);
  Tensor dk = random_uniform({3, 3, 1, 12}, -0.5f, 0.5f, 3);
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor c = conv2d(in[0], k, b, Conv2dAttrs{.padding = Padding::explicit_pads, .pads = {1, 0, 2, 3}});
    Tensor d = conv2d(c, dk, Tensor(),
                      Conv2dAttrs{.strides = {2, 1}, .padding = Padding::explicit_pads, .pads = {0, 2, 1, 1}, .groups = 6});
    Tensor m = max_pool2d(d, Pool2dAttrs{.pool_size = {3, 2}, .strides = {1, 2}, .padding = Padding::explicit_pads,
                                         .pads = {2, 1, 0, 1}});
    Tensor a = avg_pool2d(d, Pool2dAttrs{.pool_size = {2, 3}, .strides = {1, 1}, .padding = Padding::explicit_pads,
                                         .pads = {1, 2, 0, 0}});
    return std::vector<Tensor>{m, a};
  };
  graph::Graph g = graph::trace(fn, {random_uniform({2, 7, 6, 4}, -1.f, 1.f, 5)}, {{"k", k}, {"b", b}, {"dk", dk}});
  graph::Graph back = check_export(g, {random_uniform({3, 7, 6, 4}, -1.f, 1.f, 6)}, "explicit_pads");
  int explicit_nodes = 0;
  for (const auto& n : back.nodes) {
    if (n.call.has("padding") && n.call.get_string("padding") == "explicit") ++explicit_nodes;
  }
  EXPECT_EQ(explicit_nodes, 4) << back.to_string();
}

// broadcast_to records the traced shape, batch included, so it runs at the traced batch only.
TEST(OnnxExport, BroadcastToAtTheTracedBatch) {
  auto fn = [](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{in[0] - broadcast_to(reduce_mean(in[0], {1}, true), in[0].shape())};
  };
  graph::Graph g = graph::trace(fn, {random_uniform({2, 5}, -1.f, 1.f, 1)});
  bool traced = false;
  for (const auto& n : g.nodes) traced = traced || n.call.op() == "broadcast_to";
  EXPECT_TRUE(traced) << g.to_string();
  check_export(g, {random_uniform({2, 5}, -1.f, 1.f, 2)}, "broadcast_to");
}

TEST(OnnxExport, Bf16ExportsAsFp32) {
  set_global_seed(6);
  Tensor w = random_uniform({4, 3}, -1.f, 1.f, 1);
  auto fn = [&](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{relu(matmul(in[0], cast(w, DType::bf16)))};
  };
  graph::Graph g = graph::trace(fn, {cast(random_uniform({2, 4}, -1.f, 1.f, 2), DType::bf16)}, {{"w", w}});
  std::string path = temp_path("bf16.onnx");
  runtime_export::export_onnx(g, path);
  graph::Graph back = runtime_export::import_onnx(path);
  ASSERT_EQ(back.inputs.size(), 1u);
  EXPECT_EQ(back.values[back.inputs[0]].dtype, DType::f32);
  Tensor x = random_uniform({3, 4}, -1.f, 1.f, 3);
  // Same math in fp32 as bf16 inputs widened: within bf16 rounding of the weights.
  EXPECT_LE(max_abs_diff(back.run(x), cast(g.run(cast(x, DType::bf16)), DType::f32)), 0.05f);
}

// ---- bad input ----

template <typename F>
void expect_invalid(F&& f, std::vector<std::string> fragments) {
  try {
    f();
    ADD_FAILURE() << "accepted; expected an error naming " << fragments[0];
  } catch (const std::invalid_argument& e) {
    for (const auto& frag : fragments) EXPECT_NE(std::string(e.what()).find(frag), std::string::npos) << e.what();
  }
}

graph::Graph small_graph() {
  Tensor w = random_uniform({4, 3}, -1.f, 1.f, 1), k = random_uniform({3, 3, 2, 2}, -1.f, 1.f, 2);
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor c = conv2d(in[0], k, Tensor(), Conv2dAttrs{.padding = Padding::same});
    return std::vector<Tensor>{softmax(relu(matmul(reshape(c, {in[0].shape()[0], 4}), w)))};
  };
  return graph::trace(fn, {random_uniform({2, 1, 2, 2}, -1.f, 1.f, 3)}, {{"w", w}, {"k", k}});
}

TEST(OnnxExport, UnmappableOpAndWrongOpsetAreErrors) {
  graph::Graph g;
  g.values = {{"labels", {graph::kBatch}, DType::s32}, {"onehot", {graph::kBatch, 3}, DType::f32}};
  g.inputs = {0};
  g.outputs = {1};
  g.nodes.push_back({ops::Attrs("one_hot").set("depth", 3).set("dtype", "f32"), {0}, {1}});
  expect_invalid([&] { runtime_export::serialize_onnx(g); }, {"node 0", "one_hot", "onehot"});
  expect_invalid([&] { runtime_export::serialize_onnx(small_graph(), {.opset = 13}); }, {"opset 13"});
}

TEST(OnnxImport, CorruptTruncatedAndUnsupportedFilesAreClearErrors) {
  const std::string bytes = runtime_export::serialize_onnx(small_graph());
  EXPECT_NO_THROW(runtime_export::parse_onnx(bytes, "ok.onnx"));
  expect_invalid([&] { runtime_export::parse_onnx(bytes.substr(0, bytes.size() / 2), "half.onnx"); }, {"half.onnx"});
  expect_invalid([&] { runtime_export::parse_onnx("not a model at all", "text.onnx"); }, {"text.onnx"});
  expect_invalid([&] { runtime_export::import_onnx(temp_path("absent.onnx")); }, {"absent.onnx", "cannot be opened"});
  auto edited = [&](auto&& edit) {
    onnx::ModelProto m;
    EXPECT_TRUE(m.ParseFromString(bytes));
    edit(m);
    return m.SerializeAsString();
  };
  auto find_node = [](onnx::ModelProto& m, const std::string& op) -> onnx::NodeProto* {
    for (auto& n : *m.mutable_graph()->mutable_node()) {
      if (n.op_type() == op) return &n;
    }
    return nullptr;
  };
  expect_invalid([&] { runtime_export::parse_onnx(edited([](auto& m) { m.mutable_opset_import(0)->set_version(10); }), "m.onnx"); },
                 {"m.onnx", "opset 10"});
  expect_invalid([&] { runtime_export::parse_onnx(edited([](auto& m) { m.set_ir_version(11); }), "m.onnx"); }, {"IR version 11"});
  expect_invalid([&] { runtime_export::parse_onnx(edited([&](auto& m) { find_node(m, "Softmax")->set_op_type("Hardmax"); }), "m.onnx"); },
                 {"m.onnx", "Hardmax"});
  expect_invalid([&] {
    runtime_export::parse_onnx(edited([&](auto& m) {
      auto* a = find_node(m, "Conv")->add_attribute();
      a->set_name("fancy");
      a->set_type(onnx::AttributeProto::INT);
    }), "m.onnx");
  }, {"m.onnx", "fancy"});
  expect_invalid([&] {
    runtime_export::parse_onnx(edited([](auto& m) {
      for (auto& t : *m.mutable_graph()->mutable_initializer()) {
        if (t.name() == "w") t.mutable_raw_data()->resize(7);
      }
    }), "m.onnx");
  }, {"m.onnx", "'w'", "raw_data"});
  expect_invalid([&] {
    runtime_export::parse_onnx(edited([](auto& m) {
      for (auto& t : *m.mutable_graph()->mutable_initializer()) {
        if (t.name() == "w") t.set_dims(0, int64_t{1} << 40);
      }
    }), "m.onnx");
  }, {"m.onnx", "'w'"});
  expect_invalid([&] {
    runtime_export::parse_onnx(edited([](auto& m) {
      auto* d = m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(3);
      d->set_dim_value(3);  // 3 channels in, weights for 2: inconsistent shapes
    }), "m.onnx");
  }, {"m.onnx", "group"});
  expect_invalid([&] {
    runtime_export::parse_onnx(edited([](auto& m) {
      m.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(1)->set_dim_value(4);
    }), "m.onnx");
  }, {"m.onnx", "declared shape"});
}

TEST(OnnxImport, WrongInputShapeOrDtypeWhenRunningIsAnError) {
  std::string path = temp_path("small.onnx");
  runtime_export::export_onnx(small_graph(), path);
  graph::Graph g = runtime_export::import_onnx(path);
  EXPECT_NO_THROW(g.run(random_uniform({5, 1, 2, 2}, -1.f, 1.f, 1)));
  expect_invalid([&] { g.run(random_uniform({5, 2, 2, 2}, -1.f, 1.f, 1)); }, {"input_0", "f32[5, 2, 2, 2]"});
  expect_invalid([&] { g.run(cast(random_uniform({5, 1, 2, 2}, 0.f, 9.f, 1), DType::s32)); }, {"input_0", "s32"});
}

}  // namespace
}  // namespace kiln
