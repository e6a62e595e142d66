#include "nn/applications/mobilenet_v3.h"

#include <functional>
#include <string>

#include "nn/applications/image_input.h"
#include "nn/applications/round_channels.h"
#include "nn/layers/layers.h"

namespace kiln::nn::applications {
namespace {

using ActivationFn = std::function<SymbolicTensor(const SymbolicTensor&)>;

SymbolicTensor relu(const SymbolicTensor& x) { return ReLU()(x); }
SymbolicTensor hard_swish(const SymbolicTensor& x) { return Activation("hard_swish")(x); }

BatchNormalizationOptions keras_bn() {
  BatchNormalizationOptions bn;
  bn.epsilon = 1e-3f;
  bn.momentum = 0.999f;
  return bn;
}

SymbolicTensor conv1x1(const SymbolicTensor& x, int64_t filters, bool use_bias, const std::string& name) {
  Conv2DOptions opt;
  opt.padding = "same";
  opt.use_bias = use_bias;
  return Conv2D(filters, 1, "", opt, name)(x);
}

// Keras's _se_block; hard_sigmoid there is ReLU(6)(x + 3) / 6, Keras 3's hard_sigmoid exactly.
SymbolicTensor squeeze_excite(const SymbolicTensor& inputs, int64_t filters, float se_ratio, const std::string& prefix) {
  SymbolicTensor x = GlobalAveragePooling2D(true, prefix + "squeeze_excite_avg_pool")(inputs);
  x = conv1x1(x, round_channels(filters * se_ratio), true, prefix + "squeeze_excite_conv");
  x = ReLU(std::nullopt, 0.f, 0.f, prefix + "squeeze_excite_relu")(x);
  x = conv1x1(x, filters, true, prefix + "squeeze_excite_conv_1");
  x = Activation("hard_sigmoid")(x);
  return Multiply(prefix + "squeeze_excite_mul")({inputs, x});
}

// Keras's _inverted_res_block: 1x1 expand (not in block 0), depthwise kxk (explicitly padded
// when strided), optional squeeze-excite, 1x1 linear projection, residual when shapes allow.
SymbolicTensor inverted_res_block(const SymbolicTensor& in, double expansion, int64_t filters, int64_t kernel,
                                  int64_t stride, float se_ratio, const ActivationFn& activation, int block_id) {
  const int64_t infilters = in.shape().back();
  std::string prefix = "expanded_conv_";
  SymbolicTensor x = in;
  if (block_id) {
    prefix = "expanded_conv_" + std::to_string(block_id) + "_";
    x = conv1x1(x, round_channels(infilters * expansion), false, prefix + "expand");
    x = activation(BatchNormalization(keras_bn(), prefix + "expand_bn")(x));
  }
  if (stride == 2) x = ZeroPadding2D(correct_pad(x.shape(), kernel), prefix + "depthwise_pad")(x);
  DepthwiseConv2DOptions dw;
  dw.strides = {stride, stride};
  dw.padding = stride == 1 ? "same" : "valid";
  dw.use_bias = false;
  x = DepthwiseConv2D(kernel, "", dw, prefix + "depthwise")(x);
  x = activation(BatchNormalization(keras_bn(), prefix + "depthwise_bn")(x));
  if (se_ratio > 0) x = squeeze_excite(x, round_channels(infilters * expansion), se_ratio, prefix);
  x = conv1x1(x, filters, false, prefix + "project");
  x = BatchNormalization(keras_bn(), prefix + "project_bn")(x);
  if (stride == 1 && infilters == filters) x = Add(prefix + "add")({in, x});
  return x;
}

using StackFn = std::function<SymbolicTensor(SymbolicTensor, int64_t kernel, const ActivationFn&, float se_ratio)>;

// Keras's MobileNetV3(): stem, the model's stack, 1x1 conv to 6x the last block's width, head.
std::unique_ptr<Model> mobilenet_v3(const std::string& application, const StackFn& stack, int64_t last_point_ch,
                                    const MobileNetV3Options& o, const std::string& default_name) {
  check_application_options(application, o.alpha, o.include_top, o.classes, o.include_top ? "" : o.pooling);
  if (!(o.dropout_rate >= 0 && o.dropout_rate < 1)) {
    throw std::invalid_argument(application + ": dropout_rate must be in [0, 1), got " + std::to_string(o.dropout_rate));
  }
  ImageInput in = image_input(application, o.input_shape, o.input_tensor);
  const int64_t kernel = o.minimalistic ? 3 : 5;
  const ActivationFn activation = o.minimalistic ? ActivationFn(relu) : ActivationFn(hard_swish);
  const float se_ratio = o.minimalistic ? 0.f : 0.25f;

  SymbolicTensor x = in.image;
  if (o.include_preprocessing) x = Rescaling(1.f / 127.5f, -1.f)(x);
  Conv2DOptions stem;
  stem.strides = {2, 2};
  stem.padding = "same";
  stem.use_bias = false;
  x = Conv2D(16, 3, "", stem, "conv")(x);
  x = activation(BatchNormalization(keras_bn(), "conv_bn")(x));
  x = stack(x, kernel, activation, se_ratio);
  const int64_t last_conv_ch = round_channels(x.shape().back() * 6.0);
  if (o.alpha > 1.0) last_point_ch = round_channels(last_point_ch * o.alpha);
  x = conv1x1(x, last_conv_ch, false, "conv_1");
  x = activation(BatchNormalization(keras_bn(), "conv_1_bn")(x));
  if (o.include_top) {
    x = GlobalAveragePooling2D(true)(x);
    x = activation(conv1x1(x, last_point_ch, true, "conv_2"));
    if (o.dropout_rate > 0) x = Dropout(o.dropout_rate)(x);
    x = Flatten()(conv1x1(x, o.classes, true, "logits"));
    x = Activation(o.classifier_activation, "predictions")(x);
  } else {
    x = pool_features(x, o.pooling, "avg_pool", "max_pool");
  }
  return std::make_unique<Model>(in.model_inputs, std::vector<SymbolicTensor>{x},
                                 o.name.empty() ? default_name : o.name);
}

}  // namespace

std::unique_ptr<Model> mobilenet_v3_small(const MobileNetV3Options& o) {
  const double alpha = o.alpha;
  auto stack = [alpha](SymbolicTensor x, int64_t kernel, const ActivationFn& act, float se) {
    auto depth = [alpha](double d) { return round_channels(d * alpha); };
    const ActivationFn r = relu;
    x = inverted_res_block(x, 1, depth(16), 3, 2, se, r, 0);
    x = inverted_res_block(x, 72.0 / 16, depth(24), 3, 2, 0, r, 1);
    x = inverted_res_block(x, 88.0 / 24, depth(24), 3, 1, 0, r, 2);
    x = inverted_res_block(x, 4, depth(40), kernel, 2, se, act, 3);
    x = inverted_res_block(x, 6, depth(40), kernel, 1, se, act, 4);
    x = inverted_res_block(x, 6, depth(40), kernel, 1, se, act, 5);
    x = inverted_res_block(x, 3, depth(48), kernel, 1, se, act, 6);
    x = inverted_res_block(x, 3, depth(48), kernel, 1, se, act, 7);
    x = inverted_res_block(x, 6, depth(96), kernel, 2, se, act, 8);
    x = inverted_res_block(x, 6, depth(96), kernel, 1, se, act, 9);
    x = inverted_res_block(x, 6, depth(96), kernel, 1, se, act, 10);
    return x;
  };
  return mobilenet_v3("mobilenet_v3_small", stack, 1024, o, "MobileNetV3Small");
}

std::unique_ptr<Model> mobilenet_v3_large(const MobileNetV3Options& o) {
  const double alpha = o.alpha;
  auto stack = [alpha](SymbolicTensor x, int64_t kernel, const ActivationFn& act, float se) {
    auto depth = [alpha](double d) { return round_channels(d * alpha); };
    const ActivationFn r = relu;
    x = inverted_res_block(x, 1, depth(16), 3, 1, 0, r, 0);
    x = inverted_res_block(x, 4, depth(24), 3, 2, 0, r, 1);
    x = inverted_res_block(x, 3, depth(24), 3, 1, 0, r, 2);
    x = inverted_res_block(x, 3, depth(40), kernel, 2, se, r, 3);
    x = inverted_res_block(x, 3, depth(40), kernel, 1, se, r, 4);
    x = inverted_res_block(x, 3, depth(40), kernel, 1, se, r, 5);
    x = inverted_res_block(x, 6, depth(80), 3, 2, 0, act, 6);
    x = inverted_res_block(x, 2.5, depth(80), 3, 1, 0, act, 7);
    x = inverted_res_block(x, 2.3, depth(80), 3, 1, 0, act, 8);
    x = inverted_res_block(x, 2.3, depth(80), 3, 1, 0, act, 9);
    x = inverted_res_block(x, 6, depth(112), 3, 1, se, act, 10);
    x = inverted_res_block(x, 6, depth(112), 3, 1, se, act, 11);
    x = inverted_res_block(x, 6, depth(160), kernel, 2, se, act, 12);
    x = inverted_res_block(x, 6, depth(160), kernel, 1, se, act, 13);
    x = inverted_res_block(x, 6, depth(160), kernel, 1, se, act, 14);
    return x;
  };
  return mobilenet_v3("mobilenet_v3_large", stack, 1280, o, "MobileNetV3Large");
}

}  // namespace kiln::nn::applications
