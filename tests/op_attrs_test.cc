// The typed attributes (tensor/ops/op_attrs.h): parsing checks types and ranges and names the
// op and the attribute; Graph::validate runs it on every node; OpKind and the bag agree.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "graph/graph.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/ops.h"
#include "tensor/ops/registry.h"

namespace kiln {
namespace {

using ops::Attrs;
using ops::OpKind;

// Runs f, which must throw std::invalid_argument mentioning every one of `words`.
template <typename F>
void expect_invalid(F f, std::initializer_list<const char*> words) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    for (const char* w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what() << " lacks " << w;
  }
}

TEST(OpAttrs, KindsRoundTripThroughNames) {
  for (OpKind k : ops::all_op_kinds()) {
    EXPECT_EQ(ops::op_kind_from_name(ops::op_kind_name(k)), k);
    EXPECT_TRUE(Attrs(ops::op_kind_name(k)).is(k));
    EXPECT_EQ(Attrs(k).op(), ops::op_kind_name(k));
  }
  Attrs unknown("conv3d");
  EXPECT_FALSE(unknown.registered());
  expect_invalid([&] { unknown.kind(); }, {"conv3d", "not a registered op kind"});
}

TEST(OpAttrs, EltwiseKindsMatchTheirOps) {
  for (EltwiseKind e : all_eltwise_kinds()) {
    auto kind = ops::op_kind_from_name(eltwise_name(e));
    ASSERT_TRUE(kind) << eltwise_name(e);
    EXPECT_EQ(ops::eltwise_kind_of(*kind), e);
  }
  EXPECT_FALSE(ops::eltwise_kind_of(OpKind::conv2d));
}

TEST(OpAttrs, WhatTheOpsRecordParsesBack) {
  Conv2dAttrs conv{.strides = {2, 1}, .padding = Padding::same, .dilation = {1, 2}, .groups = 4,
                   .activation = FusedActivation::relu};
  Conv2dAttrs back = ops::parse_attrs_of<OpKind::conv2d>(to_attrs(conv));
  EXPECT_EQ(back.strides, conv.strides);
  EXPECT_EQ(back.dilation, conv.dilation);
  EXPECT_EQ(back.groups, 4);
  EXPECT_EQ(back.padding, Padding::same);
  EXPECT_EQ(back.activation, FusedActivation::relu);

  QuantizedEpilogue q{.x_scale = 0.5f, .w_scales = {0.25f, 0.125f}, .activation = Epilogue::gelu_erf,
                      .out_scale = 2.f, .out_dtype = DType::u8};
  ops::QConv2dAttrs qc = ops::parse_attrs_of<OpKind::qconv2d>(qconv2d_attrs(conv, q));
  EXPECT_EQ(qc.conv.groups, 4);
  EXPECT_EQ(qc.q.w_scales, q.w_scales);
  EXPECT_EQ(qc.q.activation, Epilogue::gelu_erf);
  EXPECT_EQ(qc.q.out_dtype, DType::u8);

  Pool2dAttrs pool{.pool_size = {3, 3}, .strides = {0, 0}, .padding = Padding::valid};
  EXPECT_EQ(ops::parse_attrs_of<OpKind::max_pool2d>(to_attrs("max_pool2d", pool)).pool_size, pool.pool_size);
  ops::EltwiseAttrs e = ops::parse_attrs_of<OpKind::clip>(eltwise_attrs(EltwiseKind::clip, -1.f, INFINITY));
  EXPECT_EQ(e.alpha, -1.f);
  EXPECT_EQ(e.beta, INFINITY);
}

TEST(OpAttrs, BadValuesNameTheOpAndTheAttribute) {
  Attrs conv = to_attrs(Conv2dAttrs{});
  conv.set("strides", std::vector<int64_t>{0, 1});
  expect_invalid([&] { ops::parse_attrs<Conv2dAttrs>(conv); }, {"conv2d", "'strides'", "0"});
  conv = to_attrs(Conv2dAttrs{});
  conv.set("strides", std::vector<int64_t>{std::numeric_limits<int64_t>::max(), 1});
  expect_invalid([&] { ops::parse_attrs<Conv2dAttrs>(conv); }, {"conv2d", "'strides'"});
  conv = to_attrs(Conv2dAttrs{});
  conv.set("groups", "two");
  expect_invalid([&] { ops::parse_attrs<Conv2dAttrs>(conv); }, {"conv2d", "'groups'"});
  conv = to_attrs(Conv2dAttrs{});
  conv.set("padding", "full");
  expect_invalid([&] { ops::parse_attrs<Conv2dAttrs>(conv); }, {"conv2d", "'padding'", "full"});

  Attrs quantize = Attrs(OpKind::quantize_linear).set("scale", INFINITY).set("zero_point", 0).set("dtype", "u8");
  expect_invalid([&] { ops::parse_attrs_of<OpKind::quantize_linear>(quantize); }, {"quantize_linear", "'scale'"});
  quantize.set("scale", -1.f);
  expect_invalid([&] { ops::parse_attrs_of<OpKind::quantize_linear>(quantize); }, {"quantize_linear", "'scale'"});
  quantize.set("scale", 0.5f).set("zero_point", 300);
  expect_invalid([&] { ops::parse_attrs_of<OpKind::quantize_linear>(quantize); }, {"quantize_linear", "'zero_point'", "300"});
  quantize.set("zero_point", 0).set("dtype", "f32");
  expect_invalid([&] { ops::parse_attrs_of<OpKind::quantize_linear>(quantize); }, {"quantize_linear", "'dtype'"});

  Attrs qlinear = qlinear_attrs({.x_scale = 1.f, .w_scales = {1.f, INFINITY}});
  expect_invalid([&] { ops::parse_attrs_of<OpKind::qlinear>(qlinear); }, {"qlinear", "'w_scales'"});
  Attrs bn = Attrs(OpKind::batch_norm_inference).set("epsilon", NAN).set("relu", 0);
  expect_invalid([&] { ops::parse_attrs_of<OpKind::batch_norm_inference>(bn); }, {"batch_norm_inference", "'epsilon'"});
  Attrs reshape = Attrs(OpKind::reshape).set("shape", std::vector<int64_t>{-2, 4});
  expect_invalid([&] { ops::parse_attrs_of<OpKind::reshape>(reshape); }, {"reshape", "'shape'", "-2"});
  Attrs softmax = Attrs(OpKind::softmax).set("axis", ops::AttrValue(int64_t{1} << 40));
  expect_invalid([&] { ops::parse_attrs_of<OpKind::softmax>(softmax); }, {"softmax", "'axis'"});
  expect_invalid([&] { ops::parse_attrs_of<OpKind::softmax>(reshape); }, {"softmax", "reshape"});
}

TEST(OpAttrs, GraphValidateChecksEveryNodesAttributes) {
  graph::Graph g;
  g.values = {{"x", {graph::kBatch, 4}, DType::f32}, {"y", {graph::kBatch, 4}, DType::u8}};
  g.inputs = {0};
  g.outputs = {1};
  g.nodes.push_back({Attrs(OpKind::quantize_linear).set("scale", 0.f).set("zero_point", 0).set("dtype", "u8"), {0}, {1}});
  expect_invalid([&] { g.validate(); }, {"node 0", "quantize_linear", "'scale'"});
  g.nodes[0].call.set("scale", 0.5f);
  g.validate();
  EXPECT_EQ(g.run(Tensor::ones({2, 4})).dtype(), DType::u8);
}

}  // namespace
}  // namespace kiln
