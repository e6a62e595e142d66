#include "nn/applications/mobilenet_v2.h"

#include <cstdio>
#include <string>

#include "nn/applications/image_input.h"
#include "nn/applications/round_channels.h"
#include "nn/layers/layers.h"

namespace kiln::nn::applications {
namespace {

BatchNormalizationOptions keras_bn() {
  BatchNormalizationOptions bn;
  bn.epsilon = 1e-3f;
  bn.momentum = 0.999f;
  return bn;
}

SymbolicTensor conv1x1(const SymbolicTensor& x, int64_t filters, const std::string& name) {
  Conv2DOptions opt;
  opt.padding = "same";
  opt.use_bias = false;
  return Conv2D(filters, 1, "", opt, name)(x);
}

// Keras's mobilenet_v2._inverted_res_block: the expansion is expansion * in_channels, unrounded;
// the projection is round_channels(int(filters * alpha)).
SymbolicTensor inverted_res_block(const SymbolicTensor& inputs, int64_t expansion, int64_t stride, double alpha,
                                  int64_t filters, int block_id) {
  const int64_t in_channels = inputs.shape().back();
  const int64_t pointwise_filters = round_channels(static_cast<double>(static_cast<int64_t>(filters * alpha)));
  std::string prefix = "block_" + std::to_string(block_id) + "_";
  SymbolicTensor x = inputs;
  if (block_id) {
    x = conv1x1(x, expansion * in_channels, prefix + "expand");
    x = BatchNormalization(keras_bn(), prefix + "expand_BN")(x);
    x = ReLU(6.f, 0.f, 0.f, prefix + "expand_relu")(x);
  } else {
    prefix = "expanded_conv_";
  }
  if (stride == 2) x = ZeroPadding2D(correct_pad(x.shape(), 3), prefix + "pad")(x);
  DepthwiseConv2DOptions dw;
  dw.strides = {stride, stride};
  dw.padding = stride == 1 ? "same" : "valid";
  dw.use_bias = false;
  x = DepthwiseConv2D(3, "", dw, prefix + "depthwise")(x);
  x = BatchNormalization(keras_bn(), prefix + "depthwise_BN")(x);
  x = ReLU(6.f, 0.f, 0.f, prefix + "depthwise_relu")(x);
  x = conv1x1(x, pointwise_filters, prefix + "project");
  x = BatchNormalization(keras_bn(), prefix + "project_BN")(x);
  if (in_channels == pointwise_filters && stride == 1) return Add(prefix + "add")({inputs, x});
  return x;
}

}  // namespace

std::unique_ptr<Model> mobilenet_v2(const MobileNetV2Options& o) {
  check_application_options("mobilenet_v2", o.alpha, o.include_top, o.classes, o.include_top ? "" : o.pooling);
  ImageInput in = image_input("mobilenet_v2", o.input_shape, o.input_tensor);
  Conv2DOptions stem;
  stem.strides = {2, 2};
  stem.padding = "same";
  stem.use_bias = false;
  SymbolicTensor x = Conv2D(round_channels(32 * o.alpha), 3, "", stem, "Conv1")(in.image);
  x = BatchNormalization(keras_bn(), "bn_Conv1")(x);
  x = ReLU(6.f, 0.f, 0.f, "Conv1_relu")(x);
  // (filters, stride, expansion) of blocks 0..16, as Keras lists them.
  const int64_t blocks[17][3] = {{16, 1, 1},  {24, 2, 6},  {24, 1, 6},  {32, 2, 6},  {32, 1, 6},  {32, 1, 6},
                                 {64, 2, 6},  {64, 1, 6},  {64, 1, 6},  {64, 1, 6},  {96, 1, 6},  {96, 1, 6},
                                 {96, 1, 6},  {160, 2, 6}, {160, 1, 6}, {160, 1, 6}, {320, 1, 6}};
  for (int b = 0; b < 17; ++b) x = inverted_res_block(x, blocks[b][2], blocks[b][1], o.alpha, blocks[b][0], b);
  // No alpha on the last conv unless it widens the model (the paper's choice, and Keras's).
  const int64_t last_block_filters = o.alpha > 1.0 ? round_channels(1280 * o.alpha) : 1280;
  Conv2DOptions last;
  last.use_bias = false;
  x = Conv2D(last_block_filters, 1, "", last, "Conv_1")(x);
  x = BatchNormalization(keras_bn(), "Conv_1_bn")(x);
  x = ReLU(6.f, 0.f, 0.f, "out_relu")(x);
  if (o.include_top) {
    x = GlobalAveragePooling2D()(x);
    x = Dense(o.classes, o.classifier_activation, {}, "predictions")(x);
  } else {
    x = pool_features(x, o.pooling, "global_average_pooling2d", "global_max_pooling2d");
  }
  std::string name = o.name;
  if (name.empty()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "mobilenetv2_%0.2f_%lld", o.alpha, static_cast<long long>(in.image.shape()[0]));
    name = buf;
  }
  return std::make_unique<Model>(in.model_inputs, std::vector<SymbolicTensor>{x}, name);
}

}  // namespace kiln::nn::applications
