// trace(): one inference forward as a Graph that runs with the eager ops and equals the model,
// at another batch size than the one traced, before and after a save/load round trip.
#include <gtest/gtest.h>

#include <cstring>

#include "data/atomic_file.h"
#include "graph/graph_io.h"
#include "graph/trace.h"
#include "kiln.h"
#include "nn/applications/applications.h"
#include "tests/tensor_compare.h"
#include "tests/temp_path.h"

namespace kiln {
namespace {

using testing::bitwise_equal;

using namespace kiln::nn;

using kiln::testing::temp_path;

// Traces at batch 2, then checks the graph (and its saved-and-loaded copy) at batch 3.
void expect_graph_equals_model(Model& model, const Shape& example_shape, DType dtype = DType::f32) {
  Shape traced{2}, other{3};
  traced.insert(traced.end(), example_shape.begin(), example_shape.end());
  other.insert(other.end(), example_shape.begin(), example_shape.end());
  Tensor sample = cast(random_uniform(traced, 0.f, 1.f, 5), dtype);
  Tensor x = cast(random_uniform(other, 0.f, 1.f, 6), dtype);
  graph::Graph g = graph::trace(model, sample);
  Tensor expected = model(x);
  EXPECT_TRUE(bitwise_equal(g.run(x), expected)) << g.to_string();
  std::string path = temp_path(model.name() + ".kgraph");
  graph::save_graph(g, path);
  graph::Graph loaded = graph::load_graph(path);
  EXPECT_EQ(loaded.to_string(), g.to_string());
  EXPECT_TRUE(bitwise_equal(loaded.run(x), expected));
}

TEST(Trace, PlainFunctionWithNamedVariableAndBatchReshape) {
  Tensor w = random_uniform({4, 3}, -1.f, 1.f, 1);
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor h = relu(matmul(in[0], w) * 2.f);
    Tensor r = reshape(h, {in[0].shape()[0], 3, 1});
    return std::vector<Tensor>{reduce_sum(r, {2})};
  };
  graph::Graph g = graph::trace(fn, {random_uniform({5, 4}, -1.f, 1.f, 2)}, {{"w", w}});
  Tensor x = random_uniform({7, 4}, -1.f, 1.f, 3);
  EXPECT_TRUE(bitwise_equal(g.run(x), fn({x})[0]));
  std::string text = g.to_string();
  EXPECT_NE(text.find("matmul(input_0, w)"), std::string::npos) << text;
  EXPECT_NE(text.find("f32[N, 3]"), std::string::npos) << text;
  ASSERT_EQ(g.inputs.size(), 1u);
  EXPECT_EQ(g.values[g.inputs[0]].shape, (Shape{graph::kBatch, 4}));
  // The variable is a named constant bound to the live tensor; the literal 2 was folded in.
  const graph::Constant* c = nullptr;
  for (const auto& k : g.constants) {
    if (k.is_variable) c = &k;
  }
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(g.values[c->value].name, "w");
  EXPECT_THROW(g.run(random_uniform({7, 5}, -1.f, 1.f, 3)), std::invalid_argument);  // names the input
}

TEST(Trace, OnlyWhatReachesTheOutputsIsKept) {
  auto fn = [](const std::vector<Tensor>& in) {
    Tensor unused = exp(in[0]);
    (void)unused;
    return std::vector<Tensor>{in[0] + 1.f};
  };
  graph::Graph g = graph::trace(fn, {Tensor::ones({2, 3})});
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].call.op(), "affine");  // x + 1 is one affine eltwise
}

TEST(Trace, MlpCnnAndResNetRunAsGraphs) {
  set_global_seed(1);
  auto mlp = applications::fashion_mnist_mlp();
  mlp->build({28, 28, 1}, DType::u8);
  expect_graph_equals_model(*mlp, {28, 28, 1}, DType::u8);
  auto cnn = applications::keras_cnn();
  cnn->build({28, 28, 1}, DType::u8);
  expect_graph_equals_model(*cnn, {28, 28, 1}, DType::u8);
  auto resnet = applications::resnet18({16, 16, 3}, 10);
  expect_graph_equals_model(*resnet, {16, 16, 3});
}

TEST(Trace, FunctionalModelWithBatchNormAndResidualAdd) {
  set_global_seed(2);
  auto in = Input({8, 8, 4});
  Conv2DOptions same;
  same.padding = "same";
  auto h = Conv2D(4, 3, "", same)(in);
  h = BatchNormalization()(h);
  h = Activation("relu")(h);
  auto y = Add()({h, in});
  y = Activation("relu")(y);
  auto out = Dense(3)(GlobalAveragePooling2D()(y));
  Model model(in, out, "residual");
  // Give BatchNorm non-trivial moving statistics.
  model.compile(optim::SGD(0.1f), MeanSquaredError());
  Tensor xs = random_uniform({8, 8, 8, 4}, -1.f, 1.f, 3), ys = random_uniform({8, 3}, -1.f, 1.f, 4);
  model.fit(data::Dataset::from_tensor_slices(xs, ys).batch(4), {.epochs = 1, .verbose = 0});
  expect_graph_equals_model(model, {8, 8, 4});
}

TEST(Trace, NestedModelsTraceToTheirOps) {
  set_global_seed(4);
  SymbolicTensor bin = Input({6, 6, 3});
  Conv2DOptions same;
  same.padding = "same";
  SymbolicTensor bh = Activation("relu")(BatchNormalization()(Conv2D(3, 3, "", same)(bin)));
  auto block = std::make_shared<Model>(bin, Add()({bh, bin}), "trace_block");
  auto head = std::make_shared<Sequential>(std::vector<Layer>{Flatten(), Dense(5)}, "trace_head");
  SymbolicTensor in = Input({6, 6, 3});
  Model outer(in, (*head)((*block)((*block)(in))), "trace_outer");  // the block twice: shared weights
  expect_graph_equals_model(outer, {6, 6, 3});
  graph::Graph g = graph::trace(outer, random_uniform({2, 6, 6, 3}, 0.f, 1.f, 7));
  int convs = 0;
  for (const auto& n : g.nodes) convs += n.call.op() == "conv2d";
  EXPECT_EQ(convs, 2);  // one per use of the block, both reading the same named kernel
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

TEST(Trace, SubclassedModel) {
  set_global_seed(3);
  TwoHeads model;
  expect_graph_equals_model(model, {6});
}

TEST(GraphFile, CorruptTruncatedAndWrongVersionFilesAreClearErrors) {
  Tensor w = random_uniform({4, 3}, -1.f, 1.f, 1);
  auto fn = [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{relu(matmul(in[0], w))}; };
  graph::Graph g = graph::trace(fn, {random_uniform({5, 4}, -1.f, 1.f, 2)}, {{"w", w}});
  std::string bytes = graph::serialize_graph(g);
  auto expect_error = [&](const std::string& b, const std::string& fragment) {
    try {
      graph::parse_graph(b, "g.kgraph");
      ADD_FAILURE() << "accepted; expected an error naming " << fragment;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 1;
  expect_error(flipped, "checksum");
  expect_error(bytes.substr(0, bytes.size() - 7), "g.kgraph");
  expect_error("NOTAGRAPH", "not a Kiln graph");
  std::string v2 = bytes;
  v2[8] = 2;
  expect_error(v2, "version 2");
  EXPECT_THROW(graph::load_graph(temp_path("absent.kgraph")), std::runtime_error);
}

}  // namespace
}  // namespace kiln
