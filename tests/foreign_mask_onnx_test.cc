// PyTorch's attention masking as torch.onnx writes it (tests/data/foreign_onnx/make_models.py,
// write_mask_models): a self-attention block over hidden states whose scores are masked_fill'ed
// with -inf where an attention_mask input (INT64, or BOOL) marks padding, a torch.where and a
// standalone erf; by the TorchScript exporter at opsets 14, 17 and 18 and by the dynamo
// exporter (opset 18). Exported at batch 2, run at batch 3 with rows padded by 0, 2 and 4 of 6
// positions; plus ErfNet (Linear -> Erf -> Linear).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "runtime_export/onnx/onnx_tensor.h"  // the ONNX protos, as the importer includes them

#include "data/npy.h"
#include "graph/graph.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tensor/ops/ops.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

const std::string kDir = "tests/data/foreign_onnx/";

int count_op(const graph::Graph& g, const std::string& op) {
  int k = 0;
  for (const auto& n : g.nodes) k += n.call.op() == op;
  return k;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (float v : t.to_vector()) m = std::max(m, std::fabs(double(v)));
  return m;
}

// fp32 within 1e-4 of PyTorch (Graph::run and the inference plan); bf16 within 5% of the
// largest output (8 mantissa bits through attention, LayerNorm and erf).
void expect_matches(const std::string& file, const std::vector<Tensor>& xs, const Tensor& want) {
  SCOPED_TRACE(file);
  graph::Graph g = runtime_export::import_onnx(kDir + file);
  for (int v : g.inputs) EXPECT_EQ(g.values[v].shape[0], graph::kBatch);
  const double graph_err = testing::max_abs_diff(g.run(xs)[0], want);
  EXPECT_LE(graph_err, 1e-4);
  runtime_export::InferenceModel fp32(g);
  const double fp32_err = testing::max_abs_diff(fp32.run(xs)[0], want);
  EXPECT_LE(fp32_err, 1e-4);
  runtime_export::InferenceModel bf16(g, {.dtype = DType::bf16});
  const double bf16_err = testing::max_abs_diff(bf16.run(xs)[0], want);
  EXPECT_LE(bf16_err, 0.05 * max_abs(want));
  std::printf("%s: max |output| %.3g; max abs error Graph::run %.3g, fp32 plan %.3g, bf16 plan %.3g; %zu nodes\n",
              file.c_str(), max_abs(want), graph_err, fp32_err, bf16_err, g.nodes.size());
  EXPECT_GE(count_op(g, "erf"), 1);
}

class ForeignMask : public ::testing::TestWithParam<std::string> {};

TEST_P(ForeignMask, MatchesPyTorchWithPaddedRows) {
  const std::string variant = GetParam();  // "int64.opset14", "bool.dynamo", ...
  const bool boolean = variant.rfind("bool", 0) == 0;
  const Tensor x = data::read_npy(kDir + "masked_attention.input.npy");
  const Tensor mask = data::read_npy(kDir + "masked_attention.mask.npy");  // INT64 -> s32
  ASSERT_EQ(mask.dtype(), DType::s32);
  ASSERT_EQ(x.shape()[0], 3);
  // Rows of different lengths, one unpadded: the mask is not all ones or all alike.
  EXPECT_EQ(mask.to_vector(), (std::vector<float>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0}));
  const Tensor feed = boolean ? cast(mask, DType::u8) : mask;  // a BOOL input is u8 (1/0)
  const Tensor want = data::read_npy(kDir + "masked_attention." + std::string(boolean ? "bool" : "int64") + ".output.npy");
  expect_matches("masked_attention." + variant + ".onnx", {x, feed}, want);
  graph::Graph g = runtime_export::import_onnx(kDir + "masked_attention." + variant + ".onnx");
  EXPECT_EQ(count_op(g, "where"), 2);
  EXPECT_EQ(count_op(g, boolean ? "logical_not" : "equal"), 1);
  if (boolean) {
    EXPECT_EQ(count_op(g, "logical_and"), 1);
  }
  // The padded keys get no attention: PyTorch's output for a row changes if they are unmasked.
  Tensor unpadded = boolean ? cast(Tensor::ones(mask.shape()), DType::u8) : cast(Tensor::ones(mask.shape()), DType::s32);
  EXPECT_GT(testing::max_abs_diff(g.run({x, unpadded})[0], want), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(TorchOnnx, ForeignMask,
                         ::testing::Values("int64.opset14", "int64.opset17", "int64.opset18", "int64.dynamo",
                                           "bool.opset14", "bool.opset17", "bool.opset18", "bool.dynamo"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) c = c == '.' ? '_' : c;
                           return s;
                         });

TEST(ForeignErf, StandaloneErfMatchesPyTorch) {
  const Tensor x = data::read_npy(kDir + "erf_net.input.npy"), want = data::read_npy(kDir + "erf_net.output.npy");
  for (const char* file : {"erf_net.opset17.onnx", "erf_net.dynamo.onnx"}) expect_matches(file, {x}, want);
}

// Cast to BOOL of float values (nonzero and NaN are true), Xor, LessOrEqual (false for NaN) and
// Or, hand-built, on a BOOL model input too; and Where choosing among INT64 values is refused.
TEST(ForeignMask, CastToBoolXorLessOrEqualAndOrOnRunTimeValues) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  onnx::GraphProto* g = m.mutable_graph();
  auto input = [&](const std::string& name, int elem) {
    auto* t = g->add_input();
    t->set_name(name);
    auto* tt = t->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem);
    tt->mutable_shape()->add_dim()->set_dim_param("N");
    tt->mutable_shape()->add_dim()->set_dim_value(5);
  };
  auto node = [&](const std::string& op, std::vector<std::string> in, const std::string& out, int cast_to = -1) {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(op + "_" + out);
    for (const auto& i : in) n->add_input(i);
    n->add_output(out);
    if (cast_to >= 0) {
      auto* a = n->add_attribute();
      a->set_name("to");
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(cast_to);
    }
  };
  input("x", onnx::TensorProto::FLOAT);
  input("y", onnx::TensorProto::FLOAT);
  input("keep", onnx::TensorProto::BOOL);
  node("Cast", {"x"}, "xb", onnx::TensorProto::BOOL);
  node("Cast", {"y"}, "yb", onnx::TensorProto::BOOL);
  node("Xor", {"xb", "yb"}, "differ");
  node("LessOrEqual", {"x", "y"}, "le");
  node("Or", {"differ", "le"}, "either");
  node("And", {"either", "keep"}, "both");
  node("Cast", {"both"}, "out", onnx::TensorProto::FLOAT);
  g->add_output()->set_name("out");
  graph::Graph imported = runtime_export::parse_onnx(m.SerializeAsString(), "built.onnx");
  const float nan = std::nanf("");
  Tensor x = Tensor::from_vector({0.f, 2.f, nan, 3.f, -1.f}, {1, 5}), y = Tensor::from_vector({0.f, 0.f, 1.f, 1.f, 0.f}, {1, 5});
  Tensor keep = cast(Tensor::from_vector({1.f, 1.f, 1.f, 1.f, 0.f}, {1, 5}), DType::u8);
  // differ: 0 1 0 0 1; le: 1 0 0 0 1; either: 1 1 0 0 1; and keep: 1 1 0 0 0.
  EXPECT_EQ(imported.run({x, y, keep})[0].to_vector(), (std::vector<float>{1, 1, 0, 0, 0}));

  g->mutable_input(0)->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::INT64);
  g->mutable_input(1)->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::INT64);
  g->clear_node();
  g->clear_output();
  node("Greater", {"x", "y"}, "gt");
  node("Where", {"gt", "x", "y"}, "out");
  g->add_output()->set_name("out");
  try {
    runtime_export::parse_onnx(m.SerializeAsString(), "built.onnx");
    FAIL() << "accepted";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    for (const char* word : {"built.onnx", "Where", "non-FLOAT", "'x'"}) EXPECT_NE(what.find(word), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace kiln
