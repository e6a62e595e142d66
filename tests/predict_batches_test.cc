// predict() and evaluate() over 1,000 batches, for every kind of model a user predicts with:
// an eager Model, an InferenceModel (f32 and bf16) and an int8 model from quant::quantize,
// each against one forward of all the rows; and quantize's accuracy search, which evaluates
// over its eval_data batch by batch. (predict used to concatenate its batches in one oneDNN
// call that took at most 15, and threw past that.)
#include <gtest/gtest.h>

#include <cmath>

#include "kiln.h"
#include "nn/batch_rows.h"
#include "quant/quantize.h"
#include "runtime_export/inference_model.h"
#include "tests/blobs.h"
#include "tests/tensor_compare.h"

namespace kiln {
namespace {

using testing::max_abs_diff;

constexpr int64_t kBatch = 2, kBatches = 1000;
constexpr int64_t kRows = kBatch * kBatches - 1;  // the last batch has one row

struct Arrays {
  Tensor x, y;
};

Arrays blob_arrays(int64_t n, uint64_t seed) {
  data::BatchIterator it = testing::blobs(n, seed).batch(n).begin_iteration();
  std::optional<data::Batch> b = it.next();
  return {b->x, b->y};
}

std::unique_ptr<nn::Sequential> trained_model() {
  set_global_seed(5);
  auto model = std::make_unique<nn::Sequential>(std::vector<nn::Layer>{nn::Dense(16, "relu"), nn::Dense(3)});
  model->compile(optim::Adam(1e-2), nn::SparseCategoricalCrossentropy(true), {"accuracy"});
  model->fit(testing::blobs(300, 1).batch(30), {.epochs = 3, .verbose = 0});
  return model;
}

// predict over kBatches batches (from a tensor and from a dataset) equals one forward of every
// row, and evaluate over them equals evaluate of one batch holding every row.
void expect_batches_match_one_forward(nn::Model& model, double tolerance) {
  Arrays data = blob_arrays(kRows, 2);
  Tensor whole = cast(model(data.x, false), DType::f32);
  Tensor batched = model.predict(data.x, kBatch);
  EXPECT_EQ(batched.dtype(), DType::f32);
  ASSERT_EQ(batched.shape(), whole.shape());
  EXPECT_LE(max_abs_diff(batched, whole), tolerance);
  data::Dataset features = data::Dataset::from_tensor_slices(data.x).batch(kBatch);
  ASSERT_EQ(features.cardinality(), kBatches);
  Tensor from_dataset = model.predict(features);
  ASSERT_EQ(from_dataset.shape(), whole.shape());
  EXPECT_LE(max_abs_diff(from_dataset, whole), tolerance);

  nn::Logs many = model.evaluate(data::Dataset::from_tensor_slices(data.x, data.y).batch(kBatch));
  nn::Logs one = model.evaluate(data::Dataset::from_tensor_slices(data.x, data.y).batch(kRows));
  EXPECT_NEAR(many.at("loss"), one.at("loss"), tolerance);
  EXPECT_NEAR(many.at("accuracy"), one.at("accuracy"), 1e-9);
}

TEST(PredictBatches, EagerModel) {
  auto model = trained_model();
  expect_batches_match_one_forward(*model, 1e-5);
}

TEST(PredictBatches, InferenceModelF32) {
  auto model = trained_model();
  auto inference = runtime_export::trace(*model, blob_arrays(4, 3).x);
  expect_batches_match_one_forward(*inference, 1e-5);
}

TEST(PredictBatches, InferenceModelBf16) {
  auto model = trained_model();
  auto inference = runtime_export::trace(*model, blob_arrays(4, 3).x, {.dtype = DType::bf16});
  EXPECT_EQ(inference->dtype(), DType::bf16);
  expect_batches_match_one_forward(*inference, 1e-5);
}

TEST(PredictBatches, Int8Model) {
  auto model = trained_model();
  auto int8 = quant::quantize(*model, testing::blobs(300, 4).batch(50));
  expect_batches_match_one_forward(*int8, 1e-5);
}

TEST(PredictBatches, QuantizeEvaluatesItsAccuracySearchOverEveryBatch) {
  auto model = trained_model();
  Arrays eval = blob_arrays(kRows, 6);
  quant::QuantizationReport report;
  auto int8 = quant::quantize(*model, testing::blobs(300, 4).batch(50),
                              {.metric = "accuracy",
                               .eval_data = data::Dataset::from_tensor_slices(eval.x, eval.y).batch(kBatch),
                               .accuracy_criterion = {.relative = 0.05},
                               .verbose = false},
                              &report);
  data::Dataset one_batch = data::Dataset::from_tensor_slices(eval.x, eval.y).batch(kRows);
  EXPECT_NEAR(report.baseline, model->evaluate(one_batch).at("accuracy"), 1e-9);
  ASSERT_GE(report.chosen, 0);
  EXPECT_NEAR(report.trials[report.chosen].metric, int8->evaluate(one_batch).at("accuracy"), 1e-9);
}

TEST(PredictBatches, RowsGrowPastTheirFirstSizeAndRefuseMismatchedBatches) {
  nn::BatchRows rows("collect", 0, 2);  // room for two batches of the first one's size
  EXPECT_THROW(rows.result(), std::invalid_argument);
  rows.append(Tensor::full({3, 2}, 1.f));
  rows.append(transpose(Tensor::full({2, 3}, 2.f)));  // a view: copied as its values
  rows.append(Tensor::full({5, 2}, 3.f));             // past the room: the rows move to a larger buffer
  Tensor out = rows.result();
  ASSERT_EQ(out.shape(), (Shape{11, 2}));
  std::vector<float> v = out.to_vector();
  for (int64_t r = 0; r < 11; ++r) EXPECT_EQ(v[2 * r], r < 3 ? 1.f : r < 6 ? 2.f : 3.f) << r;
  try {
    rows.append(Tensor::zeros({3, 3}));
    ADD_FAILURE() << "a [3, 3] batch after [.., 2] ones was taken";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("f32[3, 3]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("f32[11, 2]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(rows.append(Tensor::zeros({3, 2}, DType::bf16)), std::invalid_argument);
  EXPECT_THROW(rows.append(Tensor::scalar(1.f)), std::invalid_argument);
}

TEST(PredictBatches, RefusesAnInfiniteDataset) {
  auto model = trained_model();
  data::Dataset forever = data::Dataset::from_tensor_slices(blob_arrays(4, 3).x).batch(2).repeat();
  EXPECT_THROW(model->predict(forever), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
