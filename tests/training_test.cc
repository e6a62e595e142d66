#include <gtest/gtest.h>
#include <dirent.h>

#include <cmath>
#include <fstream>

#include "data/atomic_file.h"
#include "kiln.h"
#include "nn/checkpoint.h"
#include "nn/progress_bar.h"
#include "tensor/onednn/primitive_cache.h"
#include "tests/gradcheck.h"
#include "tests/blobs.h"
#include "tests/temp_path.h"

namespace kiln {
namespace {

using namespace kiln::nn;

using kiln::testing::temp_path;

using kiln::testing::blobs;

std::unique_ptr<Sequential> make_model(const std::string& prefix, uint64_t seed = 7) {
  set_global_seed(seed);
  auto m = std::make_unique<Sequential>(
      std::vector<Layer>{Dense(16, "relu", {}, prefix + "_d1"), Dropout(0.2f, 11, prefix + "_drop"),
                         Dense(3, "", {}, prefix + "_d2")},
      prefix);
  m->build({2});
  m->compile(optim::Adam(0.01f), SparseCategoricalCrossentropy(true), {"accuracy"});
  return m;
}

TEST(Fit, LearnsBlobsAndReportsHistory) {
  auto model = make_model("fit");
  data::Dataset train = blobs(600, 1).shuffle(600, 3).batch(32);
  data::Dataset val = blobs(300, 2).batch(100);
  History h = model->fit(train, {.epochs = 5, .validation_data = val, .verbose = 0});
  ASSERT_EQ(h.epochs.size(), 5u);
  EXPECT_LT(h.history["loss"].back(), h.history["loss"].front());
  EXPECT_GT(h.history["val_accuracy"].back(), 0.95);
  Logs logs = model->evaluate(val);
  EXPECT_NEAR(logs["accuracy"], h.history["val_accuracy"].back(), 1e-9);
  Tensor preds = model->predict(Tensor::zeros({7, 2}), 3);
  EXPECT_EQ(preds.shape(), (Shape{7, 3}));
  EXPECT_THROW(model->fit(blobs(10, 1), {.epochs = 1, .verbose = 0}), std::invalid_argument);  // unbatched
  EXPECT_THROW(model->fit(train, {.epochs = 1, .validation_data = blobs(10, 2), .verbose = 0}), std::invalid_argument);
  EXPECT_THROW(model->fit(train, {.epochs = 1, .verbose = 0, .num_processes = 2}), std::invalid_argument);
  Sequential uncompiled({Dense(2)});
  EXPECT_THROW(uncompiled.fit(train, {}), std::logic_error);
}

TEST(Fit, ResumingFromACheckpointGivesTheSameLossCurve) {
  data::Dataset train = blobs(300, 4).shuffle(300, 8).batch(16);
  auto straight = make_model("resume");
  History full = straight->fit(train, {.epochs = 4, .verbose = 0});

  std::string ckpt = temp_path("resume.kckpt");
  auto first = make_model("resume");
  first->fit(train, {.epochs = 2, .callbacks = {std::make_shared<ModelCheckpoint>(ckpt, "loss", false)}, .verbose = 0});
  auto resumed = make_model("resume", /*seed=*/99);  // different init: the checkpoint must overwrite it
  int64_t next_epoch = resumed->load_checkpoint(ckpt);
  EXPECT_EQ(next_epoch, 2);
  EXPECT_EQ(resumed->optimizer().iterations(), 2 * train.cardinality());
  History rest = resumed->fit(train, {.epochs = 4, .verbose = 0, .initial_epoch = next_epoch});
  ASSERT_EQ(rest.epochs, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(rest.history["loss"][0], full.history["loss"][2]);
  EXPECT_EQ(rest.history["loss"][1], full.history["loss"][3]);
}

TEST(Checkpoint, RoundTripAndValidation) {
  std::string p = temp_path("w.kckpt");
  auto model = make_model("ck");
  model->save_weights(p);
  auto other = make_model("ck", 123);
  EXPECT_NE(other->variables()[0].value().to_vector(), model->variables()[0].value().to_vector());
  other->load_weights(p);
  EXPECT_EQ(other->variables()[0].value().to_vector(), model->variables()[0].value().to_vector());
  EXPECT_THROW(other->load_checkpoint(p), std::runtime_error);  // weights only

  // No temporary file is left behind by the atomic write.
  DIR* d = opendir(temp_path("").c_str());
  while (dirent* e = readdir(d)) EXPECT_EQ(std::string(e->d_name).find(".tmp."), std::string::npos) << e->d_name;
  closedir(d);

  std::string bytes = data::read_file(p);
  auto expect_error = [&](const std::string& content, const std::string& fragment) {
    data::write_file_atomically(p, content);
    try {
      other->load_weights(p);
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x40;
  expect_error(flipped, "checksum");
  expect_error(bytes.substr(0, bytes.size() - 9), "corrupt");
  expect_error("NOTKILN" + bytes.substr(7), "not a Kiln checkpoint");
  std::string v2 = bytes;
  v2[8] = 2;
  expect_error(v2, "version 2");
  EXPECT_THROW(other->load_weights(temp_path("absent.kckpt")), std::runtime_error);

  // Shape mismatch names the variable.
  set_global_seed(1);
  Sequential wider({Dense(17, "relu", {}, "ck_d1"), Dense(3, "", {}, "ck_d2")}, "wider");
  wider.build({2});
  data::write_file_atomically(p, bytes);
  try {
    wider.load_weights(p);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("ck_d1/kernel"), std::string::npos) << e.what();
  }
  EXPECT_THROW(write_checkpoint(p, {{"a", Tensor::zeros({1})}, {"a", Tensor::zeros({1})}}), std::invalid_argument);
}

TEST(Callbacks, EarlyStoppingRestoresBestWeights) {
  auto model = make_model("es");
  auto es = std::make_shared<EarlyStopping>("val_loss", 0.0, 1, "auto", true);
  // A validation set the model cannot improve on forever: labels shuffled at random.
  data::Dataset train = blobs(300, 5).batch(32);
  RandomStream rs(3);
  std::vector<int32_t> noise(300);
  for (auto& l : noise) l = static_cast<int32_t>(rs.below(3));
  data::Dataset val = data::Dataset::from_tensor_slices(Tensor::zeros({300, 2}), Tensor::from_int32(noise, {300})).batch(100);
  History h = model->fit(train, {.epochs = 30, .validation_data = val, .callbacks = {es}, .verbose = 0});
  EXPECT_LT(h.epochs.size(), 30u);
  EXPECT_GE(es->stopped_epoch(), 1);
  Logs after = model->evaluate(val);
  EXPECT_NEAR(after["loss"], es->best(), 1e-6);  // the best epoch's weights are back
}

TEST(Callbacks, ModelCheckpointCsvLoggerSchedulerAndNaN) {
  auto model = make_model("cb");
  std::string best = temp_path("best_{epoch}.kckpt"), csv = temp_path("log.csv");
  auto ckpt = std::make_shared<ModelCheckpoint>(best, "loss", true);
  auto logger = std::make_shared<CSVLogger>(csv);
  auto sched = std::make_shared<LearningRateScheduler>([](int64_t epoch, float) { return 0.01f / (epoch + 1); });
  History h = model->fit(blobs(300, 6).batch(32), {.epochs = 3, .callbacks = {ckpt, logger, sched}, .verbose = 0});
  EXPECT_EQ(ckpt->saves(), 3);  // training loss falls every epoch on this data
  EXPECT_NE(data::read_file(temp_path("best_3.kckpt")).size(), 0u);
  EXPECT_NEAR(h.history["lr"][2], 0.01 / 3, 1e-7);
  std::string log = data::read_file(csv);
  EXPECT_EQ(log.substr(0, log.find('\n')), "epoch,accuracy,loss,lr");
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 4);

  auto nan_model = make_model("nan");
  nan_model->compile(optim::SGD(1e30f), SparseCategoricalCrossentropy(true));
  auto term = std::make_shared<TerminateOnNaN>();
  History hn = nan_model->fit(blobs(300, 7).batch(10), {.epochs = 5, .callbacks = {term}, .verbose = 0});
  EXPECT_TRUE(term->terminated());
  EXPECT_EQ(hn.epochs.size(), 1u);
}

struct Recorder {
  std::vector<std::string> events;
};

class RecordingCallback : public Callback {
 public:
  explicit RecordingCallback(Recorder* r) : r_(r) {}
  void on_init_end(Trainer&) override { r_->events.push_back("cb:init_end"); }
  void on_train_run_begin(Trainer&) override { r_->events.push_back("cb:train_run_begin"); }
  void on_train_run_end(Trainer&) override { r_->events.push_back("cb:train_run_end"); }
  void on_stop_training_error(Trainer&) override { r_->events.push_back("cb:stop_training_error"); }
  void on_train_epoch_begin(Trainer&) override { r_->events.push_back("cb:train_epoch_begin"); }
  void on_train_epoch_end(Trainer&) override { r_->events.push_back("cb:train_epoch_end"); }
  void on_eval_epoch_begin(Trainer&) override { r_->events.push_back("cb:eval_epoch_begin"); }
  void on_eval_epoch_end(Trainer&) override { r_->events.push_back("cb:eval_epoch_end"); }
  void on_train_step_begin(Trainer&) override { r_->events.push_back("cb:train_step_begin"); }
  void on_train_step_end(Trainer&, const BatchOutput&) override { r_->events.push_back("cb:train_step_end"); }
  void on_eval_step_begin(Trainer&) override { r_->events.push_back("cb:eval_step_begin"); }
  void on_eval_step_end(Trainer&, const BatchOutput&) override { r_->events.push_back("cb:eval_step_end"); }
  void on_epoch_end(Trainer&, int64_t, Logs&) override { r_->events.push_back("cb:epoch_end"); }

 private:
  Recorder* r_;
};

class RecordingTrainer : public Trainer {
 public:
  RecordingTrainer(Model& m, optim::Optimizer& o, Recorder* r, bool stop_in_step)
      : Trainer(m, SparseCategoricalCrossentropy(true), o, {std::make_shared<RecordingCallback>(r)}),
        r_(r), stop_in_step_(stop_in_step) {}
  data::Dataset create_train_dataloader(const data::Dataset& d) override { return hook("create_train_dataloader", d); }
  data::Dataset create_eval_dataloader(const data::Dataset& d) override { return hook("create_eval_dataloader", d); }
  std::shared_ptr<optim::LearningRateSchedule> create_scheduler() override {
    r_->events.push_back("hook:create_scheduler");
    return std::make_shared<optim::ConstantLR>(0.05f);
  }
  void training_run_start() override { r_->events.push_back("hook:training_run_start"); }
  void training_run_end() override { r_->events.push_back("hook:training_run_end"); }
  void train_epoch_start() override { r_->events.push_back("hook:train_epoch_start"); }
  void train_epoch_end() override { r_->events.push_back("hook:train_epoch_end"); }
  void eval_epoch_start() override { r_->events.push_back("hook:eval_epoch_start"); }
  void eval_epoch_end() override { r_->events.push_back("hook:eval_epoch_end"); }
  BatchOutput calculate_train_batch_loss(const data::Batch& b) override {
    r_->events.push_back("hook:calculate_train_batch_loss");
    if (stop_in_step_) throw StopTrainingError("stop requested");
    return Trainer::calculate_train_batch_loss(b);
  }
  void backward_step(const BatchOutput& o) override {
    r_->events.push_back("hook:backward_step");
    Trainer::backward_step(o);
    EXPECT_FALSE(gradients().empty());
  }
  void optimizer_step() override {
    r_->events.push_back("hook:optimizer_step");
    Trainer::optimizer_step();
  }
  void scheduler_step() override { r_->events.push_back("hook:scheduler_step"); }
  void optimizer_zero_grad() override {
    r_->events.push_back("hook:optimizer_zero_grad");
    Trainer::optimizer_zero_grad();
    EXPECT_TRUE(gradients().empty());
  }
  BatchOutput calculate_eval_batch_loss(const data::Batch& b) override {
    r_->events.push_back("hook:calculate_eval_batch_loss");
    return Trainer::calculate_eval_batch_loss(b);
  }

 private:
  data::Dataset hook(const char* name, const data::Dataset& d) {
    r_->events.push_back(std::string("hook:") + name);
    return d;
  }
  Recorder* r_;
  bool stop_in_step_;
};

TEST(Trainer, HooksRunInOrderAndCallbacksFollowTheirHooks) {
  auto model = make_model("tr");
  optim::SGD opt(0.1f);
  Recorder rec;
  RecordingTrainer trainer(*model, opt, &rec, false);
  TrainOptions o;
  o.num_epochs = 1;
  o.verbose = 0;
  trainer.train(blobs(6, 1).batch(6), blobs(3, 2).batch(3), o);
  std::vector<std::string> want = {
      "cb:init_end", "hook:create_train_dataloader", "hook:create_eval_dataloader", "hook:create_scheduler",
      "hook:training_run_start", "cb:train_run_begin", "hook:train_epoch_start", "cb:train_epoch_begin",
      "cb:train_step_begin", "hook:calculate_train_batch_loss", "hook:backward_step", "hook:optimizer_step",
      "hook:scheduler_step", "hook:optimizer_zero_grad", "cb:train_step_end", "hook:train_epoch_end",
      "cb:train_epoch_end", "hook:eval_epoch_start", "cb:eval_epoch_begin", "cb:eval_step_begin",
      "hook:calculate_eval_batch_loss", "cb:eval_step_end", "hook:eval_epoch_end", "cb:eval_epoch_end",
      "cb:epoch_end", "hook:training_run_end", "cb:train_run_end"};
  EXPECT_EQ(rec.events, want);
  EXPECT_FLOAT_EQ(opt.learning_rate(), 0.05f);  // create_scheduler's schedule was installed
}

TEST(Trainer, StopTrainingErrorEndsTheRunCleanly) {
  auto model = make_model("stop");
  optim::SGD opt(0.1f);
  Recorder rec;
  RecordingTrainer trainer(*model, opt, &rec, true);
  TrainOptions o;
  o.num_epochs = 3;
  o.verbose = 0;
  History h = trainer.train(blobs(6, 1).batch(3), std::nullopt, o);
  EXPECT_TRUE(h.epochs.empty());
  auto pos = std::find(rec.events.begin(), rec.events.end(), "cb:stop_training_error");
  ASSERT_NE(pos, rec.events.end());
  EXPECT_EQ(rec.events.back(), "cb:train_run_end");
  EXPECT_FALSE(autograd::any_tape_active());  // the step's tape did not leak
}

// docs/architecture.md: no primitive creation and no per-step malloc churn in steady-state training.
TEST(SteadyState, TrainStepsCreateNoPrimitivesAndAllocateNothingNew) {
  set_global_seed(5);
  Conv2DOptions same;
  same.padding = "same";
  SymbolicTensor in = Input({8, 8, 3});
  SymbolicTensor h = Activation("relu")(BatchNormalization()(Conv2D(8, 3, "", same)(in)));
  h = MaxPooling2D()(Add()({h, Conv2D(8, 1)(in)}));
  Model model(in, Dense(4)(GlobalAveragePooling2D()(h)));
  optim::Adam opt(1e-3f);
  SparseCategoricalCrossentropy loss_fn(true);
  Tensor x = testing::rand_tensor({16, 8, 8, 3}, 1), y = Tensor::from_int32(std::vector<int32_t>(16, 1), {16});
  auto step = [&] {
    std::vector<Tensor> grads;
    {
      GradientTape tape;
      grads = tape.gradient(loss_fn(y, model(x, true)), model.trainable_variables());
    }
    opt.apply_gradients(grads, model.trainable_variables());
  };
  for (int i = 0; i < 3; ++i) step();
  auto prims = onednn::primitive_cache_stats();
  auto mem = allocator_stats();
  for (int i = 0; i < 5; ++i) step();
  EXPECT_EQ(onednn::primitive_cache_stats().misses, prims.misses);
  EXPECT_EQ(allocator_stats().system_allocations, mem.system_allocations);
}

TEST(ProgressBar, OneLinePerEpochWhenNotATerminal) {
  auto model = make_model("pb");
  ::testing::internal::CaptureStdout();
  model->fit(blobs(64, 1).batch(16), {.epochs = 2, .validation_data = blobs(30, 2).batch(10), .verbose = 1});
  std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
  EXPECT_NE(out.find("Epoch 1/2 - 4/4 - "), std::string::npos) << out;
  EXPECT_NE(out.find(" - loss: "), std::string::npos) << out;
  EXPECT_NE(out.find(" - val_accuracy: "), std::string::npos) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << out;
  EXPECT_EQ(ProgressBar::bar(5, 10, 10), "[=====>....]");
  EXPECT_EQ(ProgressBar::bar(10, 10, 4), "[====]");
  ::testing::internal::CaptureStdout();
  model->fit(blobs(64, 1).batch(16), {.epochs = 2, .verbose = 0});
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), "");
  ::testing::internal::CaptureStdout();
  model->evaluate(blobs(30, 2).batch(10), /*verbose=*/1);
  std::string eval = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(std::count(eval.begin(), eval.end(), '\n'), 1) << eval;
  EXPECT_NE(eval.find("3/3 - "), std::string::npos) << eval;
  EXPECT_NE(eval.find(" - accuracy: "), std::string::npos) << eval;
}

}  // namespace
}  // namespace kiln
