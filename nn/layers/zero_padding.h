#pragma once
#include <array>
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

// keras.layers.ZeroPadding2D on NHWC input: {{top, bottom}, {left, right}} rows and columns of
// zeros. Keras's ResNet-50 pads explicitly before its stem conv and its max pool, so their
// 'valid' windows see symmetric borders where 'same' would pad one side more. Traces to one
// pad op (the batch stays free), which the inference passes fold into the conv or max pool
// that reads it.
Layer ZeroPadding2D(std::array<std::array<int64_t, 2>, 2> padding, const std::string& name = "");
Layer ZeroPadding2D(int64_t padding, const std::string& name = "");

// keras.layers.ZeroPadding1D on [batch, steps, features]: {left, right} steps of zeros.
Layer ZeroPadding1D(std::array<int64_t, 2> padding, const std::string& name = "");
Layer ZeroPadding1D(int64_t padding, const std::string& name = "");

}  // namespace kiln::nn
