// Layer graphs: a functional model's graph, Sequential's chain of the same kind, the fold_relu
// pass, and models nested as layers of other models.
#include <gtest/gtest.h>

#include <cstring>
#include <set>

#include "kiln.h"
#include "nn/layer_graph.h"
#include "nn/model_config.h"
#include "nn/passes/fold_relu.h"
#include "tests/gradcheck.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using testing::rand_tensor;
using Step = FusedPlan::Step;

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor ca = a.clone_detached(), cb = b.clone_detached();
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

Conv2DOptions same_padding() {
  Conv2DOptions o;
  o.padding = "same";
  return o;
}

TEST(LayerGraph, FunctionalModelExposesNodesInboundAndShapes) {
  SymbolicTensor in = Input({8, 8, 3});
  Layer conv = Conv2D(4, 3, "", same_padding()), act = Activation("relu"), pool = GlobalAveragePooling2D();
  Layer head = Dense(2);
  SymbolicTensor h = act(conv(in));
  SymbolicTensor out = head(pool(Add()({h, h})));
  Model model(in, out, "g");
  const LayerGraph& g = model.graph();
  ASSERT_EQ(g.nodes.size(), 6u);
  EXPECT_EQ(g.inputs, (std::vector<size_t>{0}));
  using Refs = std::vector<LayerGraph::Ref>;
  EXPECT_EQ(g.outputs, (Refs{{5, 0}}));
  EXPECT_TRUE(g.is_input(0));
  EXPECT_EQ(g.nodes[0].shape, (Shape{8, 8, 3}));
  EXPECT_EQ(g.nodes[1].layer.ptr(), conv.ptr());
  EXPECT_EQ(g.nodes[1].inbound, (Refs{{0, 0}}));
  EXPECT_EQ(g.nodes[1].shape, (Shape{8, 8, 4}));
  EXPECT_EQ(g.nodes[3].inbound, (Refs{{2, 0}, {2, 0}}));  // Add reads the ReLU twice
  EXPECT_EQ(g.nodes[5].shape, (Shape{2}));
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    for (const LayerGraph::Ref& i : g.nodes[n].inbound) EXPECT_LT(i.node, n);  // topological
  }
  EXPECT_EQ(g.layers().size(), 5u);
  EXPECT_EQ(model.class_name(), "Functional");
}

TEST(LayerGraph, SequentialIsAChainOfTheSameKind) {
  Sequential model({Conv2D(8, 3, "relu"), MaxPooling2D(), Flatten(), Dense(10)}, "chain");
  EXPECT_THROW(model.graph(), std::logic_error);  // no input shape yet
  model.build({10, 10, 1});
  const LayerGraph& g = model.graph();
  ASSERT_EQ(g.nodes.size(), 5u);
  EXPECT_TRUE(g.is_input(0));
  EXPECT_EQ(g.nodes[0].shape, (Shape{10, 10, 1}));
  for (size_t n = 1; n < 5; ++n) {
    EXPECT_EQ(g.nodes[n].inbound, (std::vector<LayerGraph::Ref>{{n - 1, 0}}));
    EXPECT_EQ(g.nodes[n].layer.ptr(), model.layers()[n - 1].ptr());
  }
  EXPECT_EQ(g.nodes[1].shape, (Shape{8, 8, 8}));
  EXPECT_EQ(g.nodes[4].shape, (Shape{10}));
  EXPECT_EQ(g.outputs, (std::vector<LayerGraph::Ref>{{4, 0}}));
  // The graph runs the model: the same bits as calling it.
  Tensor x = rand_tensor({3, 10, 10, 1}, 4);
  EXPECT_TRUE(same_bits(run_layer_graph(g, FusedPlan::plain(g), {x}, false)[0], model(x)));
  model.add(Dense(3));
  EXPECT_EQ(model.graph().nodes.size(), 6u);  // the chain follows add()
}

TEST(LayerGraph, WalkingModelsTreatsFunctionalAndSequentialAlike) {
  auto count_dense = [](const Model& m) {
    int n = 0;
    for (const LayerGraph::Node& node : m.graph().nodes) n += node.layer.defined() && node.layer->class_name() == "Dense";
    return n;
  };
  SymbolicTensor in = Input({4});
  Model functional(in, Dense(2)(Dense(3, "relu")(in)));
  Sequential sequential({Dense(3, "relu"), Dense(2)});
  sequential.build({4});
  EXPECT_EQ(count_dense(functional), 2);
  EXPECT_EQ(count_dense(sequential), 2);
}

TEST(FoldReluPass, FoldsOnlyWhereTheProducerFusesAndHasOneReader) {
  SymbolicTensor in = Input({6, 6, 2});
  Layer conv1 = Conv2D(4, 3, "", same_padding()), relu1 = Activation("relu");     // folds
  Layer bn = BatchNormalization(), relu2 = Activation("relu");                     // folds
  Layer conv2 = Conv2D(4, 3, "tanh", same_padding()), relu3 = Activation("relu");  // tanh: no fusion
  Layer conv3 = Conv2D(4, 1), relu4 = Activation("relu");                          // conv3 read twice
  Layer dense = Dense(4), relu7 = Activation("relu");                              // Dense does not fuse
  Layer add = Add(), relu5 = Activation("relu");                                   // folds into Add
  Layer relu6 = Activation("relu");                                                // reads an input
  SymbolicTensor a = relu1(conv1(in));
  SymbolicTensor b = relu2(bn(a));
  SymbolicTensor c = relu3(conv2(b));
  SymbolicTensor d0 = conv3(c);
  SymbolicTensor d = relu4(d0);
  SymbolicTensor e = relu5(add({d, d0}));
  SymbolicTensor f = relu6(in);
  SymbolicTensor g7 = relu7(dense(e));
  Model model({in}, {e, f, g7});
  const LayerGraph& g = model.graph();
  FusedPlan plan = fold_relu(g);
  auto step_of = [&](const Layer& l) {
    for (size_t n = 0; n < g.nodes.size(); ++n) {
      if (g.nodes[n].layer.ptr() == l.ptr()) return plan.steps[n];
    }
    ADD_FAILURE() << "layer not in graph";
    return Step::input;
  };
  EXPECT_EQ(step_of(conv1), Step::run_with_relu);
  EXPECT_EQ(step_of(relu1), Step::forward_input);
  EXPECT_EQ(step_of(bn), Step::run_with_relu);
  EXPECT_EQ(step_of(relu2), Step::forward_input);
  EXPECT_EQ(step_of(conv2), Step::run);
  EXPECT_EQ(step_of(relu3), Step::run);
  EXPECT_EQ(step_of(conv3), Step::run);
  EXPECT_EQ(step_of(relu4), Step::run);
  EXPECT_EQ(step_of(add), Step::run_with_relu);
  EXPECT_EQ(step_of(relu5), Step::forward_input);
  EXPECT_EQ(step_of(relu6), Step::run);
  EXPECT_EQ(step_of(dense), Step::run);
  EXPECT_EQ(step_of(relu7), Step::run);
  EXPECT_EQ(plan.steps[0], Step::input);
  // The model runs the pass's plan.
  EXPECT_EQ(model.plan().steps, plan.steps);

  // Folded or not, the same results (ReLU is exact), in inference and training.
  Tensor x = rand_tensor({3, 6, 6, 2}, 7);
  for (bool training : {false, true}) {
    std::vector<Tensor> fused = run_layer_graph(g, plan, {x}, training);
    std::vector<Tensor> plain = run_layer_graph(g, FusedPlan::plain(g), {x}, training);
    for (size_t i = 0; i < fused.size(); ++i) {
      auto p = fused[i].to_vector(), q = plain[i].to_vector();
      ASSERT_EQ(p.size(), q.size());
      for (size_t k = 0; k < p.size(); ++k) EXPECT_NEAR(p[k], q[k], 1e-5) << training;
    }
  }
}

TEST(FoldReluPass, AReluAfterAFoldedReluIsNotFoldedTwice) {
  SymbolicTensor in = Input({5});
  Layer bn = BatchNormalization(), r1 = Activation("relu"), r2 = Activation("relu");
  Model model(in, r2(r1(bn(in))));
  const LayerGraph& g = model.graph();
  FusedPlan plan = fold_relu(g);
  EXPECT_EQ(plan.steps, (std::vector<Step>{Step::input, Step::run_with_relu, Step::forward_input, Step::run}));
}

std::shared_ptr<Model> make_block(const std::string& prefix) {
  SymbolicTensor in = Input({4});
  SymbolicTensor h = Dense(4, "relu", {}, prefix + "_d1")(in);
  SymbolicTensor out = Add(prefix + "_add")({Dense(4, "", {}, prefix + "_d2")(h), in});
  return std::make_shared<Model>(in, out, prefix);
}

TEST(NestedModel, AModelIsALayerOfAnotherModel) {
  std::shared_ptr<Model> block = make_block("blk");
  SymbolicTensor in = Input({4});
  SymbolicTensor h = (*block)(in);
  Layer head = Dense(2, "", {}, "nest_head");
  Model outer(in, head(h), "outer");
  // The block's weights are the outer model's, with unique names.
  std::set<std::string> names;
  for (const Variable& v : outer.variables()) EXPECT_TRUE(names.insert(v.name()).second) << v.name();
  EXPECT_EQ(outer.variables().size(), block->variables().size() + 2);
  EXPECT_EQ(outer.trainable_variables().size(), 6u);
  EXPECT_EQ(outer.count_params(), block->count_params() + 4 * 2 + 2);
  EXPECT_EQ(outer.layers().size(), 2u);
  EXPECT_EQ(outer.layers()[0]->class_name(), "Functional");
  EXPECT_EQ(outer.layers()[0].ptr(), block->as_layer().ptr());  // one handle per model

  Tensor x = rand_tensor({3, 4}, 5);
  EXPECT_TRUE(same_bits(outer(x), head((*block)(x))));
  // Gradients reach the nested weights.
  GradientTape tape;
  Tensor loss = reduce_sum(square(outer(x, true)));
  std::vector<Tensor> grads = tape.gradient(loss, outer.trainable_variables());
  for (const Tensor& g : grads) {
    ASSERT_TRUE(g.defined());
    double norm = 0;
    for (float v : g.to_vector()) norm += v * v;
    EXPECT_GT(norm, 0);
  }
  EXPECT_NE(outer.summary().find("blk (Functional)"), std::string::npos) << outer.summary();
}

TEST(NestedModel, ItsCostIsItsLayersCosts) {
  std::shared_ptr<Model> block = make_block("cost");  // Dense(4, relu), Dense(4), Add
  Layer as_layer = block->as_layer();
  EXPECT_EQ(as_layer->compute_cost({{8, 4}}), 8 * 4 * 4 + 8 * 4 * 4 + 2 * 8 * 4);
  EXPECT_EQ(Dense(3)->compute_cost({{2, 5, 7}}), 2 * 5 * 7 * 3);
  EXPECT_EQ(Conv2D(6, 3, "", same_padding())->compute_cost({{1, 4, 4, 2}}), 4 * 4 * 6 * 3 * 3 * 2);
}

TEST(NestedModel, ABlockCalledTwiceSharesItsWeights) {
  std::shared_ptr<Model> block = make_block("twice");
  SymbolicTensor in = Input({4});
  Model outer(in, (*block)((*block)(in)));
  EXPECT_EQ(outer.variables().size(), block->variables().size());
  EXPECT_EQ(outer.graph().nodes.size(), 3u);
  Tensor x = rand_tensor({2, 4}, 8);
  EXPECT_TRUE(same_bits(outer(x), (*block)((*block)(x))));
}

TEST(NestedModel, SequentialHoldsModelsAndModelsHoldSequentials) {
  auto inner = std::make_shared<Sequential>(std::vector<Layer>{Dense(3, "relu", {}, "sq_in1"), Dense(4, "", {}, "sq_in2")},
                                            "inner_seq");
  SymbolicTensor in = Input({4});
  auto func = std::make_shared<Model>(in, Dense(4, "", {}, "fn_d")((*inner)(in)), "func");
  EXPECT_TRUE(inner->built());  // called symbolically: it knows its input now
  Sequential outer({func->as_layer(), Dense(2, "", {}, "sq_out")}, "outer_seq");
  Tensor x = rand_tensor({2, 4}, 9);
  Tensor y = outer(x);
  EXPECT_TRUE(same_bits(y, outer.layers()[1]((*func)(x))));
  EXPECT_EQ(outer.variables().size(), 2u + 2u + 2u + 2u);
  EXPECT_EQ(outer.graph().nodes.size(), 3u);
}

TEST(NestedModel, UniqueVariableNamesAreEnforcedAcrossLevels) {
  SymbolicTensor in = Input({4});
  auto block = std::make_shared<Model>(in, Dense(4, "", {}, "dup")(in));
  SymbolicTensor in2 = Input({4});
  EXPECT_THROW(Model(in2, Dense(4, "", {}, "dup")((*block)(in2))), std::invalid_argument);
}

TEST(NestedModel, UsingAModelAsALayerNeedsSharedOwnership) {
  SymbolicTensor in = Input({4});
  Model local(in, Dense(2)(in));
  try {
    local.as_layer();
    FAIL();
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("std::shared_ptr"), std::string::npos) << e.what();
  }
}

TEST(NestedModel, NestedConfigRoundTrips) {
  std::shared_ptr<Model> block = make_block("cfgblk");
  SymbolicTensor in = Input({4});
  Model outer(in, Dense(2, "", {}, "cfg_head")((*block)((*block)(in))), "cfg_outer");
  Config c = outer.config();
  std::shared_ptr<Model> copy = model_from_config("Functional", parse_config_json(c.to_json(), "nested"));
  EXPECT_EQ(copy->config(), c) << copy->config().to_json(2) << "\nvs\n" << c.to_json(2);
  std::vector<Variable> a = outer.variables(), b = copy->variables();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].name(), b[i].name());
    b[i].value().copy_from(a[i].value());
  }
  Tensor x = rand_tensor({3, 4}, 10);
  EXPECT_TRUE(same_bits(outer(x), (*copy)(x)));
  // Keras's functional layout: inbound nodes name the layer, the call and the tensor.
  const Config& layers = c.at("layers");
  EXPECT_EQ(layers[0].at("class_name").as_string(), "InputLayer");
  EXPECT_EQ(layers[1].at("class_name").as_string(), "Functional");
  EXPECT_EQ(layers[1].at("inbound_nodes").size(), 2u);
  EXPECT_EQ(layers[2].at("inbound_nodes")[0][0], Config::list({"cfgblk", 1, 0}));
}

}  // namespace
}  // namespace kiln
