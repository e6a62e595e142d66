// pad: the op against a plain loop written from numpy.pad and against numbers numpy printed,
// f32 and bf16, gradients by finite differences (constant, reflect, edge, cropping), int8
// data, errors naming shapes and pads; ZeroPadding1D/2D through config, trace (the batch stays
// free), InferenceModel (a zero pad folds into the conv it feeds) and int8; ONNX export checked
// in ONNX Runtime, and ONNX Pad import in each of its forms.
#include <gtest/gtest.h>
#include "runtime_export/onnx/onnx_tensor.h"  // the onnx protos

#include <cmath>
#include <fstream>

#include "data/dataset.h"
#include "graph/trace.h"
#include "kiln.h"
#include "nn/layer_registry.h"
#include "quant/quantize.h"
#include "tensor/ops/registry.h"
#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tests/gradcheck.h"
#include "tests/onnx_round_trip.h"
#include "tests/pad_reference.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using ref::RefTensor;
using testing::max_abs_diff;
using testing::rand_tensor;

struct Case {
  Shape x;
  std::vector<int64_t> before, after;
};
// Every rank from 1 to 5, pads on one side, both, none, longer than the axis (reflect folds
// again), and negative pads (cropping).
const std::vector<Case> kCases = {{{5}, {2}, {3}},
                                  {{3, 4}, {1, 0}, {2, 3}},
                                  {{2, 3, 4, 3}, {0, 1, 2, 0}, {0, 2, 1, 0}},
                                  {{1, 3, 2, 2}, {0, 5, 4, 0}, {0, 4, 3, 0}},
                                  {{2, 6, 5}, {0, -2, 1}, {0, 3, -1}},
                                  {{1, 2, 2, 3, 2}, {1, 0, 1, 0, 1}, {0, 1, 0, 2, 0}},
                                  {{3, 1, 4}, {1, 2, 0}, {0, 2, 1}}};

TEST(Pad, MatchesNumpyLoopF32Bf16AndGradients) {
  uint64_t seed = 1;
  for (PadMode mode : {PadMode::constant, PadMode::reflect, PadMode::edge}) {
    for (const Case& c : kCases) {
      PadAttrs a{c.before, c.after, mode, mode == PadMode::constant ? 0.75 : 0.0};
      SCOPED_TRACE(std::string(pad_mode_name(mode)) + " " + shape_str(c.x) + " before " + shape_str(c.before) +
                   " after " + shape_str(c.after));
      std::vector<Tensor> in{rand_tensor(c.x, seed++)};
      auto f = [&](const std::vector<Tensor>& t) { return pad(t[0], a); };
      auto r = [&](const std::vector<RefTensor>& t) { return ref::pad(t[0], a); };
      testing::expect_forward_matches(f, r, in, testing::kF32, DType::f32);
      testing::expect_forward_matches(f, r, in, testing::kBf16, DType::bf16);
      testing::expect_gradients_match(f, r, in);
    }
  }
}

TEST(Pad, AgreesWithNumbersNumpyPrinted) {
  auto values = [](const Tensor& t) {
    std::vector<float> v = t.to_vector();
    return std::vector<int>(v.begin(), v.end());
  };
  Tensor row = Tensor::from_vector({1, 2, 3}, {3});
  // np.pad([1, 2, 3], (5, 4), mode)
  EXPECT_EQ(values(pad(row, {{5}, {4}, PadMode::reflect})), (std::vector<int>{2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3}));
  EXPECT_EQ(values(pad(row, {{5}, {4}, PadMode::edge})), (std::vector<int>{1, 1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3}));
  // np.pad([1], (2, 2), 'reflect')
  EXPECT_EQ(values(pad(Tensor::from_vector({1}, {1}), {{2}, {2}, PadMode::reflect})), (std::vector<int>(5, 1)));
  // np.pad([[1, 2, 3], [4, 5, 6]], ((1, 2), (2, 1)), mode[, constant_values=7])
  Tensor m = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(values(pad(m, {{1, 2}, {2, 1}, PadMode::reflect})),
            (std::vector<int>{6, 5, 4, 5, 6, 5, 3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5, 3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5}));
  EXPECT_EQ(values(pad(m, {{1, 2}, {2, 1}, PadMode::edge})),
            (std::vector<int>{1, 1, 1, 2, 3, 3, 1, 1, 1, 2, 3, 3, 4, 4, 4, 5, 6, 6, 4, 4, 4, 5, 6, 6, 4, 4, 4, 5, 6, 6}));
  EXPECT_EQ(values(pad(m, {{1, 2}, {2, 1}, PadMode::constant, 7})),
            (std::vector<int>{7, 7, 7, 7, 7, 7, 7, 7, 1, 2, 3, 7, 7, 7, 4, 5, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}));
  // A big enough pad runs the parallel path: the same as the loop.
  Tensor big = rand_tensor({2, 40, 40, 16}, 3);
  PadAttrs wide{{0, 3, 2, 0}, {0, 1, 4, 0}, PadMode::reflect};
  EXPECT_EQ(max_abs_diff(pad(big, wide), ref::to_tensor(ref::pad(ref::from(big), wide))), 0.f);
}

TEST(Pad, Int8DataAndStridedInput) {
  Tensor x = cast(rand_tensor({1, 3, 3, 2}, 4, 0.f, 200.f), DType::u8);
  Tensor y = pad(x, {{0, 1, 1, 0}, {0, 1, 0, 0}, PadMode::constant, 17});
  ASSERT_EQ(y.dtype(), DType::u8);
  EXPECT_EQ(max_abs_diff(cast(y, DType::f32), ref::to_tensor(ref::pad(ref::from(cast(x, DType::f32)),
                                                                    {{0, 1, 1, 0}, {0, 1, 0, 0}, PadMode::constant, 17}))),
            0.f);
  Tensor t = transpose(rand_tensor({3, 4}, 5));  // a strided view
  PadAttrs a{{1, 2}, {2, 1}, PadMode::edge};
  EXPECT_EQ(max_abs_diff(pad(t, a), ref::to_tensor(ref::pad(ref::from(contiguous(t)), a))), 0.f);
}

void expect_error(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

TEST(Pad, ErrorsNameShapesAndPads) {
  Tensor x = Tensor::zeros({2, 3});
  expect_error([&] { pad(x, {{1}, {1}}); }, {"pad", "f32[2, 3]", "rank 2"});
  expect_error([&] { pad(x, {{0, -2}, {0, -2}}); }, {"f32[2, 3]", "(0, 0), (-2, -2)", "-1 elements"});
  expect_error([&] { pad(Tensor::zeros({2, 0}), {{0, 1}, {0, 0}, PadMode::reflect}); }, {"reflect", "empty axis 1"});
  expect_error([&] { pad(Tensor::zeros({2, 0}), {{0, 1}, {0, 0}, PadMode::edge}); }, {"edge", "empty axis 1"});
  expect_error([&] { pad(cast(x, DType::u8), {{0, 1}, {0, 0}, PadMode::constant, 0.5}); }, {"0.5", "u8"});
  expect_error([&] { pad(cast(x, DType::s8), {{0, 1}, {0, 0}, PadMode::constant, 200}); }, {"200", "s8"});
  expect_error([&] { pad_mode_from_name("wrap"); }, {"wrap", "reflect"});
  // Cropping a whole axis away is allowed; an empty input pads with the value.
  EXPECT_EQ(pad(x, {{0, -1}, {0, -2}}).shape(), (Shape{2, 0}));
  EXPECT_EQ(pad(Tensor::zeros({0, 2}), {{1, 0}, {0, 1}}).to_vector(), std::vector<float>(3, 0.f));
  // The batch may be padded eagerly. Symbolically it is refused, naming the pad, so trace
  // keeps the sample's batch size for such a function (graph/trace.h).
  EXPECT_EQ(pad(x, {{1, 0}, {0, 0}}).shape(), (Shape{3, 3}));
  PadAttrs batch{{1, 0}, {0, 0}};
  expect_error([&] { ops::infer_op(to_attrs(batch), {{DType::f32, {ops::kSymbolicBatch, 3}}}); },
               {"pad", "batch dimension N", "(1, 0)"});
  graph::Graph g = graph::trace([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{pad(in[0], batch)}; }, {x});
  EXPECT_EQ(g.values[g.inputs[0]].shape, (Shape{2, 3}));
  EXPECT_EQ(g.run(x).shape(), (Shape{3, 3}));
}

// The gradient of the gradient: constant pad's backward is a pad, reflect's adjoint records
// the pad as its own backward.
TEST(Pad, SecondOrderGradients) {
  for (PadMode mode : {PadMode::constant, PadMode::reflect, PadMode::edge}) {
    PadAttrs a{{1, 2}, {2, 0}, mode};
    Variable v(rand_tensor({3, 3}, 7), "v");
    Tensor r = rand_tensor({6, 5}, 8);
    GradientTape outer;
    Tensor g;
    {
      GradientTape inner;
      Tensor y = pad(v.value(), a);
      g = inner.gradient(reduce_sum(y * y * r), std::vector<Variable>{v})[0];
    }
    // d/dv sum(g) where g = pad_adjoint(2 * pad(v) * r): pad_adjoint(2 * r * pad(1)).
    Tensor gg = outer.gradient(reduce_sum(g), std::vector<Variable>{v})[0];
    ASSERT_TRUE(gg.defined()) << pad_mode_name(mode);
    EXPECT_EQ(gg.shape(), (Shape{3, 3}));
  }
}

std::shared_ptr<Sequential> padded_model() {
  set_global_seed(3);
  auto model = std::make_shared<Sequential>(std::vector<Layer>{
      Conv2D(4, 3, "relu", {.padding = "same"}), ZeroPadding2D({{{1, 2}, {0, 1}}}, "pad_uneven"),
      Conv2D(3, 3, "", {.strides = {2, 2}}), ZeroPadding2D(1, "pad_pool"), MaxPooling2D({3, 3}, {1, 1}, "valid")});
  model->build({6, 7, 3});
  return model;
}

TEST(ZeroPadding, TracedAtOneBatchRunsAtAnother) {
  auto model = padded_model();
  graph::Graph g = graph::trace(*model, rand_tensor({2, 6, 7, 3}, 11));
  int pads = 0, concats = 0;
  for (const auto& n : g.nodes) {
    pads += n.call.op() == "pad";
    concats += n.call.op() == "concat";
  }
  EXPECT_EQ(pads, 2);
  EXPECT_EQ(concats, 0);
  Tensor x = rand_tensor({5, 6, 7, 3}, 12);
  Tensor want = model->predict(x);
  EXPECT_EQ(max_abs_diff(g.run(x), want), 0.f);
  runtime_export::InferenceModel fast(g);
  EXPECT_LE(max_abs_diff(fast.run(x), want), 1e-5f);
  // The first pad folds into the conv it feeds; the second feeds a max pool of values that
  // may be negative (no ReLU), so it stays, as a step of its own.
  int left = 0;
  for (const auto& n : fast.inference_graph().nodes) left += n.call.op() == "pad";
  EXPECT_EQ(left, 1) << fast.inference_graph().to_string();
  EXPECT_EQ(fast.fallback_steps({x.shape()}), 1) << fast.describe_plan({x.shape()});
  runtime_export::InferenceModel fast_bf16(g, {.dtype = DType::bf16});
  EXPECT_LE(max_abs_diff(fast_bf16.run(x), want), 0.1f);
  // No ONNX Runtime check here: its PadFusion folds a zero Pad into the MaxPool after it, whose
  // padding is -inf (ONNX Runtime 1.31, checked 2026-12-05: Pad 0 + MaxPool 3x3 of all -1 gives
  // -1 optimized, 0 with ORT_DISABLE_ALL). The export itself is checked in
  // EveryModeExportsToOnnxRuntimeAndImportsBack; here, the import gives the same graph back.
  std::string path = testing::temp_path("zero_padding.onnx");
  runtime_export::export_onnx(g, path);
  EXPECT_LE(max_abs_diff(runtime_export::import_onnx(path).run(x), want), 1e-5f);
}

TEST(ZeroPadding, MobileNetV3StemPadsFoldIntoConvs) {
  // The MobileNetV3 example's model: ZeroPadding2D(2) to 32x32, then Keras's correct_pad
  // ZeroPadding2D before every strided depthwise conv.
  set_global_seed(5);
  SymbolicTensor images = Input({28, 28, 1});
  SymbolicTensor padded = ZeroPadding2D(2, "pad_to_32")(Rescaling(1.f / 127.5f, -1.f)(images));
  auto model = applications::mobilenet_v3_small(
      {.minimalistic = true, .input_tensor = padded, .classes = 10, .classifier_activation = "", .include_preprocessing = false});
  graph::Graph g = graph::trace(*model, rand_tensor({2, 28, 28, 1}, 6, 0.f, 255.f));
  int pads = 0;
  for (const auto& n : g.nodes) pads += n.call.op() == "pad";
  EXPECT_GE(pads, 2);
  runtime_export::InferenceModel fast(g);
  for (const auto& n : fast.inference_graph().nodes) EXPECT_NE(n.call.op(), "pad") << fast.inference_graph().to_string();
  Tensor x = rand_tensor({5, 28, 28, 1}, 7, 0.f, 255.f);
  EXPECT_EQ(fast.describe_plan({x.shape()}).find("pad"), std::string::npos) << fast.describe_plan({x.shape()});
  EXPECT_LE(max_abs_diff(fast.run(x), model->predict(x)), 1e-4f);
}

TEST(ZeroPadding, Keras1DAnd2DConfigsAndErrors) {
  Layer one = ZeroPadding1D({1, 3}, "zp1");
  Tensor x = rand_tensor({2, 4, 3}, 13);
  Tensor y = one(x);
  ASSERT_EQ(y.shape(), (Shape{2, 8, 3}));
  EXPECT_EQ(max_abs_diff(y, pad(x, {{0, 1, 0}, {0, 3, 0}})), 0.f);
  Config c = one->config();
  EXPECT_EQ(c.at("padding")[0].as_int(), 1);
  EXPECT_EQ(c.at("padding")[1].as_int(), 3);
  Layer back = deserialize_layer(serialize_layer(one));
  EXPECT_EQ(back->class_name(), "ZeroPadding1D");
  EXPECT_EQ(back(x).to_vector(), y.to_vector());
  // Keras's int form.
  Config symmetric = c;
  symmetric.set("padding", 2);
  EXPECT_EQ(layer_from_config("ZeroPadding1D", symmetric)(x).shape(), (Shape{2, 8, 3}));
  expect_error([] { ZeroPadding1D({-1, 0}); }, {"ZeroPadding1D", "negative"});
  expect_error([&] { one(rand_tensor({2, 4, 3, 1}, 1)); }, {"zp1"});
  expect_error([] { ZeroPadding2D({{{0, -2}, {0, 0}}}); }, {"ZeroPadding2D", "negative"});
}

// int8: a reflect pad and a constant pad of 0.5 between int8 convolutions run on the int8
// data (the constant quantized with the data's scale).
TEST(Pad, Int8PassesThroughBetweenQuantizedConvs) {
  Tensor w1 = rand_tensor({3, 3, 3, 8}, 21, -0.5f, 0.5f), w2 = rand_tensor({3, 3, 8, 4}, 22, -0.5f, 0.5f);
  Tensor b1 = rand_tensor({8}, 23, 0.f, 0.1f), b2 = rand_tensor({4}, 24);
  for (PadMode mode : {PadMode::reflect, PadMode::constant}) {
    auto fn = [&](const std::vector<Tensor>& in) {
      Conv2dAttrs relu;
      relu.activation = FusedActivation::relu;
      Tensor h = pad(conv2d(in[0], w1, b1, relu), {{0, 1, 2, 0}, {0, 2, 1, 0}, mode, 0.5});
      return std::vector<Tensor>{conv2d(h, w2, b2)};
    };
    Tensor x = rand_tensor({4, 8, 8, 3}, 25);
    graph::Graph g = graph::trace(fn, {x});
    auto q = quant::quantize(g, data::Dataset::from_tensor_slices(x).batch(4), {.verbose = false});
    bool int8_pad = false;
    for (const auto& n : q->inference_graph().nodes) {
      if (n.call.op() == "pad") int8_pad = q->inference_graph().values[n.inputs[0]].dtype != DType::f32;
    }
    EXPECT_TRUE(int8_pad) << q->inference_graph().to_string();
    Tensor want = g.run(x);
    float scale = 0;
    for (float v : want.to_vector()) scale = std::max(scale, std::fabs(v));
    EXPECT_LE(max_abs_diff(q->run(x), want), 0.05f * scale) << pad_mode_name(mode);
  }
}

TEST(Pad, EveryModeExportsToOnnxRuntimeAndImportsBack) {
  auto fn = [](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{pad(in[0], {{0, 2, 1, 0}, {0, 1, 3, 0}, PadMode::constant, -1.5}),
                               pad(in[0], {{0, 2, 1, 0}, {0, 1, 2, 0}, PadMode::reflect}),
                               pad(in[0], {{0, 3, 0, 1}, {0, 0, 2, 2}, PadMode::edge}),
                               pad(in[1], {{0, 1, -1}, {0, -2, 2}, PadMode::constant, 2}),
                               pad(in[1], {{0, 2, 1}, {0, 1, 0}, PadMode::reflect})};
  };
  std::vector<Tensor> xs{rand_tensor({2, 4, 5, 3}, 31), rand_tensor({2, 6, 4}, 32)};
  graph::Graph g = graph::trace(fn, xs);
  graph::Graph back = testing::expect_onnx_round_trip(g, {rand_tensor({3, 4, 5, 3}, 33), rand_tensor({3, 6, 4}, 34)}, "pad_modes");
  int pads = 0;
  for (const auto& n : back.nodes) pads += n.call.op() == "pad";
  EXPECT_EQ(pads, 5);
}

// A one-node ONNX Pad on an NCHW input: the opset 11+ form (inputs `pads`, optional
// `constant_value` and `axes`), or the attribute form when `attribute_form`.
std::string pad_model(const std::string& name, const std::string& mode, const std::vector<int64_t>& pads,
                      const std::vector<int64_t>& axes, float value, bool attribute_form = false,
                      std::vector<int64_t> in_shape = {1, 2, 3, 4}) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("pad");
  auto value_info = [](onnx::ValueInfoProto* v, const std::string& n, const std::vector<int64_t>& shape) {
    v->set_name(n);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] < 0) {
        t->mutable_shape()->add_dim()->set_dim_param("batch");
      } else {
        t->mutable_shape()->add_dim()->set_dim_value(shape[i]);
      }
    }
  };
  value_info(g->add_input(), "x", in_shape);
  auto* out = g->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  auto* n = g->add_node();
  n->set_op_type("Pad");
  n->set_name("the_pad");
  n->add_input("x");
  n->add_output("y");
  auto* md = n->add_attribute();
  md->set_name("mode");
  md->set_type(onnx::AttributeProto::STRING);
  md->set_s(mode);
  if (attribute_form) {
    auto* p = n->add_attribute();
    p->set_name("pads");
    p->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : pads) p->add_ints(v);
    auto* v = n->add_attribute();
    v->set_name("value");
    v->set_type(onnx::AttributeProto::FLOAT);
    v->set_f(value);
  } else {
    *g->add_initializer() = runtime_export::onnx_io::int64_tensor_proto(pads, "pads", false);
    n->add_input("pads");
    runtime_export::onnx_io::to_tensor_proto(Tensor::scalar(value), "value", g->add_initializer());
    n->add_input(mode == "constant" ? "value" : "");
    if (!axes.empty()) {
      *g->add_initializer() = runtime_export::onnx_io::int64_tensor_proto(axes, "axes", false);
      n->add_input("axes");
    }
  }
  std::string path = testing::temp_path("pad_" + name + ".onnx");
  std::ofstream(path, std::ios::binary) << m.SerializeAsString();
  return path;
}

TEST(Pad, OnnxImportTakesEachFormOnNchwAndNamesWhatItRefuses) {
  Tensor x = rand_tensor({1, 2, 3, 4}, 41);  // NCHW, as the ONNX model sees it
  // The same padding (H by (1, 2), W by (0, -1): a crop) in each form.
  PadAttrs want_nchw{{0, 0, 1, 0}, {0, 0, 2, -1}, PadMode::constant, 0.25};
  Tensor want = pad(x, want_nchw);
  for (const auto& [name, path] : std::vector<std::pair<std::string, std::string>>{
           {"inputs", pad_model("inputs", "constant", {0, 0, 1, 0, 0, 0, 2, -1}, {}, 0.25f)},
           {"axes", pad_model("axes", "constant", {1, 0, 2, -1}, {2, -1}, 0.25f)},
           {"attributes", pad_model("attributes", "constant", {0, 0, 1, 0, 0, 0, 2, -1}, {}, 0.25f, true)}}) {
    SCOPED_TRACE(name);
    graph::Graph g = runtime_export::import_onnx(path);
    EXPECT_EQ(max_abs_diff(g.run(x), want), 0.f);
    int permutes = 0;
    for (const auto& n : g.nodes) permutes += n.call.op() == "permute";
    EXPECT_LE(permutes, 2) << g.to_string();  // into NHWC and back, no more
  }
  for (const char* mode : {"reflect", "edge"}) {
    std::string path = pad_model(mode, mode, {0, 1, 2, 1, 0, 0, 1, 2}, {}, 0.f);
    Tensor y = runtime_export::import_onnx(path).run(x);
    EXPECT_EQ(max_abs_diff(y, pad(x, {{0, 1, 2, 1}, {0, 0, 1, 2}, pad_mode_from_name(mode)})), 0.f) << mode;
    auto ort = testing::run_onnx_runtime(path, {x});
    ASSERT_TRUE(ort.has_value());
    EXPECT_LE(max_abs_diff((*ort)[0], y), 0.f) << mode;
  }
  auto ort = testing::run_onnx_runtime(pad_model("inputs_ort", "constant", {0, 0, 1, 0, 0, 0, 2, -1}, {}, 0.25f), {x});
  ASSERT_TRUE(ort.has_value());
  EXPECT_EQ(max_abs_diff((*ort)[0], want), 0.f);

  auto expect_refused = [](const std::string& path, const std::vector<std::string>& needles) {
    try {
      runtime_export::import_onnx(path);
      ADD_FAILURE() << "imported " << path;
    } catch (const std::invalid_argument& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("the_pad"), std::string::npos) << what;
      for (const auto& n : needles) EXPECT_NE(what.find(n), std::string::npos) << what;
    }
  };
  expect_refused(pad_model("wrap", "wrap", {0, 0, 1, 0, 0, 0, 1, 0}, {}, 0.f), {"wrap"});
  expect_refused(pad_model("short", "constant", {0, 1, 0, 1}, {}, 0.f), {"pads [0, 1, 0, 1]", "rank 4"});
  expect_refused(pad_model("repeat", "constant", {1, 1, 0, 0}, {2, -2}, 0.f), {"repeat"});
  expect_refused(pad_model("crop", "constant", {0, 0, -4, 0, 0, 0, 0, 0}, {}, 0.f), {"-1 elements"});
  expect_refused(pad_model("batch", "constant", {1, 0, 0, 0, 0, 0, 0, 0}, {}, 0.f, false, {-1, 2, 3, 4}),
                 {"batch dimension"});
}

}  // namespace
}  // namespace kiln
