// Deterministic mutation fuzzing of the ONNX importer, in the style of graph_fuzz_test: fixed
// seeds, so a failing case number reproduces. Seeds are exported here and checked in under
// corpus/onnx (KILN_FUZZ_WRITE_CORPUS=dir rewrites them). Byte mutations mostly break the
// protobuf framing, so most cases edit the decoded ModelProto instead (op types, attributes,
// dims, initializer bytes, wiring, opset) and serialize it again, reaching the importer's checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "graph/trace.h"
#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_tensor.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/graph_property.h"
#include "tests/fuzz/mutators.h"

int kiln_fuzz_onnx(const uint8_t* data, size_t size);  // onnx_fuzz_target.cc
const std::string& kiln_fuzz_onnx_dir();                 // holds weights.data, 4096 bytes

namespace kiln::fuzz {
namespace {

int g_bugs = 0;
std::string g_label;
void on_bug(const char* format, const std::string& what) {
  if (g_bugs++ < 10) ADD_FAILURE() << format << " " << g_label << ": " << what;
}

std::vector<std::string> exported_seeds() {
  Tensor k = random_uniform({3, 3, 2, 4}, -1.f, 1.f, 1), b = random_uniform({4}, -1.f, 1.f, 2);
  Tensor w = random_uniform({16, 3}, -1.f, 1.f, 3), g = random_uniform({3}, 0.5f, 1.f, 4);
  std::vector<graph::Graph> graphs;
  graphs.push_back(graph::trace(
      [&](const std::vector<Tensor>& in) {
        Tensor y = max_pool2d(fused_conv2d(in[0], k, b, Tensor(), Conv2dAttrs{.padding = Padding::same}, Epilogue::relu));
        Tensor h = fused_linear(reshape(y, {in[0].shape()[0], -1}), w, b.shape() == Shape{3} ? b : g, Tensor(), Epilogue::gelu_erf);
        return std::vector<Tensor>{softmax(batch_norm_inference(h, g, g, g, g, 1e-3f, true))};
      },
      {random_uniform({2, 4, 4, 2}, -1.f, 1.f, 5)}, {{"k", k}, {"b", b}, {"w", w}, {"g", g}}));
  graphs.push_back(graph::trace(
      [&](const std::vector<Tensor>& in) {
        Tensor c = concat({in[0], gelu(in[0], true)}, 1);
        Tensor m = reduce_mean(c, {1}, true) + slice(c, 1, 1, 7, 2);
        return std::vector<Tensor>{cast(argmax(m, 1), DType::f32), cast(cast(m * 9.f, DType::s8), DType::f32),
                                   greater(m, Tensor::scalar(0.f))};
      },
      {random_uniform({3, 4}, -1.f, 1.f, 6)}));
  graphs.push_back(graph::trace(
      [&](const std::vector<Tensor>& in) {
        Tensor y = avg_pool2d(conv2d(in[0], k, b, Conv2dAttrs{.strides = {2, 2}, .padding = Padding::same}),
                              Pool2dAttrs{.pool_size = {2, 2}, .strides = {1, 1}, .padding = Padding::same});
        return std::vector<Tensor>{permute(add_relu(y, y * 0.5f), {0, 3, 1, 2})};
      },
      {random_uniform({2, 5, 5, 2}, -1.f, 1.f, 7)}, {{"k", k}, {"b", b}}));
  // ConvTranspose (pads and output_padding) and Resize (scales, both modes).
  Tensor kt = random_uniform({3, 3, 2, 2}, -1.f, 1.f, 8), kt2 = random_uniform({2, 2, 3, 2}, -1.f, 1.f, 9);
  graphs.push_back(graph::trace(
      [&](const std::vector<Tensor>& in) {
        ConvTranspose2dAttrs up{.strides = {2, 2}, .padding = Padding::same, .output_padding = {1, 0}};
        Tensor y = resize2d(conv_transpose2d(in[0], kt, b.shape() == Shape{2} ? b : slice(b, 0, 0, 2, 1), up),
                            {{7, 9}, Interpolation::bilinear});
        y = conv_transpose2d(y, kt2, Tensor(), ConvTranspose2dAttrs{.strides = {3, 1}, .dilation = {1, 2}});
        return std::vector<Tensor>{resize2d(y, {{5, 4}, Interpolation::nearest})};
      },
      {random_uniform({2, 3, 4, 2}, -1.f, 1.f, 10)}, {{"kt", kt}, {"kt2", kt2}, {"b", b}}));
  // Pad in each mode, cropping too, on an NCHW value (after a conv) and on a rank-3 one.
  graphs.push_back(graph::trace(
      [&](const std::vector<Tensor>& in) {
        Tensor y = pad(conv2d(in[0], k, b, Conv2dAttrs{.padding = Padding::same}), {{0, 1, 2, 0}, {0, 2, -1, 0}, PadMode::reflect});
        y = pad(y, {{0, 0, 1, 0}, {0, 1, 0, 0}, PadMode::constant, 0.5});
        Tensor z = pad(reshape(in[0], {in[0].shape()[0], 8, 4}), {{0, 2, -1}, {0, 1, 2}, PadMode::edge});
        return std::vector<Tensor>{y, z};
      },
      {random_uniform({2, 4, 4, 2}, -1.f, 1.f, 11)}, {{"k", k}, {"b", b}}));
  std::vector<std::string> out;
  for (const auto& gr : graphs) out.push_back(runtime_export::serialize_onnx(gr));
  return out;
}

int64_t interesting(Rng& r) {
  static const int64_t kValues[] = {0, 1, -1, 2, 3, 4, 7, 64, 255, 256, -2, 1 << 20, int64_t{1} << 31, int64_t{1} << 40,
                                    INT64_MAX, INT64_MIN};
  return r.chance(70) ? kValues[r.below(std::size(kValues))] : static_cast<int64_t>(interesting_int(r));
}

// The seed with its FLOAT initializers moved into `file` (external data) in the fuzz target's
// model directory, the same bytes at their offsets.
std::string external_seed(const std::string& seed, const std::string& file) {
  onnx::ModelProto m;
  if (!m.ParseFromString(seed)) return seed;
  std::string data;
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    if (t.data_type() != onnx::TensorProto::FLOAT || !t.has_raw_data()) continue;
    const std::string offset = std::to_string(data.size()), length = std::to_string(t.raw_data().size());
    data += t.raw_data();
    t.clear_raw_data();
    t.set_data_location(onnx::TensorProto::EXTERNAL);
    for (auto [k, v] : {std::pair<std::string, std::string>{"location", file}, {"offset", offset}, {"length", length}}) {
      auto* e = t.add_external_data();
      e->set_key(k);
      e->set_value(v);
    }
  }
  std::ofstream(kiln_fuzz_onnx_dir() + "/" + file, std::ios::binary) << data;
  return m.SerializeAsString();
}

// An initializer's external data entries edited: locations that escape or do not exist,
// offsets and lengths past the file, unknown or missing keys.
void mutate_external(onnx::ModelProto& m, Rng& r) {
  auto* gp = m.mutable_graph();
  if (!gp->initializer_size()) return;
  auto* t = gp->mutable_initializer(r.below(gp->initializer_size()));
  if (t->external_data_size() == 0 || r.chance(20)) {
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    if (r.chance(70)) t->clear_raw_data();
    auto* e = t->add_external_data();
    e->set_key("location");
    e->set_value("weights.data");
    return;
  }
  auto* e = t->mutable_external_data(r.below(t->external_data_size()));
  static const char* kLocations[] = {"weights.data", "seed9.data", "../weights.data", "/etc/passwd", "./weights.data", "absent.data",
                                     "", ".", "sub/../weights.data", "weights.data/x"};
  static const char* kKeys[] = {"location", "offset", "length", "checksum", "basepath", ""};
  switch (r.below(4)) {
    case 0: e->set_value(kLocations[r.below(std::size(kLocations))]); break;
    case 1: e->set_value(std::to_string(interesting(r))); break;
    case 2: e->set_key(kKeys[r.below(std::size(kKeys))]); break;
    default: t->mutable_external_data()->DeleteSubrange(static_cast<int>(r.below(t->external_data_size())), 1); break;
  }
}

// One structural edit of a decoded model.
void mutate_model(onnx::ModelProto& m, Rng& r) {
  static const char* kOps[] = {"Conv", "Gemm", "MatMul", "Add", "Mul", "Relu", "Transpose", "Reshape", "Slice",
                               "Concat", "Softmax", "ReduceMean", "ReduceSum", "MaxPool", "AveragePool", "Cast",
                               "BatchNormalization", "Erf", "Round", "Clip", "ArgMax", "Expand", "Identity", "Pow", "Pad", "Bogus"};
  auto* gp = m.mutable_graph();
  switch (r.below(10)) {
    case 0:
      if (gp->node_size()) gp->mutable_node(r.below(gp->node_size()))->set_op_type(kOps[r.below(std::size(kOps))]);
      break;
    case 1: {  // an attribute's integers
      if (!gp->node_size()) break;
      auto* n = gp->mutable_node(r.below(gp->node_size()));
      if (!n->attribute_size()) break;
      auto* a = n->mutable_attribute(r.below(n->attribute_size()));
      if (a->ints_size()) a->set_ints(r.below(a->ints_size()), interesting(r));
      else a->set_i(interesting(r));
      if (r.chance(10)) a->set_type(static_cast<onnx::AttributeProto::AttributeType>(r.below(12)));
      break;
    }
    case 2: {  // an initializer's dims
      if (!gp->initializer_size()) break;
      auto* t = gp->mutable_initializer(r.below(gp->initializer_size()));
      if (t->dims_size() && r.chance(80)) t->set_dims(r.below(t->dims_size()), interesting(r));
      else t->add_dims(interesting(r));
      break;
    }
    case 3: {  // an initializer's bytes or type
      if (!gp->initializer_size()) break;
      auto* t = gp->mutable_initializer(r.below(gp->initializer_size()));
      if (r.chance(50)) t->mutable_raw_data()->resize(r.below(t->raw_data().size() + 9));
      else if (r.chance(50)) t->set_data_type(static_cast<int32_t>(r.below(17)));
      else {
        t->clear_raw_data();
        for (size_t i = r.below(5); i > 0; --i) t->add_float_data(1.f);
      }
      // int64 initializers are shapes and axes: rewrite their values
      if (t->data_type() == onnx::TensorProto::INT64 && t->raw_data().size() >= 8 && r.chance(50)) {
        int64_t v = interesting(r);
        std::memcpy(t->mutable_raw_data()->data() + 8 * r.below(t->raw_data().size() / 8), &v, 8);
      }
      break;
    }
    case 4: {  // rewire an input
      if (!gp->node_size()) break;
      auto* n = gp->mutable_node(r.below(gp->node_size()));
      if (!n->input_size()) break;
      const auto& other = gp->node(r.below(gp->node_size()));
      std::string name = other.output_size() ? other.output(0) : "";
      if (r.chance(30) && gp->initializer_size()) name = gp->initializer(r.below(gp->initializer_size())).name();
      n->set_input(r.below(n->input_size()), name);
      break;
    }
    case 5: {  // drop or duplicate a node
      if (!gp->node_size()) break;
      int i = static_cast<int>(r.below(gp->node_size()));
      if (r.chance(50)) {
        gp->mutable_node()->DeleteSubrange(i, 1);
      } else {
        *gp->add_node() = gp->node(i);
      }
      break;
    }
    case 6: {  // graph input/output dims and types
      auto* vi = r.chance(50) && gp->input_size() ? gp->mutable_input(r.below(gp->input_size()))
                                                   : gp->output_size() ? gp->mutable_output(r.below(gp->output_size())) : nullptr;
      if (!vi) break;
      auto* tt = vi->mutable_type()->mutable_tensor_type();
      if (r.chance(20)) {
        tt->set_elem_type(static_cast<int32_t>(r.below(17)));
      } else if (tt->shape().dim_size()) {
        auto* d = tt->mutable_shape()->mutable_dim(r.below(tt->shape().dim_size()));
        if (r.chance(20)) d->set_dim_param("n");
        else d->set_dim_value(interesting(r));
      }
      break;
    }
    case 7:
      m.mutable_opset_import(0)->set_version(r.chance(80) ? 17 : static_cast<int64_t>(r.below(25)));
      if (r.chance(30)) m.set_ir_version(static_cast<int64_t>(r.below(11)));
      break;
    case 8: {  // an attribute added, removed or renamed
      if (!gp->node_size()) break;
      auto* n = gp->mutable_node(r.below(gp->node_size()));
      if (n->attribute_size() && r.chance(50)) {
        n->mutable_attribute()->DeleteSubrange(static_cast<int>(r.below(n->attribute_size())), 1);
      } else {
        auto* a = n->add_attribute();
        static const char* kNames[] = {"axis", "perm", "pads", "strides", "group", "keepdims", "to", "alpha", "epsilon", "value"};
        a->set_name(kNames[r.below(std::size(kNames))]);
        a->set_type(r.chance(50) ? onnx::AttributeProto::INT : onnx::AttributeProto::INTS);
        a->set_i(interesting(r));
        a->add_ints(interesting(r));
      }
      break;
    }
    default: {  // swap two nodes (use before definition)
      if (gp->node_size() < 2) break;
      gp->mutable_node()->SwapElements(static_cast<int>(r.below(gp->node_size())), static_cast<int>(r.below(gp->node_size())));
      break;
    }
  }
}

TEST(OnnxFuzz, SeedsLoadAndMutationsNeverCrash) {
  set_bug_handler(on_bug);
  size_t checked_in = 0;
  std::vector<std::string> seeds = driver_seeds(exported_seeds(), "onnx", "valid-exported", "onnx", &checked_in);
  EXPECT_GT(checked_in, 0u) << "no checked-in corpus under tests/fuzz/corpus/onnx";
  for (const std::string& s : exported_seeds()) seeds.push_back(external_seed(s, "seed" + std::to_string(seeds.size()) + ".data"));
  for (size_t i = 0; i < seeds.size(); ++i) {
    g_label = "seed " + std::to_string(i);
    if (kiln_fuzz_onnx(reinterpret_cast<const uint8_t*>(seeds[i].data()), seeds[i].size()) == 1) continue;
    try {
      runtime_export::parse_onnx(seeds[i], g_label, kiln_fuzz_onnx_dir()).run(std::vector<Tensor>{});
      ADD_FAILURE() << g_label << " rejected";
    } catch (const std::exception& e) {
      ADD_FAILURE() << g_label << " rejected: " << e.what();
    }
  }
  const char* env = std::getenv("KILN_FUZZ_CASES");
  const int cases = env ? std::atoi(env) : 3000;
  Rng r(0x0411);
  const std::vector<std::string> dictionary = {"Conv", "Gemm", "Transpose", "Reshape", "perm", "pads",
                                               std::string(8, '\xff'), std::string(4, '\0')};
  int accepted = 0, structural = 0;
  for (int c = 0; c < cases; ++c) {
    const std::string& seed = seeds[r.below(seeds.size())];
    std::string in = seed;
    onnx::ModelProto m;
    if (r.chance(75) && m.ParseFromString(seed)) {
      for (size_t k = 1 + r.below(3); k > 0; --k) {
        if (r.chance(15)) mutate_external(m, r);
        else mutate_model(m, r);
      }
      in = m.SerializeAsString();
      ++structural;
    } else {
      mutate_bytes(in, r, {}, dictionary, seeds);
    }
    g_label = "case " + std::to_string(c);
    accepted += kiln_fuzz_onnx(reinterpret_cast<const uint8_t*>(in.data()), in.size());
  }
  std::printf("onnx: %d cases (%d structural), %d accepted, %d rejected\n", cases, structural, accepted, cases - accepted);
  EXPECT_EQ(g_bugs, 0);
}

// Issue 26: an ONNX input with a fixed batch dimension of 0 was accepted, and the model then
// crashed in oneDNN. It is refused at import, naming the input; the seeds' imported graphs
// satisfy the run property (Graph::run and InferenceModel agree).
TEST(OnnxFuzz, AFixedZeroBatchIsRefusedAndImportedSeedsRunAlike) {
  set_bug_handler(on_bug);
  size_t checked_in = 0;
  std::vector<std::string> seeds = driver_seeds(exported_seeds(), "onnx", "valid-exported", "onnx", &checked_in);
  for (size_t i = 0; i < seeds.size(); ++i) {
    g_label = "seed " + std::to_string(i);
    graph::Graph g = runtime_export::parse_onnx(seeds[i], g_label);
    EXPECT_EQ(check_run_agreement(g, g_label), Agreement::both_ran) << g_label;
    onnx::ModelProto m;
    ASSERT_TRUE(m.ParseFromString(seeds[i]));
    auto* dim = m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0);
    dim->set_dim_value(0);
    try {
      runtime_export::parse_onnx(m.SerializeAsString(), "zero-batch.onnx");
      ADD_FAILURE() << g_label << ": imported an input with a fixed batch of 0";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("fixed batch dimension of 0"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("zero-batch.onnx"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(g_bugs, 0);
  set_bug_handler(nullptr);
}

}  // namespace
}  // namespace kiln::fuzz
