// LibTorch C++ twin of kiln_train_bench (and of torch_train_bench.py): the same models, batch,
// loss and Adam step on a fixed random batch, with no Python in the way. Prints
// "images_per_sec=<value>" for compare.py.
//   libtorch_train_bench --model mlp|cnn|resnet18|mobilenet_v3_small --dtype bf16 --batch 32
//                        --steps 50 --warmup 5 --threads 2 --adam plain|fused
//   --adam plain: torch::optim::Adam (LibTorch's C++ optimizer, one tensor at a time);
//   --adam fused: ATen's fused CPU kernel at::_fused_adam_ over all parameters (what Python's
//   torch.optim.Adam(fused=True) calls).
// MobileNetV3Small lives in benchmarks/libtorch_mobilenet_v3.h.
// Built by benchmarks/build_libtorch_bench.sh against the torch wheel in .venv-peers (its
// headers and libtorch_cpu.so); not a Bazel target, so CI never needs the wheel.
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "benchmarks/libtorch_mobilenet_v3.h"

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}

torch::nn::Sequential mlp() {
  return torch::nn::Sequential(torch::nn::Flatten(), torch::nn::Linear(784, 128), torch::nn::ReLU(),
                               torch::nn::Linear(128, 64), torch::nn::ReLU(), torch::nn::Linear(64, 10));
}

torch::nn::Conv2dOptions conv3x3(int64_t cin, int64_t cout, int64_t stride = 1, bool bias = true) {
  return torch::nn::Conv2dOptions(cin, cout, 3).stride(stride).padding(1).bias(bias);
}

// The Keras image-classification CNN, as kiln::nn::applications::keras_cnn.
torch::nn::Sequential keras_cnn() {
  return torch::nn::Sequential(
      torch::nn::Conv2d(conv3x3(1, 16)), torch::nn::ReLU(), torch::nn::MaxPool2d(2),
      torch::nn::Conv2d(conv3x3(16, 32)), torch::nn::ReLU(), torch::nn::MaxPool2d(2),
      torch::nn::Conv2d(conv3x3(32, 64)), torch::nn::ReLU(), torch::nn::MaxPool2d(2), torch::nn::Flatten(),
      torch::nn::Linear(64 * 3 * 3, 128), torch::nn::ReLU(), torch::nn::Linear(128, 10));
}

struct BasicBlockImpl : torch::nn::Module {
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential shortcut;
  BasicBlockImpl(int64_t cin, int64_t cout, int64_t stride) {
    conv1 = register_module("conv1", torch::nn::Conv2d(conv3x3(cin, cout, stride, false)));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(cout));
    conv2 = register_module("conv2", torch::nn::Conv2d(conv3x3(cout, cout, 1, false)));
    bn2 = register_module("bn2", torch::nn::BatchNorm2d(cout));
    if (stride != 1 || cin != cout) {
      shortcut->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(cin, cout, 1).stride(stride).bias(false)));
      shortcut->push_back(torch::nn::BatchNorm2d(cout));
    }
    register_module("shortcut", shortcut);
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor y = torch::relu(bn1(conv1(x)));
    y = bn2(conv2(y));
    return torch::relu(y + (shortcut->is_empty() ? x : shortcut->forward(x)));
  }
};
TORCH_MODULE(BasicBlock);

// CIFAR-style ResNet-18, as kiln::nn::applications::resnet18 and torch_train_bench.ResNet18.
struct ResNet18Impl : torch::nn::Module {
  torch::nn::Sequential stem, blocks;
  torch::nn::Linear head{nullptr};
  ResNet18Impl() {
    stem = register_module("stem", torch::nn::Sequential(torch::nn::Conv2d(conv3x3(3, 64, 1, false)),
                                                         torch::nn::BatchNorm2d(64), torch::nn::ReLU()));
    int64_t cin = 64, stage = 0;
    for (int64_t cout : {64, 128, 256, 512}) {
      blocks->push_back(BasicBlock(cin, cout, stage++ == 0 ? 1 : 2));
      blocks->push_back(BasicBlock(cout, cout, 1));
      cin = cout;
    }
    register_module("blocks", blocks);
    head = register_module("head", torch::nn::Linear(512, 10));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = blocks->forward(stem->forward(x));
    return head(torch::flatten(torch::adaptive_avg_pool2d(x, {1, 1}), 1));
  }
};
TORCH_MODULE(ResNet18);

// The fused path of torch.optim.Adam(fused=True): moments and step counts kept here, one call
// of ATen's fused kernel per step.
struct FusedAdam {
  std::vector<torch::Tensor> params, exp_avgs, exp_avg_sqs, steps;
  double lr;
  FusedAdam(std::vector<torch::Tensor> p, double lr) : params(std::move(p)), lr(lr) {
    for (const auto& t : params) {
      exp_avgs.push_back(torch::zeros_like(t, torch::MemoryFormat::Preserve));
      exp_avg_sqs.push_back(torch::zeros_like(t, torch::MemoryFormat::Preserve));
      steps.push_back(torch::zeros({}, torch::kFloat));
    }
  }
  void zero_grad() {
    for (auto& p : params) p.mutable_grad().reset();
  }
  void step() {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> grads;
    for (const auto& p : params) grads.push_back(p.grad());
    for (auto& s : steps) s.add_(1);
    at::_fused_adam_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, lr, 0.9, 0.999,
                     /*weight_decay=*/0.0, /*eps=*/1e-8, /*amsgrad=*/false, /*maximize=*/false);
  }
};

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string model_name = arg(argc, argv, "model", "mlp");
    const std::string dtype = arg(argc, argv, "dtype", "f32");
    const std::string adam = arg(argc, argv, "adam", "fused");
    const int64_t batch = std::stoll(arg(argc, argv, "batch", "32"));
    const int steps = std::stoi(arg(argc, argv, "steps", "50"));
    const int warmup = std::stoi(arg(argc, argv, "warmup", "5"));
    if (dtype != "f32" && dtype != "bf16") throw std::invalid_argument("--dtype must be f32 or bf16, got " + dtype);
    if (adam != "plain" && adam != "fused") throw std::invalid_argument("--adam must be plain or fused, got " + adam);
    // As the other twins: flush denormals (Adam's moments reach them on one fixed batch).
    at::globalContext().setFlushDenormal(true);
    torch::set_num_threads(std::stoi(arg(argc, argv, "threads", "2")));
    torch::manual_seed(1);

    std::function<torch::Tensor(torch::Tensor)> forward;
    std::shared_ptr<torch::nn::Module> module;
    torch::Tensor x;
    double scale = 1.0 / 255;
    if (model_name == "mlp" || model_name == "cnn") {
      auto seq = model_name == "mlp" ? mlp() : keras_cnn();
      module = seq.ptr();
      forward = [seq](torch::Tensor t) mutable { return seq->forward(t); };
      x = torch::rand({batch, 1, 28, 28}) * 255;
    } else if (model_name == "resnet18") {
      ResNet18 net;
      module = net.ptr();
      forward = [net](torch::Tensor t) mutable { return net->forward(t); };
      x = torch::rand({batch, 3, 32, 32});
      scale = 1.0;
    } else if (model_name == "mobilenet_v3_small") {
      // Keras's MobileNetV3Small, 10 classes; it rescales [0, 255] pixels itself.
      libtorch_bench::MobileNetV3Small net(libtorch_bench::kMobileNetChannels, 10);
      module = net.ptr();
      forward = [net](torch::Tensor t) mutable { return net->forward(t); };
      x = torch::rand({batch, libtorch_bench::kMobileNetChannels, libtorch_bench::kMobileNetHeight,
                       libtorch_bench::kMobileNetWidth}) *
          255;
      scale = 1.0;
    } else {
      throw std::invalid_argument("--model must be mlp, cnn, resnet18 or mobilenet_v3_small, got " + model_name);
    }
    if (model_name != "mlp") {  // NHWC, as Kiln and the Python twin
      torch::NoGradGuard no_grad;
      for (auto& p : module->parameters()) {
        if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
      }
      x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    }
    module->train();
    torch::Tensor y = torch::arange(batch, torch::kLong) % 10;
    std::vector<torch::Tensor> params = module->parameters();
    torch::optim::Adam plain(params, torch::optim::AdamOptions(1e-3));
    FusedAdam fused(params, 1e-3);
    const bool bf16 = dtype == "bf16";

    auto step = [&]() {
      if (adam == "fused") fused.zero_grad();
      else plain.zero_grad();
      torch::Tensor out;
      {
        // torch.autocast("cpu", bfloat16): bf16 compute, f32 master weights.
        at::autocast::set_autocast_enabled(at::kCPU, bf16);
        at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
        out = forward(x * scale);
        at::autocast::set_autocast_enabled(at::kCPU, false);
        at::autocast::clear_cache();
      }
      torch::Tensor loss = torch::nn::functional::cross_entropy(out.to(torch::kFloat), y);
      loss.backward();
      if (adam == "fused") fused.step();
      else plain.step();
      return loss;
    };
    for (int i = 0; i < warmup; ++i) step();
    auto start = std::chrono::steady_clock::now();
    torch::Tensor loss;
    for (int i = 0; i < steps; ++i) loss = step();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    int64_t param_count = 0;
    for (const auto& p : params) param_count += p.numel();
    std::printf("images_per_sec=%.3f loss=%.4f params=%lld libtorch=%s\n", steps * batch / secs, loss.item<float>(),
                static_cast<long long>(param_count), TORCH_VERSION);
  } catch (const c10::Error& e) {  // its what() carries a C++ backtrace; the message is enough
    std::fprintf(stderr, "libtorch_train_bench: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "libtorch_train_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
