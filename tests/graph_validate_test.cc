// Graph::validate's per-node shape and dtype inference (issue 26): a graph whose declared
// values disagree with what its ops make is refused where it enters (validate, the graph
// loader, InferenceModel), naming the node, instead of reaching a pass or the inference plan
// (where a dim off by one died with SIGFPE inside oneDNN, and a wrong reshape or dtype ran
// silently). Each case is a valid traced or hand-built graph with one edit.
#include <gtest/gtest.h>

#include <cstdio>
#include <iterator>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>

#include "graph/graph.h"
#include "graph/graph_io.h"
#include "graph/passes/graph_edit.h"
#include "graph/trace.h"
#include "runtime_export/inference_model.h"
#include "tensor/ops/ops.h"
#include "tensor/ops/registry.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using graph::Graph;
using graph::kBatch;

// x[N, 6, 6, 3] -> conv2d(3x3, 4 filters, bias) -> relu -> reshape [0, -1] -> linear(64 -> 5).
Graph traced_cnn() {
  Tensor w = testing::rand_tensor({3, 3, 3, 4}, 1), b = testing::rand_tensor({4}, 2);
  Tensor dense_w = testing::rand_tensor({64, 5}, 3), dense_b = testing::rand_tensor({5}, 4);
  auto fn = [=](const std::vector<Tensor>& in) {
    Tensor h = relu(conv2d(in[0], w, b, Conv2dAttrs{}));
    h = reshape(h, {in[0].shape()[0], -1});
    return std::vector<Tensor>{linear(h, dense_w, dense_b)};
  };
  return graph::trace(fn, {testing::rand_tensor({2, 6, 6, 3}, 5)},
                      {{"conv/kernel", w}, {"conv/bias", b}, {"dense/kernel", dense_w}, {"dense/bias", dense_b}});
}

int node_of(const Graph& g, ops::OpKind kind) {
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    if (g.nodes[k].call.is(kind)) return static_cast<int>(k);
  }
  ADD_FAILURE() << "no " << ops::op_kind_name(kind) << " node in\n" << g.to_string();
  return 0;
}

// The message each entry point gives, which must be the same refusal: Graph::validate's, the
// loader's (the edited graph saved and read back) and InferenceModel's.
void expect_refused_everywhere(const Graph& g, const std::vector<std::string>& fragments) {
  auto check = [&](const std::string& where, const std::function<void()>& enter) {
    try {
      enter();
      ADD_FAILURE() << where << " accepted\n" << g.to_string();
    } catch (const std::invalid_argument& e) {
      for (const std::string& f : fragments) {
        EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << where << ": '" << f << "' not in: " << e.what();
      }
    }
  };
  check("Graph::validate", [&] { g.validate(); });
  check("parse_graph", [&] { graph::parse_graph(graph::serialize_graph(g), "edited.kgraph"); });
  check("InferenceModel", [&] { runtime_export::InferenceModel model(g); });
}

TEST(GraphValidate, TracedGraphIsValidAndRunsAtAnyBatch) {
  Graph g = traced_cnn();
  ASSERT_NO_THROW(g.validate());
  const graph::Value& flat = g.values[g.nodes[node_of(g, ops::OpKind::reshape)].outputs[0]];
  EXPECT_EQ(graph::value_type(flat), "f32[N, 64]");
  Tensor x = testing::rand_tensor({3, 6, 6, 3}, 6);
  runtime_export::InferenceModel model(g);
  EXPECT_EQ(model.run(x).shape(), (Shape{3, 5}));
  EXPECT_EQ(g.run(x).shape(), (Shape{3, 5}));
}

TEST(GraphValidate, ReshapeToTheWrongElementCount) {
  Graph g = traced_cnn();
  int k = node_of(g, ops::OpKind::reshape);
  g.nodes[k].call.set("shape", std::vector<int64_t>{0, 65});
  expect_refused_everywhere(g, {"node " + std::to_string(k) + " (reshape)", "cannot reshape f32[N, 4, 4, 4]", "[0, 65]"});
}

TEST(GraphValidate, ReshapeWithTooManyDims) {
  Graph g = traced_cnn();
  int k = node_of(g, ops::OpKind::reshape);
  g.nodes[k].call.set("shape", std::vector<int64_t>{0, 64, 1});
  expect_refused_everywhere(g, {"node " + std::to_string(k) + " (reshape)", "declared f32[N, 64]",
                                "the op makes f32[N, 64, 1]"});
}

TEST(GraphValidate, ReshapeWhoseShapeIsNotAList) {
  Graph g = traced_cnn();
  int k = node_of(g, ops::OpKind::reshape);
  g.nodes[k].call.set("shape", ops::AttrValue(int64_t{64}));
  expect_refused_everywhere(g, {"node " + std::to_string(k) + " (reshape)", "shape"});
}

TEST(GraphValidate, OutputDtypeTheOpsDoNotMake) {
  Graph g = traced_cnn();
  g.values[g.outputs[0]].dtype = DType::bf16;
  expect_refused_everywhere(g, {"(linear)", "declared bf16[N, 5]", "the op makes f32[N, 5]"});
}

TEST(GraphValidate, RecordedDimThatNoLongerMatchesItsProducer) {
  Graph g = traced_cnn();
  int k = node_of(g, ops::OpKind::reshape);
  g.values[g.nodes[k].outputs[0]].shape = {kBatch, 65};  // the linear reads it: SIGFPE in the plan before
  expect_refused_everywhere(g, {"node " + std::to_string(k) + " (reshape)", "declared f32[N, 65]",
                                "the op makes f32[N, 64]"});
}

TEST(GraphValidate, ConvOutputDimOffByOne) {
  Graph g = traced_cnn();
  int k = node_of(g, ops::OpKind::conv2d);
  g.values[g.nodes[k].outputs[0]].shape = {kBatch, 5, 4, 4};
  expect_refused_everywhere(g, {"node " + std::to_string(k) + " (conv2d)", "declared f32[N, 5, 4, 4]",
                                "the op makes f32[N, 4, 4, 4]"});
}

// An int8 linear by hand: u8[N, 8] x s8[8, 4] -> f32[N, 4]. Its plan builder divided by the
// recorded dims as the float linear's did.
Graph qlinear_graph() {
  Graph g;
  g.values = {{"x", {kBatch, 8}, DType::u8}, {"w", {8, 4}, DType::s8}, {"y", {kBatch, 4}, DType::f32}};
  g.inputs = {0};
  g.constants = {{1, false, Tensor::zeros({8, 4}, DType::s8)}};
  QuantizedEpilogue q;
  q.x_scale = 0.5f;
  q.w_scales = {0.1f, 0.1f, 0.1f, 0.1f};
  g.nodes = {{qlinear_attrs(q), {0, 1}, {2}}};
  g.outputs = {2};
  return g;
}

TEST(GraphValidate, QLinearInputDimOffByOne) {
  Graph good = qlinear_graph();
  ASSERT_NO_THROW(good.validate());
  Graph g = good;
  g.values[0].shape = {kBatch, 9};
  expect_refused_everywhere(g, {"node 0 (qlinear)", "linear: input f32[N, 9] does not match weights f32[8, 4]"});
  g = good;
  g.values[2].shape = {kBatch, 5};
  expect_refused_everywhere(g, {"node 0 (qlinear)", "declared f32[N, 5]", "the op makes f32[N, 4]"});
}

TEST(GraphValidate, SymbolicBatchThroughReshape) {
  auto reshaped = [](const std::vector<int64_t>& shape) {
    Graph g;
    g.values = {{"x", {kBatch, 4, 4}, DType::f32}, {"y", {}, DType::f32}};
    g.inputs = {0};
    g.nodes = {{ops::Attrs("reshape").set("shape", shape), {0}, {1}}};
    g.outputs = {1};
    return g;
  };
  auto infer = [](const Graph& g) { return ops::infer_op(g.nodes[0].call, {{g.values[0].dtype, g.values[0].shape}})[0]; };
  EXPECT_EQ(ops::describe(infer(reshaped({0, -1}))), "f32[N, 16]");  // 0 copies the batch
  EXPECT_EQ(ops::describe(infer(reshaped({0, 2, 8}))), "f32[N, 2, 8]");
  EXPECT_EQ(ops::describe(infer(reshaped({-1, 16}))), "f32[N, 16]");  // -1 is the batch itself
  // Sizes that hold for one batch only, or a dimension a multiple of N, are refused.
  for (std::vector<int64_t> shape : {std::vector<int64_t>{16}, {-1}, {-1, 8}, {0, 17}, {0, -1, 3}}) {
    EXPECT_THROW(infer(reshaped(shape)), std::invalid_argument) << shape_str(shape);
  }
  Graph g = reshaped({0, 16});
  g.values[1].shape = {kBatch, 16};
  EXPECT_NO_THROW(g.validate());
  g.values[1].shape = {2, 16};  // the trace's batch where the graph says N
  EXPECT_THROW(g.validate(), std::invalid_argument);
}

TEST(GraphValidate, DeclaredShapesAreChecked) {
  Graph g = qlinear_graph();
  g.values[2].shape = {kBatch, -4};
  EXPECT_THROW(g.validate(), std::invalid_argument);
  g.values[2].shape = {4, kBatch};  // only dimension 0 is the batch
  EXPECT_THROW(g.validate(), std::invalid_argument);
  g.values[2].shape = {kBatch, int64_t{1} << 62, 1 << 8};
  EXPECT_THROW(g.validate(), std::invalid_argument);
}

TEST(GraphValidate, TraceFixesTheBatchWhenTheCodeMixesItWithItsOwnSizes) {
  // A constant of the sample's batch: the graph holds for that batch only, and says so.
  Tensor c = testing::rand_tensor({2, 4}, 7);
  Graph g = graph::trace([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{add(in[0], c)}; },
                         {testing::rand_tensor({2, 4}, 8)});
  EXPECT_EQ(graph::value_type(g.values[g.inputs[0]]), "f32[2, 4]");
  EXPECT_THROW(g.run(testing::rand_tensor({3, 4}, 9)), std::invalid_argument);
}

TEST(GraphValidate, APassThatBreaksTheGraphIsCaughtNamingIt) {
  Graph g = traced_cnn();
  g.values[g.outputs[0]].shape = {kBatch, 6};
  try {
    graph::passes::validated_result("a_broken_pass", g);
    FAIL() << "accepted";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("a_broken_pass made an invalid graph"), std::string::npos) << e.what();
  }
}

TEST(GraphValidate, InferRejectsWhatTheEagerOpRejectsAtEdges) {
  // linear flattens other ranks to [-1, K]: with K = 0 the eager reshape throws.
  Tensor x = Tensor::zeros({2, 3, 0}), w = Tensor::zeros({0, 5});
  EXPECT_THROW(linear(x, w, Tensor()), std::invalid_argument);
  EXPECT_THROW(ops::infer_op(ops::Attrs("linear").set("activation", "none"), {{DType::f32, {2, 3, 0}}, {DType::f32, {0, 5}}}),
               std::invalid_argument);
  // A two-dimensional input takes the kernel directly, which K = 0 allows.
  EXPECT_EQ(linear(Tensor::zeros({2, 0}), w, Tensor()).shape(), (Shape{2, 5}));
  EXPECT_EQ(ops::describe(ops::infer_op(ops::Attrs("linear").set("activation", "none"),
                                        {{DType::f32, {kBatch, 0}}, {DType::f32, {0, 5}}})[0]),
            "f32[N, 5]");
}

// Many kinds of node on one traced graph, for the property test below.
Graph traced_mix() {
  Tensor k = testing::rand_tensor({3, 3, 3, 4}, 11), b = testing::rand_tensor({4}, 12);
  Tensor gamma = testing::rand_tensor({4}, 13), beta = testing::rand_tensor({4}, 14);
  Tensor mean = testing::rand_tensor({4}, 15), var = testing::rand_tensor({4}, 16, 0.5f, 1.f);
  Tensor w = testing::rand_tensor({16, 6}, 17), m = testing::rand_tensor({6, 6}, 18);
  auto fn = [=](const std::vector<Tensor>& in) {
    Conv2dAttrs same;
    same.padding = Padding::same;
    Tensor h = batch_norm_inference(conv2d(in[0], k, b, same), gamma, beta, mean, var, 1e-3f, true);
    h = max_pool2d(h, Pool2dAttrs{});                                   // [N, 3, 3, 4]
    h = slice(permute(h, {0, 2, 1, 3}), 1, 0, 2, 1);                    // [N, 2, 3, 4]
    h = reduce_mean(h, {2}, false);                                     // [N, 2, 4]
    Tensor flat = reshape(concat({h, sigmoid(h)}, 2), {in[0].shape()[0], -1});  // [N, 16]
    Tensor y = matmul(linear(flat, w, Tensor()), m) + broadcast_to(reduce_sum(b, {}, true) * 0.f + 1.f, {6});
    return std::vector<Tensor>{softmax(y, -1), cast(argmax(y, 1), DType::f32)};
  };
  return graph::trace(fn, {testing::rand_tensor({2, 6, 6, 3}, 19)}, {{"k", k}, {"b", b}, {"gamma", gamma},
                      {"beta", beta}, {"mean", mean}, {"var", var}, {"w", w}, {"m", m}});
}

// One random edit of the kinds the graph fuzzers make: an attribute's integer, list element or
// list length nudged or set to an extreme, a declared dimension off by one, a declared dtype
// changed.
void mutate(Graph& g, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const int64_t extremes[] = {0, 1, -1, 2, 3, int64_t{1} << 31, std::numeric_limits<int64_t>::max(),
                              std::numeric_limits<int64_t>::min()};
  auto nudge = [&](int64_t v) { return rng() % 2 ? v + (rng() % 2 ? 1 : -1) : extremes[pick(std::size(extremes))]; };
  switch (pick(3)) {
    case 0: {
      graph::Node& node = g.nodes[pick(g.nodes.size())];
      if (node.call.items().empty()) return;
      auto [name, value] = node.call.items()[pick(node.call.items().size())];
      if (auto* i = std::get_if<int64_t>(&value)) {
        *i = nudge(*i);
      } else if (auto* list = std::get_if<std::vector<int64_t>>(&value)) {
        if (list->empty() || rng() % 4 == 0) list->push_back(nudge(1));
        else if (rng() % 4 == 0) list->pop_back();
        else (*list)[pick(list->size())] = nudge((*list)[0]);
      } else if (auto* f = std::get_if<double>(&value)) {
        *f = rng() % 2 ? -*f : std::numeric_limits<double>::infinity();
      }
      node.call.set(name, value);
      return;
    }
    case 1: {
      graph::Value& v = g.values[pick(g.values.size())];
      if (v.shape.empty()) return;
      int64_t& d = v.shape[pick(v.shape.size())];
      if (d != kBatch) d += rng() % 2 ? 1 : -1;
      return;
    }
    default: {
      const DType dtypes[] = {DType::f32, DType::bf16, DType::s32, DType::u8, DType::s8};
      g.values[pick(g.values.size())].dtype = dtypes[pick(std::size(dtypes))];
      return;
    }
  }
}

// Issue 26's contract as a property: for any edit, either validation refuses the graph (with a
// "graph: " message), or Graph::run accepts it at other batches and makes the declared types.
TEST(GraphValidate, EveryEditIsRefusedOrRunsAsDeclared) {
  const Graph base = traced_mix();
  ASSERT_NO_THROW(base.validate());
  ASSERT_EQ(graph::value_type(base.values[base.inputs[0]]), "f32[N, 6, 6, 3]");
  std::mt19937_64 rng(26);
  int accepted = 0;
  for (int i = 0; i < 1500; ++i) {
    Graph g = base;
    mutate(g, rng);
    if (rng() % 2) mutate(g, rng);
    try {
      g.validate();
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).rfind("graph: ", 0), 0u) << e.what();
      continue;
    }
    ++accepted;
    for (int64_t batch : {1, 3}) {
      Tensor x = testing::rand_tensor({batch, 6, 6, 3}, 20 + i);
      std::vector<Tensor> out;
      try {
        out = g.run(std::vector<Tensor>{x});
      } catch (const std::exception& e) {
        ADD_FAILURE() << "edit " << i << ": validation accepted what Graph::run rejects: " << e.what() << "\n"
                      << g.to_string();
        break;
      }
      for (size_t k = 0; k < out.size(); ++k) {
        EXPECT_TRUE(graph::accepts(g.values[g.outputs[k]], out[k]))
            << "edit " << i << ": output " << k << " declared " << graph::value_type(g.values[g.outputs[k]])
            << ", made " << out[k].describe() << "\n" << g.to_string();
      }
    }
  }
  EXPECT_GT(accepted, 10);  // some edits keep the graph valid (an unused dtype, a same-size nudge)
  std::printf("%d of 1500 edited graphs valid\n", accepted);
}

}  // namespace
}  // namespace kiln
