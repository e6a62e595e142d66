#include "tests/ort_runner.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/npy.h"
#include "tests/temp_path.h"

namespace kiln::testing {
namespace {

namespace fs = std::filesystem;

fs::path repo_root() {
  if (const char* root = std::getenv("KILN_REPO_ROOT")) return root;
  fs::path script = "scripts/onnx_check.py";
  if (const char* srcdir = std::getenv("TEST_SRCDIR")) script = fs::path(srcdir) / "kiln" / script;
  std::error_code ec;
  fs::path real = fs::canonical(script, ec);
  if (ec) return fs::current_path();
  return real.parent_path().parent_path();
}

std::string shell_quoted(const fs::path& p) { return "'" + p.string() + "'"; }

int run_command(const std::string& cmd, std::string& log) {
  std::string out = temp_path("ort_command.log");
  int rc = std::system((cmd + " > " + shell_quoted(out) + " 2>&1").c_str());
  std::ifstream in(out);
  std::stringstream ss;
  ss << in.rdbuf();
  log = ss.str();
  return rc;
}

}  // namespace

std::string onnx_checker(const std::string& model_path) {
  std::string log;
  int rc = run_command("/usr/bin/python3 " + shell_quoted(repo_root() / "scripts/onnx_check.py") + " check " + shell_quoted(model_path), log);
  EXPECT_EQ(rc, 0) << "onnx.checker rejected " << model_path << ":\n" << log;
  return log;
}

std::optional<std::vector<Tensor>> run_onnx_runtime(const std::string& model_path, const std::vector<Tensor>& inputs) {
  fs::path py = repo_root() / ".venv/bin/python";
  std::string log;
  if (!fs::exists(py) || run_command(shell_quoted(py) + " -c 'import onnxruntime'", log) != 0) {
    ADD_FAILURE() << "ONNX Runtime is missing: no importable onnxruntime in " << py
                  << ". Run scripts/setup (it makes .venv with onnxruntime 1.31.1 from PyPI). " << log;
    return std::nullopt;
  }
  fs::path dir = temp_path(fs::path(model_path).stem().string() + "_ort");
  fs::create_directories(dir);
  std::string cmd = shell_quoted(py) + " " + shell_quoted(repo_root() / "scripts/onnx_check.py") + " run " + shell_quoted(model_path) + " " + shell_quoted(dir);
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::string p = (dir / ("input_" + std::to_string(i) + ".npy")).string();
    data::write_npy(p, inputs[i]);
    cmd += " " + shell_quoted(p);
  }
  if (run_command(cmd, log) != 0) {
    ADD_FAILURE() << "ONNX Runtime failed on " << model_path << ":\n" << log;
    return std::nullopt;
  }
  std::vector<Tensor> outputs;
  for (int i = 0;; ++i) {
    fs::path out = dir / ("output_" + std::to_string(i) + ".npy");
    if (!fs::exists(out)) break;
    outputs.push_back(data::read_npy(out.string()));
  }
  return outputs;
}

}  // namespace kiln::testing
