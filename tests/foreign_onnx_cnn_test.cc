// CNNs from torch.onnx.export at opsets 11 to 21 (tests/data/foreign_onnx/make_models.py):
// EfficientNet-B0, a ConvNeXt, the opset-dependent ops around CNNs (CnnOps), a model with
// external data and one from the dynamo exporter import and match PyTorch; and the importer's
// opset-dependent semantics and refusals on hand-built models.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include "base/files.h"
#include "data/npy.h"
#include "graph/graph.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_import.h"
#include "runtime_export/onnx/onnx_tensor.h"
#include "tensor/ops/shape_ops.h"
#include "tensor/random.h"
#include "tests/temp_path.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing::max_abs_diff;

const std::string kDir = "tests/data/foreign_onnx/";

double max_abs(const Tensor& a) {
  double m = 0;
  for (float v : a.to_vector()) m = std::max(m, std::fabs(double(v)));
  return m;
}
int count_op(const graph::Graph& g, const std::string& op) {
  int k = 0;
  for (const auto& n : g.nodes) k += n.call.op() == op;
  return k;
}

class ForeignOnnxCnn : public ::testing::TestWithParam<std::string> {};

// The file NAME.VARIANT.onnx holds the model whose input and PyTorch output are NAME.*.npy.
TEST_P(ForeignOnnxCnn, MatchesPyTorch) {
  const std::string file = GetParam(), name = file.substr(0, file.find('.'));
  graph::Graph g = runtime_export::import_onnx(kDir + file + ".onnx");
  Tensor x = data::read_npy(kDir + name + ".input.npy"), want = data::read_npy(kDir + name + ".output.npy");
  // NCHW in: one transpose at the input edge, none between ops (ConvNeXt's NHWC LayerNorms
  // and torch's Transposes around them included).
  EXPECT_EQ(count_op(g, "permute"), 1) << file << "\n" << g.to_string();
  // Each GELU (erf pattern before opset 20, Gelu from 20) and SiLU is one Kiln op.
  const std::map<std::string, std::pair<std::string, int>> fused = {
      {"convnext", {"gelu_erf", 2}}, {"cnn_ops", {"gelu_tanh", 1}}, {"efficientnet_b0", {"swish", 49}}};
  if (auto it = fused.find(name); it != fused.end()) {
    EXPECT_EQ(count_op(g, it->second.first), it->second.second) << file;
  }
  // ConvNeXt's five LayerNorms, LayerNormalization from opset 17 and torch's ReduceMean, Sub,
  // Pow, Sqrt, Div, Mul, Add before.
  if (name == "convnext") EXPECT_EQ(count_op(g, "layer_norm"), 5) << file;

  const double graph_err = max_abs_diff(g.run(x), want);
  EXPECT_LE(graph_err, 1e-4) << file << " Graph::run";
  runtime_export::InferenceModel fp32(g);
  const double fp32_err = max_abs_diff(fp32.run(x), want);
  EXPECT_LE(fp32_err, 1e-4) << file << " InferenceModel fp32";
  // bf16 keeps 8 bits of mantissa through every layer: 5% of the largest output.
  runtime_export::InferenceModel bf16(g, {.dtype = DType::bf16});
  const double bf16_err = max_abs_diff(bf16.run(x), want);
  EXPECT_LE(bf16_err, 0.05 * max_abs(want)) << file << " InferenceModel bf16";
  std::printf("%s: max |output| %.4g; max abs error Graph::run %.3g, fp32 %.3g, bf16 %.3g\n", file.c_str(), max_abs(want),
              graph_err, fp32_err, bf16_err);
}

INSTANTIATE_TEST_SUITE_P(
    TorchOnnxExport, ForeignOnnxCnn,
    ::testing::Values("efficientnet_b0.opset11", "efficientnet_b0.opset17", "efficientnet_b0.opset21", "convnext.opset11",
                      "convnext.opset13", "convnext.opset17", "convnext.opset18", "convnext.opset20", "convnext.opset21",
                      "convnext.external", "cnn_ops.opset11", "cnn_ops.opset13", "cnn_ops.opset17", "cnn_ops.opset18",
                      "cnn_ops.opset20", "cnn_ops.opset21", "mobilenet_v3_small.dynamo"),
    [](const auto& info) {
      std::string s = info.param;
      for (char& c : s) c = c == '.' ? '_' : c;
      return s;
    });

void expect_refused(const std::function<void()>& f, const std::vector<std::string>& words) {
  try {
    f();
    ADD_FAILURE() << "accepted; expected an error with '" << words[0] << "'";
  } catch (const std::invalid_argument& e) {
    for (const auto& w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << "'" << w << "' not in: " << e.what();
  }
}

// ---- external data ----

struct ExternalCopy {
  std::string dir, model;
  onnx::ModelProto proto;
};
// The ConvNeXt with external data, copied into a fresh directory with its data file.
ExternalCopy external_copy(const std::string& tag) {
  ExternalCopy c;
  c.dir = testing::temp_path("external_" + tag);
  fs::remove_all(c.dir);
  fs::create_directories(c.dir);
  fs::copy_file(kDir + "convnext.external.data", c.dir + "/convnext.external.data");
  c.model = c.dir + "/model.onnx";
  EXPECT_TRUE(c.proto.ParseFromString(base::read_file(kDir + "convnext.external.onnx")));
  return c;
}
onnx::StringStringEntryProto* entry(onnx::ModelProto& m, const std::string& key) {
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    for (auto& kv : *t.mutable_external_data()) {
      if (kv.key() == key) return &kv;
    }
  }
  return nullptr;
}
void save(const ExternalCopy& c) { std::ofstream(c.model, std::ios::binary) << c.proto.SerializeAsString(); }

TEST(ForeignOnnxExternalData, ResolvesBesideTheModelFromAnyWorkingDirectory) {
  ExternalCopy c = external_copy("ok");
  save(c);
  Tensor x = data::read_npy(kDir + "convnext.input.npy"), want = data::read_npy(kDir + "convnext.output.npy");
  EXPECT_LE(max_abs_diff(runtime_export::import_onnx(c.model).run(x), want), 1e-4);
  // From memory there is no directory to read it from: refused, naming the file it needs.
  expect_refused([&] { runtime_export::parse_onnx(c.proto.SerializeAsString(), "mem.onnx"); },
                 {"mem.onnx", "convnext.external.data", "from memory"});
  // parse_onnx with the directory reads it.
  EXPECT_LE(max_abs_diff(runtime_export::parse_onnx(c.proto.SerializeAsString(), "mem.onnx", c.dir).run(x), want), 1e-4);
}

TEST(ForeignOnnxExternalData, RefusesLocationsOutsideTheModelDirectoryAndBadRanges) {
  auto refused = [](const std::string& tag, const std::function<void(ExternalCopy&)>& edit, const std::vector<std::string>& words) {
    ExternalCopy c = external_copy(tag);
    edit(c);
    save(c);
    std::vector<std::string> all = words;
    all.push_back("model.onnx");
    expect_refused([&] { runtime_export::import_onnx(c.model); }, all);
  };
  refused("dotdot", [](ExternalCopy& c) { entry(c.proto, "location")->set_value("../convnext.external.data"); },
          {"'../convnext.external.data'", "escapes the model's directory"});
  refused("absolute", [](ExternalCopy& c) { entry(c.proto, "location")->set_value("/etc/passwd"); }, {"absolute location '/etc/passwd'"});
  refused("missing", [](ExternalCopy& c) { entry(c.proto, "location")->set_value("absent.data"); }, {"'absent.data'", "not a readable file"});
  refused("offset", [](ExternalCopy& c) { entry(c.proto, "offset")->set_value("99999999"); }, {"offset 99999999", "past the end"});
  refused("length", [](ExternalCopy& c) { entry(c.proto, "length")->set_value("12"); }, {"12 bytes", "dims need"});
  refused("garbage", [](ExternalCopy& c) { entry(c.proto, "length")->set_value("-4"); }, {"length is '-4'"});
  refused("key", [](ExternalCopy& c) { entry(c.proto, "length")->set_key("size"); }, {"unknown key 'size'"});
  refused("short", [](ExternalCopy& c) { fs::resize_file(c.dir + "/convnext.external.data", 100); }, {"past the end"});
}

// ---- opsets and hand-built nodes ----

// input x: FLOAT [N, dims...] (N symbolic), output y, one node `op` x -> y at `opset`.
onnx::ModelProto one_node(const std::string& op, int64_t opset, const Shape& dims,
                          const std::function<void(onnx::ModelProto&, onnx::NodeProto&)>& edit = {}) {
  onnx::ModelProto m;
  m.set_ir_version(opset >= 21 ? 10 : 8);
  m.add_opset_import()->set_version(opset);
  auto* g = m.mutable_graph();
  auto* in = g->add_input();
  in->set_name("x");
  auto* tt = in->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  tt->mutable_shape()->add_dim()->set_dim_param("N");
  for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  auto* out = g->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name("the_node");
  n->add_input("x");
  n->add_output("y");
  if (edit) edit(m, *n);
  return m;
}
void set_int(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
graph::Graph import(const onnx::ModelProto& m) { return runtime_export::parse_onnx(m.SerializeAsString(), "hand.onnx"); }

// softmax over the flattened [axis, rank) of each of `outer` rows.
std::vector<float> softmax_rows(const std::vector<float>& x, int64_t inner, bool log) {
  std::vector<float> y(x.size());
  for (size_t r = 0; r < x.size(); r += inner) {
    double m = -INFINITY, s = 0;
    for (int64_t i = 0; i < inner; ++i) m = std::max(m, double(x[r + i]));
    for (int64_t i = 0; i < inner; ++i) s += std::exp(x[r + i] - m);
    for (int64_t i = 0; i < inner; ++i) y[r + i] = log ? float(x[r + i] - m - std::log(s)) : float(std::exp(x[r + i] - m) / s);
  }
  return y;
}

TEST(ForeignOnnxOpsets, SoftmaxBefore13NormalizesTheCoercedTwoDimensionalInput) {
  Tensor x = random_uniform({2, 3, 4, 5}, -2.f, 2.f, 7);
  for (const std::string op : {"Softmax", "LogSoftmax"}) {
    for (int64_t axis : {1, 2, 3}) {
      auto with_axis = [&](onnx::ModelProto&, onnx::NodeProto& n) { set_int(n, "axis", axis); };
      // Opset 11: one softmax over all of dims [axis, 4) per leading index.
      int64_t inner = 1;
      for (int64_t d = axis; d < 4; ++d) inner *= x.shape()[d];
      graph::Graph g11 = import(one_node(op, 11, {3, 4, 5}, with_axis));
      std::vector<float> want = softmax_rows(x.to_vector(), inner, op == "LogSoftmax");
      EXPECT_LE(max_abs_diff(g11.run(x), Tensor::from_vector(want, x.shape())), 1e-5) << op << " axis " << axis;
      EXPECT_LE(max_abs_diff(runtime_export::InferenceModel(g11).run(x), Tensor::from_vector(want, x.shape())), 1e-5);
      // Opset 13: that axis alone (here checked against opset 11 with the axis moved last).
      graph::Graph g13 = import(one_node(op, 13, {3, 4, 5}, with_axis));
      Tensor y13 = g13.run(x);
      std::vector<int> perm{0, 1, 2, 3};
      std::swap(perm[axis], perm[3]);
      Tensor moved = permute(x, perm).clone_detached();
      Tensor per_axis = Tensor::from_vector(softmax_rows(moved.to_vector(), x.shape()[axis], op == "LogSoftmax"), moved.shape());
      EXPECT_LE(max_abs_diff(y13, permute(per_axis, perm).clone_detached()), 1e-5) << op << " axis " << axis;
    }
  }
  // Opset 11's default axis is 1, opset 13's is -1.
  Tensor x3 = random_uniform({2, 3, 4}, -2.f, 2.f, 8);
  EXPECT_LE(max_abs_diff(import(one_node("Softmax", 11, {3, 4})).run(x3),
                         Tensor::from_vector(softmax_rows(x3.to_vector(), 12, false), x3.shape())), 1e-5);
  EXPECT_LE(max_abs_diff(import(one_node("Softmax", 13, {3, 4})).run(x3),
                         Tensor::from_vector(softmax_rows(x3.to_vector(), 4, false), x3.shape())), 1e-5);
  // Axis 0 before 13 would normalize across the (symbolic) batch: refused.
  expect_refused([&] { import(one_node("Softmax", 11, {3}, [](auto&, auto& n) { set_int(n, "axis", 0); })); },
                 {"hand.onnx", "the_node", "across the batch"});
}

TEST(ForeignOnnxOpsets, OpsetsAndIrVersionsOutsideTheRangeAreRefused) {
  for (int64_t opset : {11, 13, 17, 18, 20, 21}) EXPECT_NO_THROW(import(one_node("Relu", opset, {3}))) << opset;
  for (int64_t opset : {10, 22}) expect_refused([&] { import(one_node("Relu", opset, {3})); }, {"hand.onnx", "opset " + std::to_string(opset), "11 to 21"});
  expect_refused([&] { import(one_node("Relu", 17, {3}, [](auto& m, auto&) { m.set_ir_version(11); })); }, {"IR version 11"});
}

TEST(ForeignOnnxOpsets, OpsetDependentOpsAndAttributesKilnCannotHonourAreRefusedByName) {
  // Gelu exists from opset 20; its approximate is 'none' or 'tanh'.
  expect_refused([&] { import(one_node("Gelu", 18, {3})); }, {"the_node", "Gelu", "opset 20"});
  expect_refused([&] {
    import(one_node("Gelu", 20, {3}, [](auto&, auto& n) {
      auto* a = n.add_attribute();
      a->set_name("approximate");
      a->set_type(onnx::AttributeProto::STRING);
      a->set_s("sigmoid");
    }));
  }, {"the_node", "Gelu", "'approximate'", "'sigmoid'"});
  // Erf on its own (outside GELU's pattern) is Kiln's erf (issue 23).
  EXPECT_EQ(import(one_node("Erf", 17, {3})).nodes.back().call.op(), "erf");
  // ReduceMean: axes an attribute before 18, an input from 18.
  auto axes_attr = [](auto&, auto& n) {
    auto* a = n.add_attribute();
    a->set_name("axes");
    a->set_type(onnx::AttributeProto::INTS);
    a->add_ints(1);
  };
  Tensor x = random_uniform({2, 3, 4}, -1.f, 1.f, 9);
  Tensor mean17 = import(one_node("ReduceMean", 17, {3, 4}, axes_attr)).run(x);
  EXPECT_EQ(mean17.shape(), (Shape{2, 1, 4}));
  expect_refused([&] { import(one_node("ReduceMean", 18, {3, 4}, axes_attr)); }, {"the_node", "ReduceMean", "'axes'"});
  Tensor mean18 = import(one_node("ReduceMean", 18, {3, 4}, [](auto& m, auto& n) {
                    *m.mutable_graph()->add_initializer() = runtime_export::onnx_io::int64_tensor_proto({1}, "axes");
                    n.add_input("axes");
                  })).run(x);
  EXPECT_LE(max_abs_diff(mean17, mean18), 0);
  // Dilated pooling and the layouts Kiln cannot take.
  expect_refused([&] {
    import(one_node("MaxPool", 17, {3, 8, 8}, [](auto&, auto& n) {
      for (const char* name : {"kernel_shape", "dilations"}) {
        auto* a = n.add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto::INTS);
        a->add_ints(2);
        a->add_ints(2);
      }
    }));
  }, {"the_node", "MaxPool", "'dilations'"});
}

}  // namespace
}  // namespace kiln
