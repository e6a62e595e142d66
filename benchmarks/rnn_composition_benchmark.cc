// Issue 22's feasibility question: would an LSTM composed of oneDNN matmul primitives (and
// Kiln's own gate kernels) train faster than oneDNN 2.6's lstm_forward / lstm_backward, which
// Kiln's LSTM runs (kiln::rnn_detail, 88-94% of a Fashion-MNIST LSTM(128) training step)?
// Both sides run in this one process, alternating each repetition, on the workload's shapes:
// T = 28 steps of I = 28 inputs, U = 128 units; batches 32 and 128; f32 and (where the CPU
// has avx512_core_bf16) bf16; threads from OMP_NUM_THREADS.
//   RNN primitive: rnn_detail::rnn_forward (forward_training) and rnn_backward, as Kiln calls
//                  them (dx included: oneDNN always computes it).
//   composed:      tensor/ops/lstm_composed.h (what Kiln's LSTM trains on now) end to end, forward and backward without dx
//                  (Kiln's LSTM there reads the data: nothing wants dx), and dx apart; once per
//                  --inputs item (LstmInputGemm: x in its own projection GEMM, or merged into
//                  each step's GEMM), all of them alternating in the same repetitions.
// Before timing, the composed pass is checked against the primitive's outputs and gradients
// (exit 1 past the limit): both sides compute the same thing. Then each composed piece is
// timed alone too, for the breakdown. Prints the CPU, every median and RNN / composed: of the
// thread's CPU time at one thread (a loaded machine's preemption left out), else wall clock.
//
// bazel run -c opt //benchmarks:rnn_composition_benchmark -- [--batch 32,128] [--dtype f32,bf16]
//     [--reps 100] [--warmup 10] [--matmul rule|auto|no-brgemm] [--inputs separate,merged]
// (--matmul: the composed GEMMs' implementations, lstm_composed.h's LstmGemmChoice: Kiln's
// rule, oneDNN's first choice, or the first non-brgemm one everywhere. --inputs: the composed
// sides, each separate, merged or automatic, optionally with its own matmul choice, as in
// merged:auto; with more than one, a table divides the first side's times by each other's.)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "benchmarks/args.h"
#include "benchmarks/machine.h"
#include "tensor/onednn/isa.h"
#include "tensor/onednn/profiler.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/lstm_composed.h"
#include "tensor/ops/lstm_composed_pass.h"
#include "tensor/ops/rnn_primitive.h"
#include "tensor/random.h"
#include "tensor/threading.h"

namespace kiln {
namespace {

using rnn_detail::ComposedLstm;
using rnn_detail::LstmGemmChoice;
using rnn_detail::LstmInputGemm;
using rnn_detail::LstmShape;
using rnn_detail::RnnCell;

constexpr int64_t kSteps = 28, kInputs = 28, kUnits = 128;

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a.empty() ? "unknown" : a + " " + b + " " + c;
}

// "32,128" -> {32, 128}; throws naming the flag for anything else.
std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

std::vector<int64_t> batches_from(const std::string& text) {
  std::vector<int64_t> out;
  for (const std::string& item : split(text)) {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || v < 1) {
      throw std::invalid_argument("--batch must be a comma-separated list of integers >= 1, got '" + text + "'");
    }
    out.push_back(v);
  }
  if (out.empty()) throw std::invalid_argument("--batch must name at least one batch size");
  return out;
}

std::vector<DType> dtypes_from(const std::string& text) {
  std::vector<DType> out;
  for (const std::string& item : split(text)) {
    if (item == "f32") {
      out.push_back(DType::f32);
    } else if (item == "bf16") {
      out.push_back(DType::bf16);
    } else {
      throw std::invalid_argument("--dtype must be a comma-separated list of f32 and bf16, got '" + text + "'");
    }
  }
  if (out.empty()) throw std::invalid_argument("--dtype must name at least one dtype");
  return out;
}

// One training pass's inputs: Keras-like initial weights (the forget gate's bias 1), states
// and output gradients of the sizes a training step sees.
struct Inputs {
  Tensor x, kernel, recurrent, bias, h0, c0, dy, dh, dc;
};

Inputs make_inputs(int64_t batch, DType dtype) {
  const int64_t g = 4 * kUnits;
  Inputs in;
  in.x = cast(random_uniform({batch, kSteps, kInputs}, 0.f, 1.f, 1), dtype);
  in.kernel = cast(random_uniform({kInputs, g}, -0.1f, 0.1f, 2), dtype);
  in.recurrent = cast(random_uniform({kUnits, g}, -0.1f, 0.1f, 3), dtype);
  in.bias = random_uniform({g}, -0.1f, 0.1f, 4);
  for (int64_t j = kUnits; j < 2 * kUnits; ++j) in.bias.data<float>()[j] += 1.f;
  in.h0 = cast(random_uniform({batch, kUnits}, -0.5f, 0.5f, 5), dtype);
  in.c0 = random_uniform({batch, kUnits}, -0.5f, 0.5f, 6);
  in.dy = random_uniform({batch, kSteps, kUnits}, -0.1f, 0.1f, 7);
  in.dh = random_uniform({batch, kUnits}, -0.1f, 0.1f, 8);
  in.dc = random_uniform({batch, kUnits}, -0.1f, 0.1f, 9);
  return in;
}

// max |a - b| / max |b| over two tensors of equal size (any dtypes); NaN anywhere counts as 1.
double relative_diff(const Tensor& a, const Tensor& b) {
  const std::vector<float> va = a.to_vector(), vb = b.to_vector();
  if (va.size() != vb.size()) return 1.0;
  double diff = 0, scale = 1e-30;
  for (size_t k = 0; k < va.size(); ++k) {
    const double d = std::fabs(static_cast<double>(va[k]) - vb[k]);
    if (std::isnan(d)) return 1.0;
    diff = std::max(diff, d);
    scale = std::max(scale, static_cast<double>(std::fabs(vb[k])));
  }
  return diff / scale;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Milliseconds of wall clock and of this thread's CPU time. With one OpenMP thread every
// primitive runs on this thread, and its CPU time leaves out the slices other processes took
// on a shared machine: a 10 ms pass is preempted far more often than a 0.5 ms piece, which
// skews wall-clock medians towards the short pieces.
struct Elapsed {
  double wall = 0, cpu = 0;
};

double thread_cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

template <typename F>
Elapsed time_ms(F&& f) {
  const double c0 = thread_cpu_ms();
  const auto t0 = std::chrono::steady_clock::now();
  f();
  const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return {wall, thread_cpu_ms() - c0};
}

// The composed side's timed quantities, in the order the tables print them.
enum Column {
  kForward, kBackward, kDx,
  kPackForward, kLoad, kProjection, kStep, kGatesForward,
  kPackBackward, kGatesBackward, kRecurrentBackward, kWeights, kInputWeights, kOpPass, kColumns
};

LstmGemmChoice matmul_from(const std::string& text) {
  if (text != "rule" && text != "auto" && text != "no-brgemm") {
    throw std::invalid_argument("--matmul (or an --inputs suffix) must be rule (Kiln's), auto (oneDNN's first choice) "
                                "or no-brgemm, got '" + text + "'");
  }
  return text == "auto" ? LstmGemmChoice::onednn_first
         : text == "no-brgemm" ? LstmGemmChoice::avoid_brgemm
                               : LstmGemmChoice::rule;
}

// One composed LSTM to time: how x reaches the gates and which GEMM implementations.
struct SideSpec {
  std::string label;  // as --inputs named it
  LstmInputGemm input_gemm = LstmInputGemm::automatic;
  LstmGemmChoice matmul = LstmGemmChoice::rule;
};

// One composed LSTM's medians and its check against the primitive.
struct Side {
  SideSpec spec;
  double ms[kColumns] = {};    // medians, by the clock the tables use (see main)
  double wall[kColumns] = {};  // medians of wall-clock time
  std::string validation, implementations;
  bool valid = true;
};

struct Result {
  std::string config;
  double rnn_forward = 0, rnn_backward = 0, rnn_wall = 0;
  std::vector<Side> sides;
  int op_chunks = 1;
  std::string primitive_implementations;
  std::string primitive_profile;  // where the primitive side's time goes
  bool valid = true;
};

struct Options {
  int threads = 1;
  bool cpu_clock = true;
  LstmGemmChoice matmul = LstmGemmChoice::rule;
  std::vector<SideSpec> sides;
  int64_t reps = 0, warmup = 0;
};

Result run_config(int64_t batch, DType dtype, const Options& o) {
  Result r;
  r.config = std::string(dtype_name(dtype)) + " b" + std::to_string(batch);
  r.op_chunks = rnn_detail::row_chunks(batch);
  const Inputs in = make_inputs(batch, dtype);
  const rnn_detail::RnnWeights w{in.kernel, in.recurrent, in.bias.alias({4, kUnits}, {kUnits, 1}, 0)};
  rnn_detail::RnnWeights dw{Tensor::zeros({kInputs, 4 * kUnits}), Tensor::zeros({kUnits, 4 * kUnits}),
                            Tensor::zeros({4, kUnits})};
  std::vector<std::unique_ptr<ComposedLstm>> lstms;
  for (const SideSpec& spec : o.sides) {
    lstms.push_back(std::make_unique<ComposedLstm>(LstmShape{batch, kSteps, kInputs, kUnits, dtype}, in.kernel,
                                                   in.recurrent, in.bias, o.threads, spec.matmul, spec.input_gemm));
    r.sides.push_back(Side{spec});
  }
  // The other side: oneDNN's LSTM primitives, as Kiln ran LSTM training before the composed LSTM.
  rnn_detail::ForceLstmTrainingPath primitives(rnn_detail::LstmTrainingPath::primitive);

  // Same pass both ways: outputs and every gradient.
  rnn_detail::RnnPass pass = rnn_detail::rnn_forward(RnnCell::lstm, in.x, w, in.h0, in.c0, true);
  rnn_detail::RnnInputGrads grads =
      rnn_detail::rnn_backward(RnnCell::lstm, in.x, w, in.h0, in.c0, pass, in.dy, in.dh, in.dc, &dw);
  r.primitive_implementations =
      "rnn_forward=" + cpu::last_impl("rnn_forward") + ", rnn_backward=" + cpu::last_impl("rnn_backward");
  // bf16 rounds h, the GEMM inputs and (in oneDNN) the saved gates at different points.
  const double limit = dtype == DType::f32 ? 1e-4 : 5e-2;
  char buf[96];
  for (size_t k = 0; k < lstms.size(); ++k) {
    ComposedLstm& lstm = *lstms[k];
    Side& side = r.sides[k];
    lstm.forward(in.x, in.h0, in.c0);
    lstm.backward(in.dy, in.dh, in.dc);
    lstm.input_grad();
    side.implementations = lstm.implementations();
    const std::pair<const char*, double> checks[] = {
        {"y", relative_diff(lstm.y(), pass.y)},
        {"h", relative_diff(lstm.h(), pass.h)},
        {"c", relative_diff(lstm.c(), pass.c)},
        {"dx", relative_diff(lstm.dx(), grads.dx)},
        {"dh0", relative_diff(lstm.dh0(), grads.dh0)},
        {"dc0", relative_diff(lstm.dc0(), grads.dc0)},
        {"dkernel", relative_diff(lstm.dkernel(), dw.layer)},
        {"drecurrent", relative_diff(lstm.drecurrent(), dw.iter)},
        {"dbias", relative_diff(lstm.dbias(), dw.bias)},
    };
    for (const auto& [name, diff] : checks) {
      std::snprintf(buf, sizeof buf, "%s%s %.1e", side.validation.empty() ? "" : ", ", name, diff);
      side.validation += buf;
      side.valid = side.valid && diff <= limit;
    }
    std::snprintf(buf, sizeof buf, " (limit %.0e)", limit);
    side.validation += buf;
    r.valid = r.valid && side.valid;
  }
  if (!r.valid) return r;

  const size_t n_sides = lstms.size();
  std::vector<double> rnn_samples[2], rnn_wall;
  std::vector<std::vector<double>> samples(n_sides * kColumns), wall_samples(n_sides * kColumns);
  for (int64_t rep = 0; rep < o.warmup + o.reps; ++rep) {
    for (const Tensor& g : {dw.layer, dw.iter, dw.bias}) g.fill(0.f);
    const Elapsed rnn_fwd = time_ms([&] { pass = rnn_detail::rnn_forward(RnnCell::lstm, in.x, w, in.h0, in.c0, true); });
    const Elapsed rnn_bwd = time_ms([&] {
      grads = rnn_detail::rnn_backward(RnnCell::lstm, in.x, w, in.h0, in.c0, pass, in.dy, in.dh, in.dc, &dw);
    });
    if (rep >= o.warmup) {
      rnn_samples[0].push_back(o.cpu_clock ? rnn_fwd.cpu : rnn_fwd.wall);
      rnn_samples[1].push_back(o.cpu_clock ? rnn_bwd.cpu : rnn_bwd.wall);
      rnn_wall.push_back(rnn_fwd.wall + rnn_bwd.wall);
    }
    // The composed sides in turn, in the other order every other repetition.
    for (size_t turn = 0; turn < n_sides; ++turn) {
      const size_t k = rep % 2 ? n_sides - 1 - turn : turn;
      ComposedLstm& lstm = *lstms[k];
      Elapsed ms[kColumns];
      ms[kForward] = time_ms([&] { lstm.forward(in.x, in.h0, in.c0); });
      ms[kBackward] = time_ms([&] { lstm.backward(in.dy, in.dh, in.dc); });
      ms[kDx] = time_ms([&] { lstm.input_grad(); });
      // The pieces alone, in pass order (each on the buffers the previous one left).
      ms[kPackForward] = time_ms([&] { lstm.pack_forward_weights(); });
      ms[kLoad] = time_ms([&] { lstm.load(in.x, in.h0, in.c0); });
      ms[kProjection] = time_ms([&] { lstm.project_input(); });
      ms[kStep] = time_ms([&] {
        for (int64_t t = 0; t < kSteps; ++t) lstm.step_gemm(t);
      });
      ms[kGatesForward] = time_ms([&] {
        for (int64_t t = 0; t < kSteps; ++t) lstm.gates_forward(t);
      });
      ms[kPackBackward] = time_ms([&] { lstm.pack_backward_weights(); });
      ms[kGatesBackward] = time_ms([&] {
        lstm.start_backward(in.dh, in.dc);
        for (int64_t t = kSteps - 1; t >= 0; --t) lstm.gates_backward(in.dy, t);
      });
      ms[kRecurrentBackward] = time_ms([&] {
        for (int64_t t = kSteps - 1; t >= 0; --t) lstm.recurrent_backward_gemm(t);
      });
      ms[kWeights] = time_ms([&] { lstm.recurrent_weight_grad(); });
      ms[kInputWeights] = time_ms([&] { lstm.input_weight_grad(); });
      // The LSTM op's own pass, as a training step runs it: a ComposedLstm per row chunk (at
      // two threads two chunks, one per thread), made anew every forward; no dx.
      ms[kOpPass] = time_ms([&] {
        rnn_detail::ForceLstmTrainingPath composed(rnn_detail::LstmTrainingPath::composed);
        rnn_detail::ForceLstmInputGemm way(r.sides[k].spec.input_gemm);
        const rnn_detail::RnnPass op_pass = rnn_detail::rnn_forward(RnnCell::lstm, in.x, w, in.h0, in.c0, true);
        rnn_detail::rnn_backward(RnnCell::lstm, in.x, w, in.h0, in.c0, op_pass, in.dy, in.dh, in.dc, &dw, false);
      });
      if (rep < o.warmup) continue;
      for (int c = 0; c < kColumns; ++c) {
        samples[k * kColumns + c].push_back(o.cpu_clock ? ms[c].cpu : ms[c].wall);
        wall_samples[k * kColumns + c].push_back(ms[c].wall);
      }
    }
  }
  r.rnn_forward = median(rnn_samples[0]), r.rnn_backward = median(rnn_samples[1]), r.rnn_wall = median(rnn_wall);
  for (size_t k = 0; k < n_sides; ++k) {
    for (int c = 0; c < kColumns; ++c) {
      r.sides[k].ms[c] = median(samples[k * kColumns + c]);
      r.sides[k].wall[c] = median(wall_samples[k * kColumns + c]);
    }
  }

  // How much of the primitive side is oneDNN's RNN kernel itself rather than the weight
  // reorders and allocations around it (onednn::profiler times every execute() by wall clock).
  const int64_t profiled = std::min<int64_t>(o.reps, 20);
  onednn::profiler::reset();
  onednn::profiler::set_enabled(true);
  double wall = 0;
  for (int64_t k = 0; k < profiled; ++k) {
    wall += time_ms([&] {
              pass = rnn_detail::rnn_forward(RnnCell::lstm, in.x, w, in.h0, in.c0, true);
              grads = rnn_detail::rnn_backward(RnnCell::lstm, in.x, w, in.h0, in.c0, pass, in.dy, in.dh, in.dc, &dw);
            }).wall;
  }
  onednn::profiler::set_enabled(false);
  const onednn::profiler::Totals totals = onednn::profiler::totals();
  double rnn_ms = 0, reorder_ms = 0;
  for (const auto& kind : totals.by_kind) {
    if (kind.kind == "rnn") rnn_ms += kind.ms;
    if (kind.kind == "reorder") reorder_ms += kind.ms;
  }
  std::snprintf(buf, sizeof buf, "rnn primitives %.0f%%, weight reorders %.0f%%, outside oneDNN %.0f%%", 100 * rnn_ms / wall,
                100 * reorder_ms / wall, 100 * (wall - totals.primitive_ms - totals.kernel_ms) / wall);
  r.primitive_profile = buf;
  return r;
}

double composed_total(const double* m) { return m[kForward] + m[kBackward]; }

void print_tables(const std::vector<Result>& results, const Options& o, const char* clock) {
  for (size_t k = 0; k < o.sides.size(); ++k) {
    const char* name = o.sides[k].label.c_str();
    std::printf("\nRNN primitive vs composed LSTM (x %s), ms per call (medians of %s)\n", name, clock);
    std::printf("%-10s %8s %8s %8s | %8s %8s %8s %8s | %9s %11s\n", "config", "rnn fwd", "rnn bwd", "rnn tot",
                "cmp fwd", "cmp bwd", "cmp tot", "cmp dx", "rnn/cmp", "rnn/cmp+dx");
    for (const Result& r : results) {
      if (!r.valid) continue;
      const double* m = r.sides[k].ms;
      const double rnn = r.rnn_forward + r.rnn_backward, composed = composed_total(m);
      std::printf("%-10s %8.3f %8.3f %8.3f | %8.3f %8.3f %8.3f %8.3f | %8.2fx %10.2fx\n", r.config.c_str(),
                  r.rnn_forward, r.rnn_backward, rnn, m[kForward], m[kBackward], composed, m[kDx], rnn / composed,
                  rnn / (composed + m[kDx]));
    }
  }
  std::printf("\ncomposed pieces timed alone, ms of %s (28 step GEMMs / gate kernels per column; merged:\n"
              "proj and dW are in step and dWU)\n", clock);
  std::printf("%-10s %-14s %6s %6s %6s %6s %6s %6s | %6s %6s %6s %6s %6s %6s\n", "config", "x", "pack", "x->tm", "proj",
              "step", "gates", "fwd", "pack", "gates", "rec", "dU|dWU", "dW", "bwd");
  for (const Result& r : results) {
    if (!r.valid) continue;
    for (const Side& side : r.sides) {
      const double* m = side.ms;
      const double fwd = m[kPackForward] + m[kLoad] + m[kProjection] + m[kStep] + m[kGatesForward];
      const double bwd = m[kPackBackward] + m[kGatesBackward] + m[kRecurrentBackward] + m[kWeights] + m[kInputWeights];
      std::printf("%-10s %-14s %6.3f %6.3f %6.3f %6.3f %6.3f %6.3f | %6.3f %6.3f %6.3f %6.3f %6.3f %6.3f\n",
                  r.config.c_str(), side.spec.label.c_str(), m[kPackForward], m[kLoad], m[kProjection],
                  m[kStep], m[kGatesForward], fwd, m[kPackBackward], m[kGatesBackward], m[kRecurrentBackward],
                  m[kWeights], m[kInputWeights], bwd);
    }
  }
  for (size_t k = 1; k < o.sides.size(); ++k) {
    std::printf("\n%s / %s, of the medians above (and of wall-clock medians)\n", o.sides[0].label.c_str(),
                o.sides[k].label.c_str());
    std::printf("%-10s %8s %8s %8s %8s %8s\n", "config", "fwd", "bwd", "tot", "tot+dx", "wall tot");
    for (const Result& r : results) {
      if (!r.valid) continue;
      const double *a = r.sides[0].ms, *b = r.sides[k].ms;
      std::printf("%-10s %7.3fx %7.3fx %7.3fx %7.3fx %7.3fx\n", r.config.c_str(), a[kForward] / b[kForward],
                  a[kBackward] / b[kBackward], composed_total(a) / composed_total(b),
                  (composed_total(a) + a[kDx]) / (composed_total(b) + b[kDx]),
                  composed_total(r.sides[0].wall) / composed_total(r.sides[k].wall));
    }
  }
  std::printf("\nthe LSTM op's training pass (rnn_forward + rnn_backward without dx, in row chunks as Kiln splits\n"
              "the batch), ms of %s (medians); the first side / each other\n", clock);
  std::printf("%-10s %6s", "config", "chunks");
  for (const SideSpec& spec : o.sides) std::printf(" %14s", spec.label.c_str());
  for (size_t k = 1; k < o.sides.size(); ++k) std::printf(" %14s", ("/" + o.sides[k].label).c_str());
  std::printf("\n");
  for (const Result& r : results) {
    if (!r.valid) continue;
    std::printf("%-10s %6d", r.config.c_str(), r.op_chunks);
    for (const Side& side : r.sides) std::printf(" %14.3f", side.ms[kOpPass]);
    for (size_t k = 1; k < r.sides.size(); ++k) std::printf(" %13.3fx", r.sides[0].ms[kOpPass] / r.sides[k].ms[kOpPass]);
    std::printf("\n");
  }
  std::printf("\nthe same by wall clock, ms (medians)\n");
  std::printf("%-10s %8s", "config", "rnn tot");
  for (const SideSpec& spec : o.sides) std::printf(" %14s", spec.label.c_str());
  std::printf("\n");
  for (const Result& r : results) {
    if (!r.valid) continue;
    std::printf("%-10s %8.3f", r.config.c_str(), r.rnn_wall);
    for (const Side& side : r.sides) std::printf(" %14.3f", composed_total(side.wall));
    std::printf("\n");
  }
  for (size_t k = 0; k < o.sides.size(); ++k) {
    std::printf("\ncomposed (x %s) vs primitive, max |diff| / max |primitive's|:\n", o.sides[k].label.c_str());
    for (const Result& r : results) {
      if (k >= r.sides.size()) continue;
      const Side& side = r.sides[k];
      std::printf("%-10s %s%s\n", r.config.c_str(), side.validation.c_str(), side.valid ? "" : "  FAILED: not timed");
    }
  }
  std::printf("\nthe primitive side's wall time, profiled over up to 20 more passes:\n");
  for (const Result& r : results) {
    if (r.valid) std::printf("%-10s %s\n", r.config.c_str(), r.primitive_profile.c_str());
  }
  std::printf("\noneDNN implementations:\n");
  for (const Result& r : results) {
    std::printf("%-10s %s\n", r.config.c_str(), r.primitive_implementations.c_str());
    for (const Side& side : r.sides) {
      std::printf("%-10s x %s: %s\n", r.config.c_str(), side.spec.label.c_str(), side.implementations.c_str());
    }
  }
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  using namespace kiln;
  cpu::ThreadConfig threads = cpu::apply_best_known_config(argc, argv);
  std::vector<int64_t> batches;
  std::vector<DType> dtypes;
  Options o;
  o.threads = threads.omp_num_threads;
  // One thread: CPU time (see Elapsed). A team's CPU time counts every member's spinning, so
  // with more threads the tables use wall clock, and a loaded machine shows in them.
  o.cpu_clock = o.threads == 1;
  try {
    // --batch 4 --reps 2 --warmup 1 make CI's smoke run (benchmarks/smoke_microbenchmarks_test.sh).
    batches = batches_from(bench::arg_value(argc, argv, "batch", "32,128"));
    dtypes = dtypes_from(bench::arg_value(argc, argv, "dtype", "f32,bf16"));
    o.reps = bench::arg_int(argc, argv, "reps", 100, 1);
    o.warmup = bench::arg_int(argc, argv, "warmup", 10, 0);
    o.matmul = matmul_from(bench::arg_value(argc, argv, "matmul", "rule"));
    // Each item: separate, merged or automatic, optionally :rule, :auto or :no-brgemm (else --matmul's).
    for (const std::string& item : split(bench::arg_value(argc, argv, "inputs", "separate,merged"))) {
      SideSpec spec{item, LstmInputGemm::automatic, o.matmul};
      const size_t colon = item.find(':');
      const std::string way = item.substr(0, colon);
      if (way != "separate" && way != "merged" && way != "automatic") {
        throw std::invalid_argument("--inputs must be a comma-separated list of separate, merged and automatic "
                                    "(each optionally :rule, :auto or :no-brgemm), got '" + item + "'");
      }
      spec.input_gemm = way == "separate" ? LstmInputGemm::separate
                        : way == "merged" ? LstmInputGemm::merged
                                          : LstmInputGemm::automatic;
      if (colon != std::string::npos) spec.matmul = matmul_from(item.substr(colon + 1));
      o.sides.push_back(spec);
    }
    if (o.sides.empty()) throw std::invalid_argument("--inputs must name at least one way");
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "rnn_composition_benchmark: %s\n", e.what());
    return 1;
  }
  std::printf("%s\n%s\n", bench::machine_header(threads.omp_num_threads).c_str(), cpu::isa_report().c_str());
  std::printf("load average before: %s\n", load_average().c_str());
  std::printf("LSTM T=%lld I=%lld U=%lld (4 gates); training pass = forward_training + backward; "
              "%lld reps after %lld warm-up, both sides alternating; composed GEMMs: %s\n",
              static_cast<long long>(kSteps), static_cast<long long>(kInputs), static_cast<long long>(kUnits),
              static_cast<long long>(o.reps), static_cast<long long>(o.warmup),
              o.matmul == LstmGemmChoice::avoid_brgemm   ? "first non-brgemm implementation (--matmul no-brgemm)"
              : o.matmul == LstmGemmChoice::onednn_first ? "oneDNN's first choice (--matmul auto)"
                                                         : "Kiln's rule (--matmul rule)");
  std::vector<Result> results;
  for (DType dtype : dtypes) {
    if (dtype == DType::bf16 && !rnn_detail::native_bf16_rnn()) {
      std::printf("bf16: skipped, this CPU (or the ISA cap) lacks avx512_core_bf16, so Kiln runs bf16 LSTMs in f32\n");
      continue;
    }
    for (int64_t batch : batches) {
      results.push_back(run_config(batch, dtype, o));
    }
  }
  print_tables(results, o, o.cpu_clock ? "this thread's CPU time" : "wall clock");
  std::printf("load average after: %s\n", load_average().c_str());
  for (const Result& r : results) {
    if (!r.valid) return 1;
  }
  return 0;
}
