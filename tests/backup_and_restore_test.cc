// BackupAndRestore (Keras's callback): a run killed mid-epoch (SIGKILL, no chance to clean up)
// and started again ends bit for bit as a run never interrupted: weights, optimizer state,
// iterations and History. Also its arguments, a damaged backup, double_checkpoint and
// delete_checkpoint. (Two hosts: tests/multihost_test.)
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "kiln.h"
#include "nn/history_text.h"
#include "tests/blobs.h"
#include "tests/temp_path.h"

namespace {
using kiln::testing::temp_path;
using namespace kiln;
using namespace kiln::nn;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int run(const std::string& args, const std::string& tag) {
  return std::system(("OMP_NUM_THREADS=1 tests/multihost_worker " + args + " >" + temp_path(tag + ".out") + " 2>" +
                      temp_path(tag + ".err"))
                         .c_str());
}

int64_t next_epoch_of(const std::string& backup) {
  for (auto& [name, t] : read_checkpoint(backup)) {
    if (name == "meta/next_epoch") return t.to_int32()[0];
  }
  return -1;
}

TEST(BackupAndRestore, KilledRunStartedAgainIsBitwiseTheUninterruptedRun) {
  std::string dir = temp_path("bar_killed"), whole_dir = temp_path("bar_whole");
  std::string resumed = temp_path("bar_resumed.ckpt"), whole = temp_path("bar_whole.ckpt");
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(whole_dir);
  int status = run("resume 1 " + dir + " " + resumed + " 2", "killed");
  ASSERT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 128 + 9))
      << "the run was to kill itself in epoch 2; status " << status << "\n" << slurp(temp_path("killed.err"));
  ASSERT_EQ(next_epoch_of(dir + "/latest.ckpt"), 2) << "epochs 0 and 1 complete, backed up";
  ASSERT_EQ(run("resume 1 " + dir + " " + resumed, "again"), 0) << slurp(temp_path("again.err"));
  EXPECT_FALSE(std::filesystem::exists(dir)) << "the backup is deleted once fit completes";
  ASSERT_EQ(run("resume 1 " + whole_dir + " " + whole, "whole"), 0) << slurp(temp_path("whole.err"));
  // Weights, optimizer slots, iterations, next epoch and History: the same bytes.
  std::string a = slurp(resumed), b = slurp(whole);
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "the resumed run's final state differs from the uninterrupted run's";
  History h = history_from_text(
      [&] {
        for (auto& [name, t] : read_checkpoint(resumed)) {
          if (name == "meta/history") return std::string(static_cast<const char*>(t.raw_data()), t.nbytes());
        }
        return std::string();
      }(),
      resumed);
  EXPECT_EQ(h.epochs, (std::vector<int64_t>{0, 1, 2, 3}));
}

std::unique_ptr<Sequential> small_model() {
  set_global_seed(5);
  // Named layers: a model made again in this process must match the backup's weight names.
  auto m = std::make_unique<Sequential>(std::vector<Layer>{Dense(4, "relu", {}, "b_d1"), Dense(3, "", {}, "b_d2")}, "b");
  m->build({2});
  m->compile(optim::Adam(0.01f), SparseCategoricalCrossentropy(true));
  return m;
}

data::Dataset small_data() { return kiln::testing::blobs(64, 2).batch(16); }

TEST(BackupAndRestore, RejectsBadArguments) {
  EXPECT_THROW(BackupAndRestore(""), std::invalid_argument);
  try {
    BackupAndRestore("d", "batch");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("\"epoch\" or a number of batches"), std::string::npos) << e.what();
  }
  EXPECT_THROW(BackupAndRestore("d", int64_t(0)), std::invalid_argument);
}

TEST(BackupAndRestore, NeedsABuiltModel) {
  Sequential m({Dense(3)});
  m.compile(optim::SGD(0.1f), SparseCategoricalCrossentropy(true));
  FitOptions o{.epochs = 1, .verbose = 0};
  o.callbacks = {std::make_shared<BackupAndRestore>(temp_path("bar_unbuilt"))};
  try {
    m.fit(small_data(), o);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("must be built before fit"), std::string::npos) << e.what();
  }
}

TEST(BackupAndRestore, DamagedBackupIsAnErrorNamingIt_OrThePreviousOneIsUsed) {
  std::string dir = temp_path("bar_damaged");
  std::filesystem::remove_all(dir);
  auto m = small_model();
  FitOptions o{.epochs = 2, .verbose = 0};
  o.callbacks = {std::make_shared<BackupAndRestore>(dir, "epoch", /*double_checkpoint=*/true,
                                                    /*delete_checkpoint=*/false)};
  m->fit(small_data(), o);
  ASSERT_EQ(next_epoch_of(dir + "/latest.ckpt"), 2);
  ASSERT_EQ(next_epoch_of(dir + "/latest.ckpt.bkp"), 1);
  std::string bytes = slurp(dir + "/latest.ckpt");
  bytes[bytes.size() / 2] ^= 0x5a;
  std::ofstream(dir + "/latest.ckpt", std::ios::binary) << bytes;
  // double_checkpoint: the previous backup (epoch 1 done) is used, so epoch 1 runs again.
  auto again = small_model();
  auto restore = std::make_shared<BackupAndRestore>(dir, "epoch", true, false);
  o.callbacks = {restore};
  History h = again->fit(small_data(), o);
  EXPECT_EQ(restore->restored_epoch(), 1);
  EXPECT_EQ(h.epochs, (std::vector<int64_t>{0, 1}));
  // Without a previous backup the damage is an error naming the file.
  std::filesystem::remove(dir + "/latest.ckpt.bkp");
  std::ofstream(dir + "/latest.ckpt", std::ios::binary) << bytes;
  auto third = small_model();
  o.callbacks = {std::make_shared<BackupAndRestore>(dir)};
  try {
    third->fit(small_data(), o);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/latest.ckpt"), std::string::npos) << e.what();
  }
}

TEST(BackupAndRestore, CompletedBackupTrainsNothingMoreAndReturnsItsHistory) {
  std::string dir = temp_path("bar_done");
  std::filesystem::remove_all(dir);
  auto m = small_model();
  FitOptions o{.epochs = 2, .verbose = 0};
  o.callbacks = {std::make_shared<BackupAndRestore>(dir, "epoch", false, /*delete_checkpoint=*/false)};
  History first = m->fit(small_data(), o);
  auto again = small_model();
  History second = again->fit(small_data(), o);
  EXPECT_EQ(second.epochs, first.epochs);
  EXPECT_EQ(second.history, first.history);
  EXPECT_EQ(again->optimizer().iterations(), m->optimizer().iterations());
  for (size_t i = 0; i < m->variables().size(); ++i) {
    EXPECT_EQ(m->variables()[i].value().to_vector(), again->variables()[i].value().to_vector());
  }
}

TEST(BackupAndRestore, EveryNBatchesRestartsTheEpochAsKerasDoes) {
  std::string dir = temp_path("bar_batches");
  std::filesystem::remove_all(dir);
  auto m = small_model();
  FitOptions o{.epochs = 1, .verbose = 0};
  o.callbacks = {std::make_shared<BackupAndRestore>(dir, int64_t(3), false, false)};
  m->fit(small_data(), o);  // 4 batches: saved after the third, epoch 0 not complete then
  EXPECT_EQ(next_epoch_of(dir + "/latest.ckpt"), 0);
}

}  // namespace
