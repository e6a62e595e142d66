// Runs every example program with --smoke (its whole path on a slice of Fashion-MNIST: train,
// trace, quantize, export, MPI launch) and checks what it printed and wrote. The examples come
// from examples/examples.bzl (--examples=a,b,...); the test fails when an examples/*.cc with a
// main() is not among them, so a new example cannot be left out of CI.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "examples/example_data.h"
#include "kiln.h"
#include "runtime_export/inference_model.h"
#include "runtime_export/model_file.h"
#include "base/files.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"

namespace kiln::examples {
namespace {

namespace fs = std::filesystem;

std::vector<std::string>& listed_examples() {
  static std::vector<std::string> names;
  return names;
}

std::string shell_quoted(const std::string& s) { return "'" + s + "'"; }

struct ExampleRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// How the example is started: by itself (the distributed ones then start mpirun themselves),
// or as the ranks of the user's own `mpirun -np 2` (the multi-host way dist/ documents).
enum class Launch { self, user_mpirun };

// The example binary from the runfiles (the test runs in the workspace's runfiles folder).
// `timeout` turns a hang into a failure naming the example.
ExampleRun run_example(const std::string& name, Launch launch, const std::vector<std::string>& args) {
  std::string log = testing::temp_path(name + ".log");
  std::string cmd = "timeout --kill-after=10 120 ";
  if (launch == Launch::user_mpirun) {
    cmd += "mpirun -np 2 --bind-to none ";
    if (geteuid() == 0) cmd += "--allow-run-as-root ";
  }
  cmd += shell_quoted("examples/" + name) + " --smoke";
  for (const std::string& a : args) cmd += " " + shell_quoted(a);
  int status = std::system((cmd + " > " + shell_quoted(log) + " 2>&1").c_str());
  ExampleRun run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.output = base::read_file(log);
  return run;
}

// The number in the last match of `pattern` (its one group); NaN (and a test failure) when
// the output has none.
double printed(const ExampleRun& run, const std::string& pattern) {
  const std::regex re(pattern);
  std::string last;
  for (auto m = std::sregex_iterator(run.output.begin(), run.output.end(), re); m != std::sregex_iterator(); ++m) {
    last = (*m)[1];
  }
  if (last.empty()) {
    ADD_FAILURE() << "the output has no match for /" << pattern << "/:\n" << run.output;
    return NAN;
  }
  return std::stod(last);
}

const char* const kNumber = "([0-9]+\\.[0-9]+)";
std::string number_after(const std::string& label) { return label + " " + kNumber; }

// Training on the smoke slice reaches about 0.7-0.8 test accuracy; chance is 0.1.
constexpr double kTrainedAccuracy = 0.5;
// One prediction of the smoke test set either way may flip on a near tie.
constexpr double kOneImage = 1.0 / kSmokeTestImages;

double accuracy(const Tensor& logits, const Tensor& labels) {
  std::vector<int32_t> predicted = argmax(logits, -1).to_int32(), want = labels.to_int32();
  int right = 0;
  for (size_t i = 0; i < want.size(); ++i) right += predicted.at(i) == want[i];
  return double(right) / want.size();
}

// What an example must show beyond exit status 0. `out` is a fresh folder for its files.
struct ExampleCheck {
  std::function<std::vector<std::string>(const std::string& out)> args = [](const std::string&) {
    return std::vector<std::string>{};
  };
  std::function<void(const ExampleRun& run, const std::string& out)> verify;
  // Also run it as the ranks of the user's mpirun (each rank prints; the checks read the last).
  bool under_user_mpirun = false;
  // Also run it with each of these flag sets (after args), as SmokeRun.<example>_<key>, with
  // the same verify: the other choices of a flag that changes what is trained (--cell gru).
  std::map<std::string, std::vector<std::string>> variants;
};

ExampleCheck trained(const std::string& label) {
  return {.verify = [label](const ExampleRun& run, const std::string&) {
    EXPECT_GT(printed(run, number_after(label)), kTrainedAccuracy) << run.output;
  }};
}

ExampleCheck with_variants(ExampleCheck check, std::map<std::string, std::vector<std::string>> variants) {
  check.variants = std::move(variants);
  return check;
}

std::vector<double> read_losses(const std::string& path) {
  std::istringstream text(base::read_file(path));
  std::vector<double> out;
  for (double v; text >> v;) out.push_back(v);
  return out;
}

// char_lm --smoke trains from the checked-in initial weights with PyTorch's Adam convention;
// its 100 losses must follow the PyTorch twin's curve (examples/testdata/char_lm/README.md
// says how both were made and why the tolerance grows with the step).
ExampleCheck char_lm_matches_torch_twin() {
  const std::string twin = "examples/testdata/char_lm";
  return {.args = [twin](const std::string& out) {
            return std::vector<std::string>{"--initial_weights", twin, "--pytorch_adam", "--losses_out",
                                            out + "/losses.txt"};
          },
          .verify = [twin](const ExampleRun& run, const std::string& out) {
            ASSERT_NE(run.output.find("35149 characters, 76 distinct"), std::string::npos)
                << "the corpus is not the GPL-3 text the twin's curve was made from (see " << twin
                << "/README.md):\n" << run.output;
            std::vector<double> kiln = read_losses(out + "/losses.txt"), torch = read_losses(twin + "/torch_losses.txt");
            ASSERT_EQ(torch.size(), 100u);
            ASSERT_EQ(kiln.size(), torch.size()) << run.output;
            double worst = 0;
            for (size_t i = 0; i < kiln.size(); ++i) {
              const double step = static_cast<double>(i + 1), tolerance = 1e-5 * (1 + step / 10);
              const double relative = std::fabs(kiln[i] - torch[i]) / torch[i];
              worst = std::max(worst, relative);
              EXPECT_LE(relative, tolerance) << "step " << step << ": Kiln's loss " << kiln[i] << ", PyTorch's " << torch[i];
            }
            std::printf("char_lm vs its PyTorch twin over 100 steps: largest relative difference %.3g\n", worst);
            EXPECT_LT(kiln.back(), kiln.front() - 1.0) << "the loss did not fall";
            EXPECT_NE(run.output.find("sample (temperature"), std::string::npos) << run.output;
          }};
}

const std::map<std::string, ExampleCheck>& checks() {
  static const std::map<std::string, ExampleCheck> table = {
      {"char_lm", char_lm_matches_torch_twin()},
      {"fashion_mnist_mlp", trained("test accuracy")},
      {"lstm_fashion_mnist", with_variants(trained("test accuracy"), {{"gru", {"--cell", "gru"}}})},
      {"fashion_mnist_cnn", trained("test accuracy")},
      {"custom_training_loop", trained("validation accuracy")},
      {"trainer_subclass", trained("final validation accuracy")},
      {"distributed_custom_loop",
       {.verify =
            [](const ExampleRun& run, const std::string&) {
              EXPECT_NE(run.output.find("over 2 ranks"), std::string::npos) << run.output;
              EXPECT_GT(printed(run, number_after("validation accuracy")), kTrainedAccuracy) << run.output;
            },
        .under_user_mpirun = true}},
      {"distributed_fit",
       {.verify =
            [](const ExampleRun& run, const std::string&) {
              // Rank 0's trained weights came back: evaluating here repeats rank 0's last val_accuracy.
              double rank0 = printed(run, number_after("val_accuracy")), here = printed(run, number_after("test accuracy"));
              EXPECT_NEAR(here, rank0, 1e-4) << run.output;
              EXPECT_GT(here, kTrainedAccuracy) << run.output;
            },
        .under_user_mpirun = true}},
      {"trace_and_export",
       {.args = [](const std::string& out) { return std::vector<std::string>{"--out", out + "/cnn.onnx"}; },
        .verify =
            [](const ExampleRun& run, const std::string& out) {
              double eager = printed(run, number_after("test accuracy +Model"));
              double traced = printed(run, number_after("InferenceModel fp32"));
              EXPECT_GT(eager, kTrainedAccuracy) << run.output;
              EXPECT_NEAR(traced, eager, kOneImage + 1e-4) << run.output;
              ASSERT_TRUE(fs::exists(out + "/cnn.onnx")) << run.output;
              // ONNX Runtime, running the exported file on the same test images, is as accurate.
              data::FashionMnist fm = load_example_data(/*smoke=*/true);
              auto ort = testing::run_onnx_runtime(out + "/cnn.onnx", {fm.x_test});
              ASSERT_TRUE(ort && ort->size() == 1);
              double ort_accuracy = accuracy((*ort)[0], fm.y_test);
              std::printf("ONNX Runtime on the exported model: test accuracy %.4f\n", ort_accuracy);
              EXPECT_NEAR(ort_accuracy, eager, 2 * kOneImage + 1e-4) << run.output;
            }}},
      {"mobilenet_v3_fashion_mnist",
       {.args = [](const std::string& out) { return std::vector<std::string>{"--out", out + "/mobilenet"}; },
        .verify =
            [](const ExampleRun& run, const std::string& out) {
              // The smoke run is too short for BatchNormalization's moving statistics (Keras's
              // momentum 0.999) to settle, so its accuracy is not checked; every path must agree.
              double eager = printed(run, number_after("test accuracy +Model"));
              double traced = printed(run, number_after("InferenceModel fp32"));
              double bf16 = printed(run, number_after("bf16"));
              EXPECT_NEAR(traced, eager, kOneImage + 1e-4) << run.output;
              EXPECT_NEAR(bf16, eager, 0.05) << run.output;
              double f32 = printed(run, number_after("f32 accuracy")), int8 = printed(run, number_after("int8 accuracy"));
              EXPECT_NEAR(f32, eager, 1e-4) << run.output;
              EXPECT_GE(int8, f32 * 0.99 - 1e-4) << "the accuracy criterion (1% relative) was not kept:\n" << run.output;
              // ONNX Runtime runs the exported file within 1e-4 of the fp32 InferenceModel.
              data::FashionMnist fm = load_example_data(/*smoke=*/true);
              fm.x_test = slice(fm.x_test, 0, 0, 256);
              fm.y_test = slice(fm.y_test, 0, 0, 256);
              auto fp32 = runtime_export::load_inference_model(out + "/mobilenet.kgraph");
              Tensor kiln_logits = fp32->run(fm.x_test);
              auto ort = testing::run_onnx_runtime(out + "/mobilenet.onnx", {fm.x_test});
              ASSERT_TRUE(ort && ort->size() == 1);
              std::vector<float> a = kiln_logits.to_vector(), b = (*ort)[0].to_vector();
              ASSERT_EQ(a.size(), b.size());
              float diff = 0;
              for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::fabs(a[i] - b[i]));
              std::printf("ONNX Runtime vs Kiln fp32 on the smoke test set: max abs diff %.3g\n", diff);
              EXPECT_LE(diff, 1e-4f);
              auto int8_model = runtime_export::load_inference_model(out + "/mobilenet_int8.kgraph");
              EXPECT_EQ(int8_model->run(fm.x_test).shape(), (Shape{256, 10}));
            }}},
      {"run_foreign_onnx",
       {.args = [](const std::string& out) { return std::vector<std::string>{"--out", out + "/foreign_int8"}; },
        .verify =
            [](const ExampleRun& run, const std::string& out) {
              EXPECT_NE(run.output.find("logits [64, 10]"), std::string::npos) << run.output;
              double f32 = printed(run, number_after("f32 accuracy")), int8 = printed(run, number_after("int8 accuracy"));
              EXPECT_EQ(f32, 1.0) << "the labels are the fp32 model's own answers:\n" << run.output;
              EXPECT_GE(int8, f32 * 0.95 - 1e-4) << "the accuracy criterion (5% relative) was not kept:\n" << run.output;
              // The saved int8 model runs, and ONNX Runtime running its QDQ export picks the same
              // classes on the example's images (random_normal, seed 7).
              Tensor x = random_normal({64, 3, 32, 32}, 0.f, 1.f, 7);
              auto saved = runtime_export::load_inference_model(out + "/foreign_int8.kgraph");
              Tensor kiln_logits = saved->run(x);
              ASSERT_EQ(kiln_logits.shape(), (Shape{64, 10}));
              auto ort = testing::run_onnx_runtime(out + "/foreign_int8.onnx", {x});
              ASSERT_TRUE(ort && ort->size() == 1);
              std::vector<int32_t> a = argmax(kiln_logits, -1).to_int32(), b = argmax((*ort)[0], -1).to_int32();
              int same = 0;
              for (size_t i = 0; i < a.size(); ++i) same += a[i] == b.at(i);
              std::printf("ONNX Runtime (QDQ export) and Kiln int8 agree on %d/%zu images\n", same, a.size());
              EXPECT_GE(same, 60) << run.output;
            }}},
      {"vit_fashion_mnist",
       {.args = [](const std::string& out) { return std::vector<std::string>{"--out", out + "/vit"}; },
        .verify =
            [](const ExampleRun& run, const std::string& out) {
              double eager = printed(run, number_after("test accuracy +Model"));
              double traced = printed(run, number_after("InferenceModel fp32"));
              double bf16 = printed(run, number_after("bf16"));
              EXPECT_GT(eager, kTrainedAccuracy) << run.output;
              EXPECT_NEAR(traced, eager, kOneImage + 1e-4) << run.output;
              EXPECT_NEAR(bf16, eager, 0.05) << run.output;
              double f32 = printed(run, number_after("f32 accuracy")), int8 = printed(run, number_after("int8 accuracy"));
              EXPECT_NEAR(f32, eager, 1e-4) << run.output;
              EXPECT_GE(int8, f32 * 0.99 - 1e-4) << "the accuracy criterion (1% relative) was not kept:\n" << run.output;
              // ONNX Runtime runs the exported file within 1e-4 of the fp32 InferenceModel, at a
              // batch other than the traced one (the batch stays free).
              data::FashionMnist fm = load_example_data(/*smoke=*/true);
              auto fp32 = runtime_export::load_inference_model(out + "/vit.kgraph");
              Tensor kiln_logits = fp32->run(fm.x_test);
              auto ort = testing::run_onnx_runtime(out + "/vit.onnx", {fm.x_test});
              ASSERT_TRUE(ort && ort->size() == 1);
              std::vector<float> a = kiln_logits.to_vector(), b = (*ort)[0].to_vector();
              ASSERT_EQ(a.size(), b.size());
              float diff = 0;
              for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::fabs(a[i] - b[i]));
              std::printf("ONNX Runtime vs Kiln fp32 on the smoke test set: max abs diff %.3g\n", diff);
              EXPECT_LE(diff, 1e-4f);
              // The int8 model: LayerNorm and attention read f32, every Dense runs as qlinear.
              auto int8_model = runtime_export::load_inference_model(out + "/vit_int8.kgraph");
              EXPECT_EQ(int8_model->run(fm.x_test).shape(), (Shape{kSmokeTestImages, 10}));
              int qlinear = 0, float_linear = 0;
              for (const auto& n : int8_model->inference_graph().nodes) {
                qlinear += n.call.op() == "qlinear";
                float_linear += n.call.op() == "linear" || n.call.op() == "fused_linear";
              }
              std::printf("int8 ViT: %d qlinear, %d float linear\n", qlinear, float_linear);
              EXPECT_GT(qlinear, 0);
            }}},
      {"quantize_with_accuracy_control",
       {.args = [](const std::string& out) { return std::vector<std::string>{"--out", out + "/cnn_int8"}; },
        .verify =
            [](const ExampleRun& run, const std::string& out) {
              double f32 = printed(run, number_after("f32 accuracy")), int8 = printed(run, number_after("int8 accuracy"));
              EXPECT_GT(f32, kTrainedAccuracy) << run.output;
              EXPECT_GE(int8, f32 * 0.99 - 1e-4) << "the accuracy criterion (1% relative) was not kept:\n" << run.output;
              // The saved int8 model reproduces the accuracy the example printed, and ONNX Runtime
              // running the QDQ export picks the same classes.
              data::FashionMnist fm = load_example_data(/*smoke=*/true);
              auto saved = runtime_export::load_inference_model(out + "/cnn_int8.kgraph");
              Tensor kiln_logits = saved->run(fm.x_test);
              EXPECT_NEAR(accuracy(kiln_logits, fm.y_test), int8, 1e-4) << run.output;
              auto ort = testing::run_onnx_runtime(out + "/cnn_int8.onnx", {fm.x_test});
              ASSERT_TRUE(ort && ort->size() == 1);
              std::vector<int32_t> a = argmax(kiln_logits, -1).to_int32(), b = argmax((*ort)[0], -1).to_int32();
              int same = 0;
              for (size_t i = 0; i < a.size(); ++i) same += a[i] == b.at(i);
              std::printf("ONNX Runtime (QDQ) and Kiln int8 agree on %d/%zu test images\n", same, a.size());
              EXPECT_GE(double(same) / a.size(), 0.98)
                  << "ONNX Runtime and Kiln's int8 model agree on " << same << "/" << a.size() << " test images";
            }}},
  };
  return table;
}

class SmokeRun : public ::testing::Test {
 public:
  SmokeRun(std::string name, Launch launch, std::vector<std::string> extra_args = {})
      : name_(std::move(name)), launch_(launch), extra_args_(std::move(extra_args)) {}
  void TestBody() override {
    auto check = checks().find(name_);
    ASSERT_NE(check, checks().end()) << "examples_test has no check for the example '" << name_
                                     << "': add one to checks() in examples/examples_test.cc";
    std::string out = testing::temp_path(name_ + "_out");
    fs::create_directories(out);
    std::vector<std::string> args = check->second.args(out);
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    std::string shown = name_ + " --smoke";
    for (const std::string& a : extra_args_) shown += " " + a;
    ExampleRun run = run_example(name_, launch_, args);
    std::printf("%s: exit status %d\n%s\n", shown.c_str(), run.exit_code, run.output.c_str());
    ASSERT_EQ(run.exit_code, 0) << shown << " failed:\n" << run.output;
    check->second.verify(run, out);
  }

 private:
  std::string name_;
  Launch launch_;
  std::vector<std::string> extra_args_;
};

// Every examples/*.cc that defines main() (the sources come as data through glob) is in the
// list that examples.bzl builds and this test runs.
TEST(Examples, EveryProgramIsRun) {
  const std::vector<std::string>& listed = listed_examples();
  ASSERT_FALSE(listed.empty()) << "examples_test needs --examples=a,b,... (examples/BUILD passes it)";
  std::set<std::string> run(listed.begin(), listed.end()), programs;
  const std::regex defines_main(R"(\bint\s+main\s*\()");
  for (const fs::directory_entry& e : fs::directory_iterator("examples")) {
    if (e.path().extension() != ".cc") continue;
    if (std::regex_search(base::read_file(e.path().string()), defines_main)) programs.insert(e.path().stem().string());
  }
  EXPECT_FALSE(programs.empty()) << "no examples/*.cc with a main() in the runfiles";
  for (const std::string& p : programs) {
    EXPECT_TRUE(run.count(p)) << "examples/" << p << ".cc has a main() but examples_test does not run it: add it to "
                              << "EXAMPLES in examples/examples.bzl";
  }
  for (const std::string& name : listed) {
    EXPECT_TRUE(programs.count(name)) << "examples.bzl lists '" << name << "' but examples/" << name
                                      << ".cc has no main()";
  }
}

}  // namespace
}  // namespace kiln::examples

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const std::string flag = "--examples=";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind(flag, 0) != 0) continue;
    std::stringstream names(a.substr(flag.size()));
    for (std::string name; std::getline(names, name, ',');) {
      if (!name.empty()) kiln::examples::listed_examples().push_back(name);
    }
  }
  using kiln::examples::Launch;
  for (const std::string& name : kiln::examples::listed_examples()) {
    ::testing::RegisterTest("SmokeRun", name.c_str(), nullptr, nullptr, __FILE__, __LINE__,
                            [name]() -> ::testing::Test* { return new kiln::examples::SmokeRun(name, Launch::self); });
    auto check = kiln::examples::checks().find(name);
    if (check == kiln::examples::checks().end()) continue;
    for (const auto& [variant, args] : check->second.variants) {
      ::testing::RegisterTest("SmokeRun", (name + "_" + variant).c_str(), nullptr, nullptr, __FILE__, __LINE__,
                              [name, args]() -> ::testing::Test* {
                                return new kiln::examples::SmokeRun(name, Launch::self, args);
                              });
    }
    if (!check->second.under_user_mpirun) continue;
    ::testing::RegisterTest("SmokeRun", (name + "_under_mpirun").c_str(), nullptr, nullptr, __FILE__, __LINE__,
                            [name]() -> ::testing::Test* { return new kiln::examples::SmokeRun(name, Launch::user_mpirun); });
  }
  return RUN_ALL_TESTS();
}
