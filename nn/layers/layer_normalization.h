#pragma once
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

struct LayerNormalizationOptions {
  float epsilon = 1e-3f;
  bool center = true;  // a trainable `beta` [C]
  bool scale = true;   // a trainable `gamma` [C]
  std::string beta_initializer = "zeros";
  std::string gamma_initializer = "ones";
};

// keras.layers.LayerNormalization(axis=-1): normalizes each position over its last axis with
// that position's mean and variance, then scales by gamma and shifts by beta (weights `gamma`
// then `beta`, each [C], created only when scale / center ask). One oneDNN layer
// normalization primitive forward and backward (tensor/ops/layer_norm.h); statistics in f32
// also under mixed precision, as Keras computes them. Passes masks on.
// Only axis=-1 is supported (the form every transformer uses).
Layer LayerNormalization(const LayerNormalizationOptions& options = {}, const std::string& name = "");

}  // namespace kiln::nn
