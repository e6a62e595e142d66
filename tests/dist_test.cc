// Data-parallel training over Open MPI with 2 ranks: collectives, fit(num_processes=2) against
// one process, a custom loop against one process, and the launcher's errors. Each multi-rank
// test relaunches this binary under mpirun with only itself selected (dist::launch and fit do
// the relaunching), so ranks see the same test code the launcher runs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dist/dist.h"
#include "dist/relaunch.h"
#include "kiln.h"
#include "tests/blobs.h"
#include "tests/temp_path.h"

namespace {
using namespace kiln;
using namespace kiln::nn;
using kiln::testing::blobs;
using kiln::testing::temp_path;

// The relaunched ranks run only the current test, so launch calls count from its start.
void select_this_test() {
  dist::restart_launch_count();
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  setenv("GTEST_FILTER", name.c_str(), 1);
  setenv("TESTBRIDGE_TEST_ONLY", name.c_str(), 1);
}

// In a rank, a failed expectation throws, so the rank reports it and the job ends.
void fail_fast_in_ranks() { GTEST_FLAG_SET(throw_on_failure, true); }

// ||a - b|| / ||b|| over one variable.
double relative_difference(const Tensor& a, const Tensor& b) {
  std::vector<float> x = a.to_vector(), y = b.to_vector();
  double d = 0, n = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    d += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    n += double(y[i]) * y[i];
  }
  return std::sqrt(d) / std::max(std::sqrt(n), 1e-30);
}

void expect_same_weights(const Model& a, const Model& b, double tol) {
  std::vector<Variable> va = a.variables(), vb = b.variables();
  ASSERT_EQ(va.size(), vb.size());
  for (size_t i = 0; i < va.size(); ++i) {
    EXPECT_LE(relative_difference(va[i].value(), vb[i].value()), tol) << va[i].name();
  }
}

// Named layers: checkpoints between the launcher and its ranks match variables by name.
std::unique_ptr<Sequential> make_model(const std::string& prefix, const optim::Optimizer& opt) {
  set_global_seed(7);
  auto m = std::make_unique<Sequential>(
      std::vector<Layer>{Dense(16, "relu", {}, prefix + "_d1"), Dense(3, "", {}, prefix + "_d2")}, prefix);
  m->build({2});
  m->compile(opt, SparseCategoricalCrossentropy(true), {"accuracy"});
  return m;
}

// Appends each epoch's val_loss to a file: one per rank, or (rank_zero_only) one in all.
class LogLines : public Callback {
 public:
  LogLines(std::string path, bool rank_zero_only) : path_(std::move(path)), zero_only_(rank_zero_only) {}
  void on_epoch_end(Trainer&, int64_t epoch, Logs& logs) override {
    std::string p = zero_only_ ? path_ : path_ + "." + std::to_string(dist::rank());
    std::ofstream(p, std::ios::app) << epoch << " " << std::setprecision(17) << logs["val_loss"] << "\n";
  }
  bool rank_zero_only() const override { return zero_only_; }
  // Every rank's final weights and optimizer slots, as a hash of their bytes.
  void on_train_run_end(Trainer& t) override {
    if (zero_only_) return;
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](const Tensor& x) {
      const unsigned char* p = static_cast<const unsigned char*>(x.raw_data());
      for (size_t i = 0; i < x.nbytes(); ++i) h = (h ^ p[i]) * 1099511628211ull;
    };
    for (const Variable& v : t.model().variables()) mix(v.value());
    for (auto& [name, slot] : t.optimizer().slot_state(t.model().trainable_variables())) mix(slot);
    std::ofstream(path_ + ".state." + std::to_string(dist::rank())) << h << " " << t.optimizer().iterations();
  }

 private:
  std::string path_;
  bool zero_only_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(DistCollectives, TwoRanks) {
  select_this_test();
  dist::launch(2, [] {
    fail_fast_in_ranks();
    const int r = dist::rank();
    ASSERT_EQ(dist::world_size(), 2);
    EXPECT_EQ(dist::local_rank(), r);  // one host
    for (int64_t n : {0, 1, 3, 1001, 65537}) {
      std::vector<float> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = float((r + 1) * (i % 7));
      Tensor f = Tensor::from_vector(v, {n});
      dist::allreduce(f, dist::ReduceOp::sum);
      std::vector<float> got = f.to_vector();
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], float(3 * (i % 7))) << "f32 sum, n=" << n << " i=" << i;
      Tensor m = Tensor::from_vector(v, {n});
      dist::allreduce(m, dist::ReduceOp::mean);
      got = m.to_vector();
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], 1.5f * (i % 7)) << "f32 mean, n=" << n;
      // bf16 payloads: values exact in bf16, so the sum must be too.
      std::vector<float> h(n);
      for (int64_t i = 0; i < n; ++i) h[i] = 0.5f * (r + 1) * (i % 5);
      Tensor b = cast(Tensor::from_vector(h, {n}), DType::bf16);
      dist::allreduce(b, dist::ReduceOp::sum);
      ASSERT_EQ(b.dtype(), DType::bf16);
      got = cast(b, DType::f32).to_vector();
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], 1.5f * (i % 5)) << "bf16 sum, n=" << n;
      Tensor bm = cast(Tensor::from_vector(h, {n}), DType::bf16);
      dist::allreduce(bm, dist::ReduceOp::mean);
      got = cast(bm, DType::f32).to_vector();
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], 0.75f * (i % 5)) << "bf16 mean, n=" << n;
      // Broadcast from either root, any dtype.
      std::vector<int32_t> s(n);
      for (int64_t i = 0; i < n; ++i) s[i] = int32_t(i * 3 + r * 1000);
      Tensor t = Tensor::from_int32(s, {n});
      dist::broadcast(t, 1);
      std::vector<int32_t> gs = t.to_int32();
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(gs[i], int32_t(i * 3 + 1000)) << "broadcast, n=" << n;
    }
    EXPECT_EQ(dist::allgather(r + 0.5), (std::vector<double>{0.5, 1.5}));
    EXPECT_EQ(dist::allgather(int64_t(10 * r)), (std::vector<int64_t>{0, 10}));
    // Errors name the call and the rank.
    EXPECT_THROW(dist::allreduce(Tensor::zeros({3}, DType::s32)), std::invalid_argument);
    EXPECT_THROW(dist::allreduce(transpose(Tensor::zeros({2, 3}), 0, 1)), std::invalid_argument);
    try {
      dist::broadcast(Tensor::zeros({4}), /*root=*/7);
      ADD_FAILURE() << "a broadcast from rank 7 of 2 did not fail";
    } catch (const dist::MpiError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("MPI_Bcast failed on rank " + std::to_string(r)), std::string::npos) << what;
      EXPECT_NE(what.find("root"), std::string::npos) << what;  // MPI's own error string
    }
    dist::barrier();
  });
}

struct FitCase {
  std::string name;
  std::shared_ptr<optim::Optimizer> optimizer;
};

// 101 examples in global batches of 16: the last batch splits 2/3 over the ranks, so the
// example weighting of the gradient average is exercised as well.
void fit_matches_one_process(const std::string& prefix, const optim::Optimizer& opt, bool early_stop) {
  data::Dataset train = blobs(101, 1).shuffle(101, 5).batch(16);
  data::Dataset val = blobs(50, 2).batch(20);
  std::string dir = temp_path(prefix);
  std::string zero_log = dir + "_zero.txt", rank_log = dir + "_rank.txt", ckpt = dir + "_{epoch}.kckpt";
  for (const std::string& old : {zero_log, rank_log + ".0", rank_log + ".1", rank_log + ".state.0", rank_log + ".state.1"}) {
    std::filesystem::remove(old);
  }
  auto callbacks = [&](bool files) {
    std::vector<std::shared_ptr<Callback>> cbs;
    if (files) {
      cbs.push_back(std::make_shared<LogLines>(zero_log, true));
      cbs.push_back(std::make_shared<LogLines>(rank_log, false));
      cbs.push_back(std::make_shared<ModelCheckpoint>(ckpt, "loss", /*save_best_only=*/false));
    }
    if (early_stop) cbs.push_back(std::make_shared<EarlyStopping>("val_loss", /*min_delta=*/10.0, /*patience=*/0));
    return cbs;
  };
  auto model = make_model(prefix, opt);
  History h = model->fit(train, {.epochs = 3, .validation_data = val, .callbacks = callbacks(true), .verbose = 0,
                                 .num_processes = 2});
  // Only the launcher gets here: the ranks ended inside fit.
  auto ref = make_model(prefix, opt);
  History r = ref->fit(train, {.epochs = 3, .validation_data = val, .callbacks = callbacks(false), .verbose = 0});
  expect_same_weights(*model, *ref, 1e-5);
  ASSERT_EQ(h.epochs, r.epochs);
  EXPECT_EQ(h.epochs.size(), early_stop ? 2u : 3u);
  for (const char* k : {"loss", "accuracy", "val_loss", "val_accuracy"}) {
    ASSERT_EQ(h.history[k].size(), r.history[k].size()) << k;
    for (size_t e = 0; e < r.history[k].size(); ++e) {
      EXPECT_NEAR(h.history[k][e], r.history[k][e], 1e-5 * std::max(1.0, std::abs(r.history[k][e]))) << k << " " << e;
    }
  }
  // rank_zero_only callbacks ran once per epoch; the others on both ranks, with the same
  // (global) logs.
  std::string zero = slurp(zero_log);
  EXPECT_EQ(std::count(zero.begin(), zero.end(), '\n'), long(h.epochs.size()));
  EXPECT_EQ(slurp(rank_log + ".0"), slurp(rank_log + ".1"));
  EXPECT_EQ(slurp(rank_log + ".0"), zero);
  // Weights and optimizer state stayed bit-identical on the ranks.
  EXPECT_FALSE(slurp(rank_log + ".state.0").empty());
  EXPECT_EQ(slurp(rank_log + ".state.0"), slurp(rank_log + ".state.1"));
  // ModelCheckpoint wrote each epoch's file (rank 0 only); the last one holds the weights fit
  // returned with.
  for (size_t e = 1; e <= h.epochs.size(); ++e) {
    std::string p = dir + "_" + std::to_string(e) + ".kckpt";
    ASSERT_GT(slurp(p).size(), 0u) << p;
  }
  auto loaded = make_model(prefix, opt);
  loaded->load_checkpoint(dir + "_" + std::to_string(h.epochs.size()) + ".kckpt");
  expect_same_weights(*loaded, *model, 0.0);
}

TEST(DistFit, SgdMatchesOneProcess) {
  select_this_test();
  fit_matches_one_process("sgd", optim::SGD({.learning_rate = 0.1f, .momentum = 0.9f}), false);
}

TEST(DistFit, AdamMatchesOneProcessAndStopsTogether) {
  select_this_test();
  fit_matches_one_process("adam", optim::Adam(0.01f), true);
}

// Goyal et al.'s linear scaling: 2 ranks at learning rate 0.05 scaled by 2 train as one
// process at 0.1, and the optimizer comes back with its own learning rate. bf16 gradients
// land close to f32's.
TEST(DistFit, LearningRateScalingAndBf16Communication) {
  select_this_test();
  data::Dataset train = blobs(96, 1).batch(32);
  auto scaled = make_model("lrs", optim::SGD(0.05f));
  scaled->fit(train, {.epochs = 2, .verbose = 0, .num_processes = 2, .distributed = {.scale_learning_rate = true}});
  auto bf16 = make_model("lrs", optim::SGD(0.1f));
  bf16->fit(train, {.epochs = 2, .verbose = 0, .num_processes = 2, .distributed = {.bf16_communication = true}});
  auto ref = make_model("lrs", optim::SGD(0.1f));
  ref->fit(train, {.epochs = 2, .verbose = 0});
  expect_same_weights(*scaled, *ref, 1e-5);
  EXPECT_FLOAT_EQ(scaled->optimizer().learning_rate(), 0.05f);
  expect_same_weights(*bf16, *ref, 2e-2);
  double d = 0;
  for (size_t i = 0; i < ref->variables().size(); ++i) {
    d += relative_difference(bf16->variables()[i].value(), ref->variables()[i].value());
  }
  EXPECT_GT(d, 0.0);  // bf16 rounding did happen
}

// More ranks than cores when asked for explicitly: 3 ranks share 2 cores here, and batches
// of 16 (and a last one of 5) split unevenly three ways.
TEST(DistFit, OversubscribedThreeRanks) {
  select_this_test();
  data::Dataset train = blobs(53, 1).batch(16);
  auto model = make_model("over", optim::Adam(0.01f));
  model->fit(train, {.epochs = 2, .verbose = 0, .num_processes = 3, .distributed = {.oversubscribe = true}});
  auto ref = make_model("over", optim::Adam(0.01f));
  ref->fit(train, {.epochs = 2, .verbose = 0});
  expect_same_weights(*model, *ref, 1e-5);
}

// The custom loop: a DistributedGradientTape and a sharded dataset are the only changes.
void train_loop(Model& model, bool distributed) {
  data::Dataset train = blobs(96, 3).shuffle(96, 4).batch(16);
  data::Dataset mine = distributed ? dist::shard(train) : train;
  optim::SGD opt({.learning_rate = 0.05f, .momentum = 0.9f});
  SparseCategoricalCrossentropy loss_fn(true);
  for (const Variable& v : model.variables()) dist::broadcast(v.value());
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    mine.set_epoch(epoch);
    data::BatchIterator it = mine.begin_iteration();
    while (auto b = it.next()) {
      std::vector<Tensor> grads;
      if (distributed) {
        dist::DistributedGradientTape tape;
        Tensor loss = loss_fn(b->y, model(b->x, true));
        grads = tape.gradient(loss, model.trainable_variables());
      } else {
        GradientTape tape;
        Tensor loss = loss_fn(b->y, model(b->x, true));
        grads = tape.gradient(loss, model.trainable_variables());
      }
      opt.apply_gradients(grads, model.trainable_variables());
    }
  }
}

TEST(DistCustomLoop, MatchesOneProcess) {
  select_this_test();
  auto model = make_model("loop", optim::SGD(0.1f));
  dist::launch(2, [&] { train_loop(*model, true); }, {.return_variables = model->variables()});
  auto ref = make_model("loop", optim::SGD(0.1f));
  train_loop(*ref, false);
  expect_same_weights(*model, *ref, 1e-5);
  auto untrained = make_model("loop", optim::SGD(0.1f));
  EXPECT_GT(relative_difference(model->variables()[0].value(), untrained->variables()[0].value()), 1e-3);
}

TEST(DistLauncher, ClearErrors) {
  auto model = make_model("err", optim::SGD(0.1f));
  data::Dataset train = blobs(30, 1).batch(10);
  auto message = [&](int n, bool oversubscribe) -> std::string {
    try {
      model->fit(train, {.verbose = 0, .num_processes = n, .distributed = {.oversubscribe = oversubscribe}});
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  // More processes than cores, unless oversubscription is asked for.
  std::string many = message(64, false);
  EXPECT_NE(many.find("num_processes=64"), std::string::npos) << many;
  EXPECT_NE(many.find("cores"), std::string::npos) << many;
  EXPECT_NE(many.find("oversubscribe"), std::string::npos) << many;
  EXPECT_THROW(dist::launch(64, [] {}), std::invalid_argument);
  EXPECT_THROW(model->fit(train, {.num_processes = 0}), std::invalid_argument);
  // No mpirun: the error names the Debian package.
  setenv("KILN_MPIRUN", "/nonexistent/mpirun", 1);
  std::string missing = message(2, false);
  unsetenv("KILN_MPIRUN");
  EXPECT_NE(missing.find("openmpi-bin"), std::string::npos) << missing;
  // A global batch smaller than the world cannot be shared out.
  data::Dataset tiny = blobs(3, 1).batch(1);
  EXPECT_THROW(dist::shard(tiny, 0, 2).begin_iteration().next(), std::invalid_argument);
  EXPECT_THROW(dist::shard(blobs(3, 1), 0, 2), std::invalid_argument);  // unbatched
}

// The gradient hook reports each source's gradient once, when final, with the value
// gradient() returns.
TEST(DistReducer, TapeHookSeesFinalGradients) {
  auto model = make_model("hook", optim::SGD(0.1f));
  data::Dataset train = blobs(16, 1).batch(16);
  data::Batch b = *train.begin_iteration().next();
  std::vector<Variable> vars = model->trainable_variables();
  std::vector<Tensor> seen(vars.size());
  std::vector<size_t> order;
  GradientTape tape;
  Tensor loss = SparseCategoricalCrossentropy(true)(b.y, (*model)(b.x, true));
  tape.set_gradient_hook([&](size_t i, const Tensor& g) {
    order.push_back(i);
    seen[i] = g.clone_detached();
  });
  std::vector<Tensor> grads = tape.gradient(loss, vars);
  ASSERT_EQ(order.size(), vars.size());
  EXPECT_GE(order.front(), vars.size() - 2);  // the last layer's kernel or bias comes first
  for (size_t i = 0; i < vars.size(); ++i) EXPECT_EQ(relative_difference(seen[i], grads[i]), 0.0) << i;
  // In a world of one the reducer returns the gradients themselves, with small buckets too.
  dist::GradientReducer reducer({.bucket_bytes = 64, .pass_through_alone = false});
  GradientTape tape2;
  Tensor loss2 = SparseCategoricalCrossentropy(true)(b.y, (*model)(b.x, true));
  reducer.begin(vars, 16, &tape2);
  std::vector<Tensor> local = tape2.gradient(loss2, vars);
  std::vector<Tensor> reduced = reducer.finish(local);
  EXPECT_GT(reducer.num_buckets(), 1);
  EXPECT_EQ(reducer.buckets_started_during_backward(), reducer.num_buckets());
  for (size_t i = 0; i < vars.size(); ++i) EXPECT_LE(relative_difference(reduced[i], grads[i]), 1e-7) << i;
  // fit's default at N = 1: the same tensors back, nothing copied.
  dist::GradientReducer alone;
  alone.begin(vars, 16, nullptr);
  std::vector<Tensor> same = alone.finish(grads);
  for (size_t i = 0; i < vars.size(); ++i) EXPECT_EQ(same[i].id(), grads[i].id()) << i;
}

}  // namespace
