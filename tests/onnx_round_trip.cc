#include "tests/onnx_round_trip.h"

#include <gtest/gtest.h>

#include "runtime_export/onnx/onnx_export.h"
#include "runtime_export/onnx/onnx_import.h"
#include "tests/ort_runner.h"
#include "tests/temp_path.h"
#include "tests/tensor_compare.h"

namespace kiln::testing {

namespace {

void expect_outputs_near(const std::vector<Tensor>& got, const std::vector<Tensor>& want, float tolerance,
                         const std::string& what) {
  EXPECT_EQ(got.size(), want.size()) << what << ": output count";
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    EXPECT_LE(max_abs_diff(got[i], want[i]), tolerance) << what << ", output " << i;
  }
}

}  // namespace

graph::Graph expect_onnx_round_trip(const graph::Graph& g, const std::vector<Tensor>& inputs, const std::string& name,
                                    float ort_tolerance, float import_tolerance) {
  const std::vector<Tensor> want = g.run(inputs);
  const std::string path = temp_path(name + ".onnx");
  runtime_export::export_onnx(g, path);
  onnx_checker(path);
  if (auto ort = run_onnx_runtime(path, inputs)) expect_outputs_near(*ort, want, ort_tolerance, name + " in ONNX Runtime");
  graph::Graph back = runtime_export::import_onnx(path);
  expect_outputs_near(back.run(inputs), want, import_tolerance, name + " imported back");
  return back;
}

}  // namespace kiln::testing
