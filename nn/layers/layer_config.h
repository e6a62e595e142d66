#pragma once
// What the built-in layers share when they read their configs (Keras from_config).
#include <array>
#include <cstdint>
#include <string>

#include "nn/config_reader.h"
#include "nn/layer.h"
#include "nn/layer_registry.h"

namespace kiln::nn {

// The attributes LayerImpl::config() writes for every layer.
struct BaseLayerConfig {
  std::string name;  // empty: a fresh unique name
  bool trainable = true;
  std::string dtype;  // a policy name; empty: the global policy
};
BaseLayerConfig read_base_config(ConfigReader& r);
// Applies the policy and the trainable flag; returns the layer.
Layer with_base_config(const Layer& layer, const BaseLayerConfig& base);

// Names checked against what the layers accept, so a bad file fails at load, not mid-fit.
std::string read_initializer(ConfigReader& r, const std::string& key, const std::string& fallback);
std::string read_activation(ConfigReader& r, const std::string& key, const std::string& fallback);
std::string read_padding(ConfigReader& r, const std::string& fallback);
// Kiln runs channels_last (NHWC) only.
void read_data_format(ConfigReader& r);

// The keys every Keras 2-D convolution layer (Conv2D, DepthwiseConv2D, SeparableConv2D,
// Conv2DTranspose) shares: kernel_size (required), strides, padding, data_format,
// dilation_rate, activation, use_bias and bias_initializer. The option fields go into `opt`,
// whose members carry Keras's names; kernel_size and activation are returned.
struct Conv2DCommonConfig {
  std::array<int64_t, 2> kernel_size{1, 1};
  std::string activation;
};
template <class Options>
Conv2DCommonConfig read_conv2d_common(ConfigReader& r, Options& opt) {
  if (!r.has("kernel_size")) r.fail("kernel_size", "is required");
  Conv2DCommonConfig c;
  c.kernel_size = r.pair("kernel_size", {1, 1}, 1, kMaxConfigSize);
  opt.strides = r.pair("strides", opt.strides, 1, kMaxConfigSize);
  opt.padding = read_padding(r, opt.padding);
  read_data_format(r);
  opt.dilation_rate = r.pair("dilation_rate", opt.dilation_rate, 1, kMaxConfigSize);
  c.activation = read_activation(r, "activation", "linear");
  opt.use_bias = r.boolean("use_bias", opt.use_bias);
  opt.bias_initializer = read_initializer(r, "bias_initializer", opt.bias_initializer);
  return c;
}

// For static registration in the layer files: `const bool registered = register_builtin(...)`.
bool register_builtin_layer(const std::string& class_name, Layer (*from_config)(const Config&));

}  // namespace kiln::nn
