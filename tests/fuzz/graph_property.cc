#include "tests/fuzz/graph_property.h"

#include <cmath>
#include <new>

#include "runtime_export/inference_model.h"
#include "tensor/random.h"
#include "tests/fuzz/fuzz_support.h"

namespace kiln::fuzz {
namespace {

thread_local std::string t_why;

bool is_int8(DType d) { return d == DType::u8 || d == DType::s8; }

// Small nonzero inputs, so that a path computing something else shows.
std::vector<Tensor> inputs_for(const graph::Graph& g) {
  std::vector<Tensor> feeds;
  uint64_t seed = 17;
  for (int i : g.inputs) {
    Shape s = g.values[i].shape;
    for (int64_t& d : s) d = d == graph::kBatch ? 2 : d;
    const DType dt = g.values[i].dtype;
    if (dt == DType::f32 || dt == DType::bf16) {
      feeds.push_back(random_uniform(s, -1.f, 1.f, seed++, dt));
    } else if (is_int8(dt)) {
      std::vector<float> v = random_uniform(s, 0.f, 4.f, seed++).to_vector();
      for (float& e : v) e = std::floor(e);
      feeds.push_back(Tensor::from_vector(v, s, dt));
    } else {
      feeds.push_back(Tensor::zeros(s, dt));
    }
  }
  return feeds;
}

// Runs f; true when it returned, false for a std::exception; other escapes are bugs.
template <typename F>
bool runs(const std::string& source, const char* path, std::string& error, F&& f) {
  try {
    f();
    return true;
  } catch (const std::bad_alloc& e) {
    bug("graph", source + ": std::bad_alloc escaped " + path + ": " + e.what());
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    bug("graph", source + ": an exception not derived from std::exception escaped " + path);
  }
  error = error.empty() ? "(bug)" : error;
  return false;
}

std::string compare(const std::vector<Tensor>& want, const std::vector<Tensor>& got, bool int8_graph) {
  if (want.size() != got.size()) {
    return "Graph::run gave " + std::to_string(want.size()) + " outputs, InferenceModel " + std::to_string(got.size());
  }
  for (size_t k = 0; k < want.size(); ++k) {
    if (want[k].dtype() != got[k].dtype() || want[k].shape() != got[k].shape()) {
      return "output " + std::to_string(k) + ": Graph::run gave " + want[k].describe() + ", InferenceModel " +
             got[k].describe();
    }
    std::vector<float> a = want[k].to_vector(), b = got[k].to_vector();
    double scale = 0;
    for (float v : a) scale = std::isfinite(v) ? std::max(scale, std::fabs(static_cast<double>(v))) : scale;
    const double tolerance = (int8_graph ? 0.25 : 1e-3) * std::max(scale, 1.0);
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::isnan(a[i]) && std::isnan(b[i])) continue;
      if (a[i] == b[i]) continue;
      if (std::fabs(static_cast<double>(a[i]) - b[i]) <= tolerance) continue;
      return "output " + std::to_string(k) + " element " + std::to_string(i) + ": Graph::run " + std::to_string(a[i]) +
             ", InferenceModel " + std::to_string(b[i]) + " (tolerance " + std::to_string(tolerance) + ")";
    }
  }
  return "";
}

}  // namespace

const std::string& last_disagreement() { return t_why; }

Agreement check_run_agreement(const graph::Graph& g, const std::string& source, bool report) {
  t_why.clear();
  bool int8_graph = false;
  for (const graph::Value& v : g.values) {
    int64_t n = 1;
    for (int64_t d : v.shape) n = d > (1 << 18) || n > (1 << 18) ? (1 << 19) : n * (d == graph::kBatch ? 2 : d);
    if (n > (1 << 18)) return Agreement::too_big;
    int8_graph = int8_graph || is_int8(v.dtype);
  }
  std::vector<Tensor> feeds = inputs_for(g);
  std::vector<Tensor> want, got;
  std::string eager_error, model_error;
  const bool eager_ran = runs(source, "Graph::run", eager_error, [&] { want = g.run(feeds); });
  const bool model_ran = runs(source, "InferenceModel", model_error, [&] {
    runtime_export::InferenceModel model(g);
    got = model.run(feeds);
  });
  if (eager_ran != model_ran) {
    t_why = eager_ran ? "Graph::run ran but InferenceModel threw: " + model_error
                      : "InferenceModel ran but Graph::run threw: " + eager_error;
  } else if (eager_ran) {
    t_why = compare(want, got, int8_graph);
  }
  if (t_why.empty()) return eager_ran ? Agreement::both_ran : Agreement::both_threw;
  if (report) bug("graph", source + ": " + t_why);
  return Agreement::disagree;
}

}  // namespace kiln::fuzz
