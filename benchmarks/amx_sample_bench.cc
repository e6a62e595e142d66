// One configuration of the IPEX AMX sample (ResNet-50 training on CIFAR-10-shaped images):
//   amx_sample_bench --config fp32|bf16|amx [--size 224] [--batch 16] [--steps 4] [--warmup 1]
//                    [--optimizer sgd|adam] [--seed 1]
// Prints key=value lines for benchmarks/amx_sample.py. A configuration runs in its own process
// because oneDNN takes an ISA cap only before it generates its first kernel.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "autograd/gradient_tape.h"
#include "benchmarks/amx_sample_data.h"
#include "nn/applications/applications.h"
#include "nn/losses.h"
#include "nn/policy.h"
#include "optim/optimizers.h"
#include "tensor/onednn/isa.h"
#include "tensor/random.h"
#include "tensor/threading.h"

namespace {

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}

// The sample's rows: FP32 as oneDNN picks; BF16 with oneDNN capped at AVX512-BF16 (its
// ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16); BF16 uncapped, which is AMX where the CPU has it.
// Returns false (after saying why) when this CPU cannot run the row as named.
bool set_up_isa(const std::string& config) {
  using kiln::cpu::Isa;
  Isa needed = config == "bf16" ? Isa::avx512_core_bf16 : config == "amx" ? Isa::amx : Isa::sse41;
  if (!kiln::cpu::isa_available(needed)) {
    std::printf("unavailable=no %s on this CPU (detected %s)\n", kiln::cpu::isa_name(needed),
                kiln::cpu::isa_name(kiln::cpu::detected_isa()));
    return false;
  }
  if (config == "bf16") kiln::cpu::set_max_isa(Isa::avx512_core_bf16);
  return true;
}

// The oneDNN implementations the convolutions ran, most used first, so a row shows which
// kernels it measured ("brg:avx512_core_amx" is AMX).
std::string conv_impls() {
  std::map<std::string, int> count;
  for (const auto& r : kiln::cpu::impl_log()) {
    if (r.op.rfind("conv2d", 0) == 0) count[r.impl]++;
  }
  std::multimap<int, std::string, std::greater<int>> ranked;
  for (const auto& [impl, n] : count) ranked.emplace(n, impl);
  std::string out;
  for (const auto& [n, impl] : ranked) out += (out.empty() ? "" : ",") + impl + ":" + std::to_string(n);
  return out.empty() ? "none" : out;
}

std::unique_ptr<kiln::optim::Optimizer> make_optimizer(const std::string& name) {
  // The sample's SGD(lr=0.001, momentum=0.9); Adam at Keras's defaults.
  if (name == "sgd") return std::make_unique<kiln::optim::SGD>(kiln::optim::SGDOptions{.learning_rate = 1e-3f, .momentum = 0.9f});
  if (name == "adam") return std::make_unique<kiln::optim::Adam>(1e-3f);
  throw std::invalid_argument("--optimizer must be sgd or adam, got '" + name + "'");
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--print_config") {
      std::printf("%s\n%s\n", kiln::cpu::best_known_config().describe().c_str(), kiln::cpu::isa_report().c_str());
      return 0;
    }
  }
  kiln::cpu::apply_best_known_config(argc, argv, /*verbose=*/false);
  try {
    const std::string config = arg(argc, argv, "config", "fp32");
    if (config != "fp32" && config != "bf16" && config != "amx") {
      throw std::invalid_argument("--config must be fp32, bf16 or amx, got '" + config + "'");
    }
    const int64_t size = std::stoll(arg(argc, argv, "size", "224"));
    const int64_t batch = std::stoll(arg(argc, argv, "batch", "16"));
    const int steps = std::stoi(arg(argc, argv, "steps", "4"));
    const int warmup = std::stoi(arg(argc, argv, "warmup", "1"));
    const uint64_t seed = std::stoull(arg(argc, argv, "seed", "1"));
    if (size < 32 || batch < 1 || steps < 1 || warmup < 0) {
      throw std::invalid_argument("need --size >= 32 (Keras's ResNet-50 minimum), --batch >= 1, --steps >= 1");
    }
    if (!set_up_isa(config)) return 0;

    // A few distinct batches cycle, so memory stays bounded at the sample's sizes (128 x 224^2).
    auto data = kiln::bench::synthetic_cifar10(std::min<int64_t>(steps + warmup, 4), batch, size, seed);
    kiln::nn::set_global_policy(config == "fp32" ? "float32" : "mixed_bfloat16");
    kiln::set_global_seed(seed);
    auto model = kiln::nn::applications::resnet50({size, size, 3}, 10);
    kiln::nn::set_global_policy("float32");
    auto optimizer = make_optimizer(arg(argc, argv, "optimizer", "sgd"));
    kiln::nn::SparseCategoricalCrossentropy loss_fn(/*from_logits=*/true);
    auto vars = model->trainable_variables();

    int step = 0;
    auto train_step = [&] {
      const auto& b = data[step++ % data.size()];
      std::vector<kiln::Tensor> grads;
      kiln::Tensor loss;
      {
        kiln::GradientTape tape;
        loss = loss_fn(b.labels, (*model)(b.images, /*training=*/true));
        grads = tape.gradient(loss, vars);
      }
      optimizer->apply_gradients(grads, vars);
      return loss.item();
    };
    float first = NAN, last = NAN;
    for (int i = 0; i < warmup; ++i) first = train_step();  // creates and caches the primitives
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) {
      last = train_step();
      if (i == 0 && warmup == 0) first = last;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    std::printf("effective_isa=%s\n", kiln::cpu::isa_name(kiln::cpu::effective_isa()));
    std::printf("conv_impls=%s\n", conv_impls().c_str());
    std::printf("train_seconds=%.3f images_per_sec=%.3f\n", secs, steps * batch / secs);
    std::printf("loss_first=%.4f loss_last=%.4f\n", first, last);
    if (!std::isfinite(last)) {
      std::fprintf(stderr, "amx_sample_bench: the loss is not finite\n");
      return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amx_sample_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
