// Transformers exported by torch.onnx.export (tests/data/foreign_onnx/make_models.py): a small
// torchvision ViT and a BERT-style encoder, at opset 17 (LayerNormalization) and opset 14 (its
// ReduceMean/Sub/Pow/Sqrt/Div spelling). They were exported at batch 2 and run here at batch 3,
// so every Reshape target built from Shape(x)[0] must have kept the batch free. Plus small
// hand-built graphs for the shape-subgraph folding and its errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "data/npy.h"
#include "graph/graph.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_import.h"
#include "runtime_export/onnx/onnx_tensor.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

const std::string kDir = "tests/data/foreign_onnx/";
constexpr int64_t kExportBatch = 2;

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

struct Case {
  std::string model;
  int opset;
  int inputs;
  int layer_norms;
};

class ForeignTransformer : public ::testing::TestWithParam<Case> {};

TEST_P(ForeignTransformer, MatchesPyTorchAtAnotherBatch) {
  const Case c = GetParam();
  const std::string name = c.model + ".opset" + std::to_string(c.opset);
  graph::Graph g = runtime_export::import_onnx(kDir + name + ".onnx");
  std::vector<Tensor> xs;
  for (int i = 0; i < c.inputs; ++i) {
    xs.push_back(data::read_npy(kDir + c.model + ".input" + (c.inputs == 1 ? "" : std::to_string(i)) + ".npy"));
  }
  const Tensor want = data::read_npy(kDir + c.model + ".output.npy");
  ASSERT_NE(xs[0].shape()[0], kExportBatch);
  for (int v : g.inputs) EXPECT_EQ(g.values[v].shape[0], graph::kBatch) << name;
  // The written-out LayerNormalization of opset 14 comes back as Kiln's layer_norm.
  EXPECT_EQ(count_op(g, "layer_norm"), c.layer_norms) << name;
  EXPECT_EQ(count_op(g, "reduce_mean"), 0) << name;

  const double graph_err = testing::max_abs_diff(g.run(xs)[0], want);
  runtime_export::InferenceModel fp32(g);
  const double fp32_err = testing::max_abs_diff(fp32.run(xs)[0], want);
  EXPECT_LE(fp32_err, 1e-4) << name << " InferenceModel fp32";
  // bf16 keeps 8 bits of mantissa through two attention blocks and their LayerNorms.
  runtime_export::InferenceModel bf16(g, {.dtype = DType::bf16});
  const double bf16_err = testing::max_abs_diff(bf16.run(xs)[0], want);
  EXPECT_LE(bf16_err, 0.05 * max_abs(want)) << name << " InferenceModel bf16";
  std::printf("%s: max |output| %.4g; max abs error Graph::run %.3g, fp32 %.3g, bf16 %.3g; %zu nodes, %d permutes, %d reshapes\n",
              name.c_str(), max_abs(want), graph_err, fp32_err, bf16_err, g.nodes.size(), count_op(g, "permute"),
              count_op(g, "reshape"));
}

INSTANTIATE_TEST_SUITE_P(TorchOnnx, ForeignTransformer,
                         ::testing::Values(Case{"vit_tiny", 17, 1, 5}, Case{"vit_tiny", 14, 1, 5},
                                           Case{"bert_block", 17, 2, 5}, Case{"bert_block", 14, 2, 5}),
                         [](const auto& info) { return info.param.model + "_opset" + std::to_string(info.param.opset); });

// A hand-built graph: x [N, 4, 6] -> Reshape to Concat(Shape(x)[0], 2, -1) -> Transpose ->
// Reshape to [N*3, 2, ...] and back, as torch writes around attention heads.
class Builder {
 public:
  explicit Builder(int opset) {
    m_.set_ir_version(8);
    m_.add_opset_import()->set_version(opset);
    g_ = m_.mutable_graph();
    g_->set_name("shapes");
  }
  void input(const std::string& name, std::vector<int64_t> dims, int elem = onnx::TensorProto::FLOAT) {
    auto* v = g_->add_input();
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(elem);
    for (size_t i = 0; i < dims.size(); ++i) {
      auto* d = t->mutable_shape()->add_dim();
      if (i == 0) d->set_dim_param("N");
      else d->set_dim_value(dims[i]);
    }
  }
  void output(const std::string& name) { g_->add_output()->set_name(name); }
  void ints(const std::string& name, std::vector<int64_t> v, bool scalar = false) {
    *g_->add_initializer() = runtime_export::onnx_io::int64_tensor_proto(v, name, scalar);
  }
  onnx::NodeProto* node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out) {
    auto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(op + std::to_string(g_->node_size()));
    for (auto& s : in) n->add_input(s);
    for (auto& s : out) n->add_output(s);
    return n;
  }
  static void attr(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  graph::Graph import() const { return runtime_export::parse_onnx(m_.SerializeAsString(), "built.onnx"); }

 private:
  onnx::ModelProto m_;
  onnx::GraphProto* g_;
};

// Shape(x)[0] as a 1-D value, how torch spells the batch in a Reshape target.
void batch_dim(Builder& b, const std::string& x, const std::string& out) {
  b.ints(out + "_zero", {0}, true);
  b.ints(out + "_axes", {0});
  b.node("Shape", {x}, {out + "_shape"});
  Builder::attr(b.node("Gather", {out + "_shape", out + "_zero"}, {out + "_scalar"}), "axis", int64_t{0});
  b.node("Unsqueeze", {out + "_scalar", out + "_axes"}, {out});
}

Tensor iota(const Shape& s) {
  Tensor t = Tensor::empty(s);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(i % 97) - 40.f;
  return t;
}

TEST(ForeignShapeSubgraphs, HeadSplitAndMergeKeepTheBatchFree) {
  Builder b(17);
  b.input("x", {1, 4, 6});
  batch_dim(b, "x", "n");
  b.ints("heads", {2});
  b.ints("minus_one", {-1});
  Builder::attr(b.node("Concat", {"n", "heads", "minus_one"}, {"target"}), "axis", int64_t{0});
  b.node("Reshape", {"x", "target"}, {"split"});                    // [N, 2, 12]
  Builder::attr(b.node("Transpose", {"split"}, {"t"}), "perm", {1, 0, 2});  // [2, N, 12]
  b.ints("three", {3});
  b.node("Mul", {"n", "three"}, {"n3"});
  b.ints("four", {4});
  Builder::attr(b.node("Concat", {"heads", "n3", "four"}, {"merged_target"}), "axis", int64_t{0});
  b.node("Reshape", {"t", "merged_target"}, {"merged"});  // [2, 3N, 4]: the batch merged with a split of 12
  Builder::attr(b.node("Transpose", {"merged"}, {"mt"}), "perm", {1, 0, 2});  // [3N, 2, 4]
  Builder::attr(b.node("Concat", {"n", "minus_one"}, {"back_target"}), "axis", int64_t{0});
  b.node("Reshape", {"mt", "back_target"}, {"y"});  // [N, 24]
  b.node("Relu", {"y"}, {"out"});
  b.output("out");
  graph::Graph g = b.import();
  for (int64_t n : {1, 3, 5}) {
    Tensor x = iota({n, 4, 6});
    // NumPy: x.reshape(n, 2, 12).transpose(1, 0, 2).reshape(2, 3n, 4).transpose(1, 0, 2).reshape(n, 24)
    std::vector<float> xv = x.to_vector(), want(static_cast<size_t>(n * 24));
    for (int64_t r = 0; r < 3 * n; ++r) {
      for (int64_t h = 0; h < 2; ++h) {
        for (int64_t c = 0; c < 4; ++c) {
          // merged[h, r, c] = t[h].flat[r * 4 + c] where t[h] = split[:, h, :] ([n, 12])
          const int64_t flat = r * 4 + c, i = flat / 12, j = flat % 12;
          const float v = xv[static_cast<size_t>(i * 24 + h * 12 + j)];
          want[static_cast<size_t>((r * 2 + h) * 4 + c)] = std::max(v, 0.f);
        }
      }
    }
    Tensor got = g.run(x);
    ASSERT_EQ(got.shape(), (Shape{n, 24}));
    EXPECT_EQ(got.to_vector(), want) << "batch " << n;
  }
}

void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

TEST(ForeignShapeSubgraphs, WhatKilnCannotHonourIsAClearError) {
  {  // the batch folded into another dimension and then used as a plain value
    Builder b(17);
    b.input("x", {1, 4, 6});
    batch_dim(b, "x", "n");
    b.ints("four", {4});
    b.ints("six", {6});
    b.node("Mul", {"n", "four"}, {"n4"});
    auto* c = b.node("Concat", {"n4", "six"}, {"target"});
    Builder::attr(c, "axis", int64_t{0});
    b.node("Reshape", {"x", "target"}, {"rows"});
    b.node("Relu", {"rows"}, {"out"});
    b.output("out");
    expect_error([&] { b.import(); }, {"built.onnx", "Relu", "folds the batch"});
  }
  {  // a batch-sized value read as data
    Builder b(17);
    b.input("x", {1, 4});
    batch_dim(b, "x", "n");
    auto* cast = b.node("Cast", {"n"}, {"nf"});
    Builder::attr(cast, "to", int64_t{onnx::TensorProto::FLOAT});
    b.node("Add", {"x", "nf"}, {"out"});
    b.output("out");
    expect_error([&] { b.import(); }, {"built.onnx", "Cast", "depends on the batch"});
  }
  {  // an attribute Kiln does not read
    Builder b(11);
    b.input("x", {1, 1, 4});
    auto* s = b.node("Squeeze", {"x"}, {"out"});
    Builder::attr(s, "axes", std::vector<int64_t>{1});
    Builder::attr(s, "fancy", int64_t{1});
    b.output("out");
    expect_error([&] { b.import(); }, {"built.onnx", "Squeeze", "fancy"});
  }
  {  // Where on computed values imports (issue 23), but Kiln's where selects among float values only
    Builder b(17);
    b.input("x", {1, 4}, onnx::TensorProto::INT64);
    b.input("y", {1, 4}, onnx::TensorProto::INT64);
    b.node("Greater", {"x", "y"}, {"mask"});
    b.node("Where", {"mask", "x", "y"}, {"out"});
    b.output("out");
    expect_error([&] { b.import(); }, {"built.onnx", "Where", "non-FLOAT"});
  }
}

TEST(ForeignShapeSubgraphs, SplitSqueezeAndUnsqueezeAcrossOpsets) {
  for (int opset : {11, 13, 18}) {
    Builder b(opset);
    b.input("x", {1, 6, 2});
    onnx::NodeProto* split = b.node("Split", {"x"}, {"a", "b"});
    Builder::attr(split, "axis", int64_t{1});
    if (opset < 13) {
      Builder::attr(split, "split", std::vector<int64_t>{2, 4});
    } else {
      b.ints("sizes", {2, 4});
      split->add_input("sizes");
    }
    auto with_axes = [&](const std::string& op, const std::string& in, const std::string& out, std::vector<int64_t> axes) {
      if (opset < 13) {
        Builder::attr(b.node(op, {in}, {out}), "axes", axes);
      } else {
        b.ints(out + "_axes", axes);
        b.node(op, {in, out + "_axes"}, {out});
      }
    };
    with_axes("Unsqueeze", "a", "a4", {1, -1});  // [N, 1, 2, 2, 1]
    with_axes("Squeeze", "a4", "a2", {4, 1});    // [N, 2, 2]
    b.output("a2");
    b.output("b");
    graph::Graph g = b.import();
    Tensor x = iota({3, 6, 2});
    std::vector<Tensor> out = g.run(std::vector<Tensor>{x});
    ASSERT_EQ(out[0].shape(), (Shape{3, 2, 2})) << "opset " << opset;
    ASSERT_EQ(out[1].shape(), (Shape{3, 4, 2})) << "opset " << opset;
    std::vector<float> xv = x.to_vector(), a = out[0].to_vector(), bv = out[1].to_vector();
    for (int64_t n = 0; n < 3; ++n) {
      for (int64_t r = 0; r < 6; ++r) {
        for (int64_t c = 0; c < 2; ++c) {
          const float v = xv[static_cast<size_t>((n * 6 + r) * 2 + c)];
          if (r < 2) EXPECT_EQ(a[static_cast<size_t>((n * 2 + r) * 2 + c)], v);
          else EXPECT_EQ(bv[static_cast<size_t>((n * 4 + r - 2) * 2 + c)], v);
        }
      }
    }
  }
}

}  // namespace
}  // namespace kiln
