// resize2d, UpSampling2D and Resizing: the op against a plain loop written from
// jax.image.resize (what Keras's resize calls, antialias=False) and against numbers Keras
// computed (testdata/upsampling), which also checks that oneDNN's resampling uses the same
// coordinates; f32 and bf16, gradients by finite differences, errors; the layers through
// config, save/load, trace, Graph::run, InferenceModel and ONNX (ONNX Runtime and import),
// and the ONNX Resize modes the importer takes or refuses.
#include <gtest/gtest.h>
#include "runtime_export/onnx/onnx_tensor.h"  // the onnx protos

#include <cmath>
#include <fstream>

#include "graph/trace.h"
#include "kiln.h"
#include "nn/layer_registry.h"
#include "tensor/ops/op_attrs.h"
#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tests/gradcheck.h"
#include "tests/onnx_round_trip.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"
#include "tests/tensor_compare.h"
#include "tests/upsampling_reference.h"

namespace kiln {
namespace {

using namespace kiln::nn;
using testing::rand_tensor;

using kiln::testing::max_abs_diff;

struct Case {
  Shape x;
  std::array<int64_t, 2> size;
};
// Up, down, mixed, odd ratios, identity and 1-pixel edges.
const std::vector<Case> kCases = {{{2, 3, 4, 3}, {6, 8}}, {{1, 3, 4, 2}, {7, 5}}, {{1, 7, 9, 2}, {3, 4}},
                                  {{1, 5, 5, 1}, {2, 9}}, {{1, 4, 4, 3}, {4, 4}}, {{1, 1, 3, 2}, {4, 1}},
                                  {{2, 6, 4, 2}, {4, 6}}, {{1, 2, 2, 5}, {5, 7}}};

TEST(Resize, MatchesJaxReferenceF32AndBf16) {
  uint64_t seed = 1;
  for (bool nearest : {false, true}) {
    for (const Case& c : kCases) {
      SCOPED_TRACE(std::string(nearest ? "nearest " : "bilinear ") + shape_str(c.x) + " -> " + shape_str({c.size[0], c.size[1]}));
      Resize2dAttrs a{c.size, nearest ? Interpolation::nearest : Interpolation::bilinear};
      std::vector<Tensor> in{rand_tensor(c.x, seed++)};
      auto f = [&](const std::vector<Tensor>& t) { return resize2d(t[0], a); };
      auto r = [&](const std::vector<ref::RefTensor>& t) { return ref::resize2d(t[0], c.size[0], c.size[1], nearest); };
      testing::expect_forward_matches(f, r, in, testing::kF32, DType::f32);
      testing::expect_forward_matches(f, r, in, testing::kBf16, DType::bf16);
      testing::expect_gradients_match(f, r, in);
    }
  }
}

TEST(Resize, UpsampleRepeatsPixelsForNearest) {
  Tensor x = rand_tensor({2, 3, 4, 3}, 9);
  Tensor y = upsample2d(x, {2, 3}, Interpolation::nearest);
  ASSERT_EQ(y.shape(), (Shape{2, 6, 12, 3}));
  std::vector<float> xv = x.to_vector(), yv = y.to_vector();
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t i = 0; i < 6; ++i)
      for (int64_t j = 0; j < 12; ++j)
        for (int64_t c = 0; c < 3; ++c) {
          EXPECT_EQ(yv[((n * 6 + i) * 12 + j) * 3 + c], xv[((n * 3 + i / 2) * 4 + j / 3) * 3 + c]);
        }
}

TEST(Resize, BadInputNamesTheProblem) {
  auto expect_error = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error, expected one naming '" << needle << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  Tensor x = Tensor::zeros({1, 3, 4, 2});
  expect_error([&] { resize2d(Tensor::zeros({3, 4, 2}), {}); }, "rank 4");
  expect_error([&] { resize2d(cast(x, DType::s32), {}); }, "resize2d");
  expect_error([&] { resize2d(x, {{0, 3}}); }, "must be positive");
  expect_error([&] { resize2d(Tensor::zeros({1, 0, 4, 2}), {{2, 2}}); }, "empty image");
  expect_error([&] { upsample2d(x, {0, 2}, Interpolation::nearest); }, "factors");
  expect_error([&] { interpolation_from_name("bicubic"); }, "bicubic");
  expect_error([&] { UpSampling2D({2, 2}, "lanczos3"); }, "lanczos3");
  expect_error([&] { Resizing(4, 4, {.crop_to_aspect_ratio = true}); }, "crop_to_aspect_ratio");
  expect_error([&] { Resizing(4, 4, {.antialias = true}); }, "antialias");
  EXPECT_EQ(resize2d(Tensor::zeros({0, 3, 4, 2}), {{5, 6}}).shape(), (Shape{0, 5, 6, 2}));
}

TEST(ResizingLayers, MatchKerasOutputs) {
  std::map<std::string, ref::KerasCase> expected;
  for (const auto& c : ref::read_keras_reference("tests/testdata/upsampling/keras_reference.txt")) expected[c.name] = c;
  Tensor x = Tensor::from_vector(ref::keras_reference_x(24), {1, 3, 4, 2});
  std::vector<std::pair<std::string, Layer>> layers = {
      {"rs_bilinear_up", Resizing(7, 5)},
      {"rs_bilinear_down", Resizing(2, 3)},
      {"rs_nearest_up", Resizing(6, 8, {.interpolation = "nearest"})},
      {"rs_nearest_down", Resizing(2, 3, {.interpolation = "nearest"})},
      {"rs_nearest_odd", Resizing(5, 7, {.interpolation = "nearest"})},
      {"rs_bilinear_mixed", Resizing(2, 9)},
      {"up_nearest_23", UpSampling2D({2, 3})},
      {"up_bilinear_23", UpSampling2D({2, 3}, "bilinear")},
      {"up_bilinear_22", UpSampling2D({2, 2}, "bilinear")},
  };
  for (auto& [name, layer] : layers) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(expected.count(name));
    const ref::KerasCase& want = expected[name];
    Tensor y = layer(x);
    ASSERT_EQ(y.shape(), want.shape);
    std::vector<float> got = y.to_vector();
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want.values[i]));
    EXPECT_LE(worst, 1e-5);
    EXPECT_EQ(layer->compute_output_shape({x.shape()}), std::optional<Shape>(want.shape));
    EXPECT_TRUE(layer->variables().empty());  // Keras: no parameters
  }
}

std::shared_ptr<Sequential> small_model() {
  set_global_seed(3);
  auto model = std::make_shared<Sequential>(std::vector<Layer>{
      UpSampling2D({2, 2}, "nearest", "up_nearest"), Conv2D(4, 3, "relu", {.padding = "same"}),
      UpSampling2D({3, 2}, "bilinear", "up_bilinear"), Resizing(7, 10, {}, "resize_bilinear"),
      Resizing(5, 3, {.interpolation = "nearest"}, "resize_nearest")});
  model->build({4, 5, 3});
  return model;
}

TEST(ResizingLayers, ConfigSaveLoadTraceAndInference) {
  auto model = small_model();
  Tensor x = rand_tensor({3, 4, 5, 3}, 11);
  Tensor y = model->predict(x);
  ASSERT_EQ(y.shape(), (Shape{3, 5, 3, 4}));
  for (const Layer& l : model->layers()) {
    EXPECT_EQ(layer_from_config(l->class_name(), l->config())->config(), l->config()) << l->class_name();
  }
  Config up = model->layers()[0]->config();
  EXPECT_EQ(up.at("interpolation").as_string(), "nearest");
  EXPECT_EQ(up.at("size")[0].as_int(), 2);
  Config rs = model->layers()[3]->config();
  EXPECT_EQ(rs.at("height").as_int(), 7);
  EXPECT_EQ(rs.at("interpolation").as_string(), "bilinear");
  EXPECT_FALSE(rs.at("crop_to_aspect_ratio").as_bool());
  std::string path = testing::temp_path("resize_model.kiln");
  save_model(*model, path);
  auto loaded = load_model(path);
  EXPECT_EQ(loaded->config(), model->config());
  EXPECT_EQ(loaded->predict(x).to_vector(), y.to_vector());
  graph::Graph g = graph::trace(*model, rand_tensor({2, 4, 5, 3}, 12));
  EXPECT_EQ(g.run(x).to_vector(), y.to_vector());
  runtime_export::InferenceModel fast(g);
  EXPECT_LE(max_abs_diff(fast.run(x), y), 1e-5f);
  // Every resize runs as a oneDNN resampling in the plan, not as an eager op.
  std::string steps = fast.describe_plan({x.shape()});
  EXPECT_NE(steps.find("resize2d: 4"), std::string::npos) << steps;
  EXPECT_EQ(steps.find("eager"), std::string::npos) << steps;
  runtime_export::InferenceModel fast_bf16(g, {.dtype = DType::bf16});
  EXPECT_LE(max_abs_diff(fast_bf16.run(x), y), 0.1f);
}

TEST(ResizingLayers, OnnxRuntimeAndImportRoundTrip) {
  auto model = small_model();
  graph::Graph g = graph::trace(*model, rand_tensor({2, 4, 5, 3}, 21));
  Tensor x = rand_tensor({3, 4, 5, 3}, 22);
  graph::Graph back = testing::expect_onnx_round_trip(g, {x}, "resize");
  int resizes = 0;
  for (const auto& n : back.nodes) resizes += n.call.op() == "resize2d";
  EXPECT_EQ(resizes, 4);
}

// Every op case exports to a Resize that ONNX Runtime agrees with, and imports back (one
// model holding every case, so ONNX Runtime starts once).
TEST(Resize, EveryCaseExportsAndImports) {
  std::vector<Resize2dAttrs> attrs;
  std::vector<Tensor> xs;
  uint64_t seed = 40;
  for (bool nearest : {false, true}) {
    for (const Case& c : kCases) {
      attrs.push_back({c.size, nearest ? Interpolation::nearest : Interpolation::bilinear});
      Shape x = c.x;
      x[0] = 2;  // one batch size for every input of the model
      xs.push_back(rand_tensor(x, seed++));
    }
  }
  auto fn = [&](const std::vector<Tensor>& in) {
    std::vector<Tensor> out;
    for (size_t i = 0; i < in.size(); ++i) out.push_back(resize2d(in[i], attrs[i]));
    return out;
  };
  graph::Graph g = graph::trace(fn, xs);
  std::string path = testing::temp_path("resize_cases.onnx");
  runtime_export::export_onnx(g, path);
  auto ort = testing::run_onnx_runtime(path, xs);
  ASSERT_TRUE(ort.has_value());
  std::vector<Tensor> want = g.run(xs), back = runtime_export::import_onnx(path).run(xs);
  ASSERT_EQ(ort->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(std::string(interpolation_name(attrs[i].interpolation)) + " " + xs[i].describe() + " -> " +
                 shape_str({attrs[i].size[0], attrs[i].size[1]}));
    EXPECT_LE(max_abs_diff((*ort)[i], want[i]), 1e-4f);
    EXPECT_EQ(max_abs_diff(back[i], want[i]), 0.f);
  }
}

// A one-node ONNX Resize with the given attributes (sizes as an input).
std::string resize_model(const std::string& mode, const std::string& ctm, const std::string& nearest_mode,
                         const std::vector<int64_t>& sizes) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("resize");
  auto value = [](onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& shape) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : shape) t->mutable_shape()->add_dim()->set_dim_value(d);
  };
  value(g->add_input(), "x", {1, 2, 3, 4});
  value(g->add_output(), "y", sizes);
  *g->add_initializer() = runtime_export::onnx_io::int64_tensor_proto(sizes, "sizes", false);
  auto* n = g->add_node();
  n->set_op_type("Resize");
  n->set_name("the_resize");
  for (const char* s : {"x", "", "", "sizes"}) n->add_input(s);
  n->add_output("y");
  auto attr = [&](const std::string& k, const std::string& v) {
    auto* a = n->add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  };
  attr("mode", mode);
  attr("coordinate_transformation_mode", ctm);
  attr("nearest_mode", nearest_mode);
  std::string path = testing::temp_path("resize_" + mode + "_" + ctm + "_" + nearest_mode + ".onnx");
  std::ofstream(path, std::ios::binary) << m.SerializeAsString();
  return path;
}

TEST(Resize, OnnxImportTakesMatchingModesAndNamesTheOthers) {
  // The imported graph keeps ONNX's NCHW input and output.
  Tensor x = rand_tensor({1, 3, 4, 2}, 5);
  auto nchw = [](const Tensor& t) { return contiguous(permute(t, {0, 3, 1, 2})); };
  // PyTorch's nearest upsample (asymmetric, floor) at an integer factor is the same resize.
  std::string torch_style = resize_model("nearest", "asymmetric", "floor", {1, 2, 6, 8});
  Tensor y = runtime_export::import_onnx(torch_style).run(nchw(x));
  EXPECT_EQ(max_abs_diff(y, nchw(upsample2d(x, {2, 2}, Interpolation::nearest))), 0.f);
  auto ort = testing::run_onnx_runtime(torch_style, {nchw(x)});
  ASSERT_TRUE(ort.has_value());
  EXPECT_LE(max_abs_diff((*ort)[0], y), 1e-6f);
  std::string linear = resize_model("linear", "pytorch_half_pixel", "round_prefer_floor", {1, 2, 5, 7});
  Tensor z = runtime_export::import_onnx(linear).run(nchw(x));
  EXPECT_LE(max_abs_diff(z, nchw(resize2d(x, {{5, 7}, Interpolation::bilinear}))), 0.f);
  ort = testing::run_onnx_runtime(linear, {nchw(x)});
  ASSERT_TRUE(ort.has_value());
  EXPECT_LE(max_abs_diff((*ort)[0], z), 1e-5f);
  auto expect_refused = [](const std::string& path, const std::string& needle) {
    try {
      runtime_export::import_onnx(path);
      ADD_FAILURE() << "imported " << path;
    } catch (const std::invalid_argument& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("the_resize"), std::string::npos) << what;
      EXPECT_NE(what.find(needle), std::string::npos) << what;
    }
  };
  expect_refused(resize_model("cubic", "half_pixel", "round_prefer_ceil", {1, 2, 6, 8}), "'mode'");
  expect_refused(resize_model("linear", "align_corners", "round_prefer_ceil", {1, 2, 6, 8}), "coordinate_transformation_mode");
  expect_refused(resize_model("nearest", "asymmetric", "floor", {1, 2, 5, 7}), "nearest_mode");
  expect_refused(resize_model("nearest", "half_pixel", "floor", {1, 2, 6, 8}), "nearest_mode");
}

}  // namespace
}  // namespace kiln
