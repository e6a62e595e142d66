// Keras's MobileNetV3Small in LibTorch C++, module for module the PyTorch twin in
// benchmarks/torch_mobilenet_v3.py (see its docstring for how it follows Keras: widths, kernels,
// ReLU / hard-swish, hard-sigmoid squeeze-excite, BatchNorm eps 1e-3 momentum 0.999, the built-in
// Rescaling(1/127.5, -1), the 1x1-conv head with Dropout(0.2), logits out, k//2 conv padding).
// Included by benchmarks/libtorch_train_bench.cc only.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace libtorch_bench {

// The benchmark's input (H, W, C), as MOBILENET_INPUT in torch_mobilenet_v3.py and
// benchmarks/workloads.cc.
constexpr int64_t kMobileNetHeight = 128, kMobileNetWidth = 128, kMobileNetChannels = 3;

// Keras's _depth: round to a multiple of divisor, never dropping more than 10%.
inline int64_t mobilenet_depth(double v, int64_t divisor = 8) {
  int64_t rounded = std::max<int64_t>(divisor, static_cast<int64_t>(v + divisor / 2.0) / divisor * divisor);
  if (rounded < 0.9 * v) rounded += divisor;
  return rounded;
}

enum class MobileNetActivation { kRelu, kHardSwish };

inline torch::Tensor activate(torch::Tensor x, MobileNetActivation a) {
  return a == MobileNetActivation::kHardSwish ? torch::hardswish(x) : torch::relu(x);
}

inline torch::nn::BatchNorm2d mobilenet_bn(int64_t channels) {
  // Keras momentum 0.999 is PyTorch momentum 0.001.
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(channels).eps(1e-3).momentum(0.001));
}

inline torch::nn::Conv2d pointwise(int64_t cin, int64_t cout, bool bias) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(cin, cout, 1).bias(bias));
}

// Conv (no bias) + BatchNorm + activation, the unit the stem, the blocks and the last conv share.
struct ConvBnActImpl : torch::nn::Module {
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  MobileNetActivation activation;
  ConvBnActImpl(torch::nn::Conv2dOptions options, MobileNetActivation activation) : activation(activation) {
    const int64_t cout = options.out_channels();
    conv = register_module("conv", torch::nn::Conv2d(options.bias(false)));
    bn = register_module("bn", mobilenet_bn(cout));
  }
  torch::Tensor forward(torch::Tensor x) { return activate(bn(conv(x)), activation); }
};
TORCH_MODULE(ConvBnAct);

struct SqueezeExciteImpl : torch::nn::Module {
  torch::nn::Conv2d reduce{nullptr}, expand{nullptr};
  SqueezeExciteImpl(int64_t filters, double se_ratio) {
    const int64_t squeezed = mobilenet_depth(filters * se_ratio);
    reduce = register_module("reduce", pointwise(filters, squeezed, true));
    expand = register_module("expand", pointwise(squeezed, filters, true));
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor s = torch::mean(x, {2, 3}, /*keepdim=*/true);
    return x * torch::hardsigmoid(expand(torch::relu(reduce(s))));
  }
};
TORCH_MODULE(SqueezeExcite);

struct InvertedResidualImpl : torch::nn::Module {
  ConvBnAct expand_conv{nullptr}, depthwise{nullptr};
  SqueezeExcite squeeze_excite{nullptr};
  torch::nn::Conv2d project{nullptr};
  torch::nn::BatchNorm2d project_bn{nullptr};
  bool residual;
  InvertedResidualImpl(int64_t infilters, double expansion, int64_t filters, int64_t kernel, int64_t stride,
                       double se_ratio, MobileNetActivation activation, int block_id)
      : residual(stride == 1 && infilters == filters) {
    int64_t expanded = infilters;
    if (block_id != 0) {  // Keras's first block has no expansion conv
      expanded = mobilenet_depth(infilters * expansion);
      expand_conv = register_module("expand", ConvBnAct(torch::nn::Conv2dOptions(infilters, expanded, 1), activation));
    }
    auto depthwise_options =
        torch::nn::Conv2dOptions(expanded, expanded, kernel).stride(stride).padding(kernel / 2).groups(expanded);
    depthwise = register_module("depthwise", ConvBnAct(depthwise_options, activation));
    if (se_ratio > 0) squeeze_excite = register_module("squeeze_excite", SqueezeExcite(expanded, se_ratio));
    project = register_module("project", pointwise(expanded, filters, false));
    project_bn = register_module("project_bn", mobilenet_bn(filters));
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor y = expand_conv ? expand_conv(x) : x;
    y = depthwise(y);
    if (squeeze_excite) y = squeeze_excite(y);
    y = project_bn(project(y));
    return residual ? x + y : y;
  }
};
TORCH_MODULE(InvertedResidual);

// MobileNetV3Small(alpha=1.0, minimalistic=False, dropout_rate=0.2), as mobilenet_v3_small() in
// torch_mobilenet_v3.py: input pixels in [0, 255], NCHW (or channels_last), logits out.
struct MobileNetV3SmallImpl : torch::nn::Module {
  torch::nn::Sequential features, head;
  MobileNetV3SmallImpl(int64_t in_channels, int64_t classes) {
    using A = MobileNetActivation;
    const A hs = A::kHardSwish, relu = A::kRelu;
    const double se = 0.25;
    struct Block {
      double expansion;
      int64_t filters, kernel, stride;
      double se_ratio;
      A activation;
    };
    // Keras's stack_fn for MobileNetV3Small (kernel 5, hard-swish and SE where not minimalistic).
    const std::vector<Block> spec = {{1, 16, 3, 2, se, relu},       {72.0 / 16, 24, 3, 2, 0, relu},
                                     {88.0 / 24, 24, 3, 1, 0, relu}, {4, 40, 5, 2, se, hs},
                                     {6, 40, 5, 1, se, hs},          {6, 40, 5, 1, se, hs},
                                     {3, 48, 5, 1, se, hs},          {3, 48, 5, 1, se, hs},
                                     {6, 96, 5, 2, se, hs},          {6, 96, 5, 1, se, hs},
                                     {6, 96, 5, 1, se, hs}};
    features->push_back(ConvBnAct(torch::nn::Conv2dOptions(in_channels, 16, 3).stride(2).padding(1), hs));
    int64_t channels = 16;
    for (size_t i = 0; i < spec.size(); ++i) {
      const Block& b = spec[i];
      const int64_t filters = mobilenet_depth(b.filters);
      features->push_back(InvertedResidual(channels, b.expansion, filters, b.kernel, b.stride, b.se_ratio,
                                           b.activation, static_cast<int>(i)));
      channels = filters;
    }
    const int64_t last_conv = mobilenet_depth(channels * 6), last_point = 1024;
    features->push_back(ConvBnAct(torch::nn::Conv2dOptions(channels, last_conv, 1), hs));
    register_module("features", features);
    head->push_back(pointwise(last_conv, last_point, true));
    head->push_back(torch::nn::Functional([](torch::Tensor t) { return torch::hardswish(t); }));
    head->push_back(torch::nn::Dropout(0.2));
    head->push_back(pointwise(last_point, classes, true));
    head->push_back(torch::nn::Flatten());
    register_module("head", head);
  }
  torch::Tensor forward(torch::Tensor x) {
    x = features->forward(x * (1.0 / 127.5) - 1.0);  // Keras's Rescaling(1/127.5, offset=-1)
    return head->forward(torch::mean(x, {2, 3}, /*keepdim=*/true));
  }
};
TORCH_MODULE(MobileNetV3Small);

}  // namespace libtorch_bench
