#pragma once
#include <array>
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

// strides {0, 0} means "equal to pool_size", the Keras default.
Layer MaxPooling2D(std::array<int64_t, 2> pool_size = {2, 2}, std::array<int64_t, 2> strides = {0, 0},
                   const std::string& padding = "valid", const std::string& name = "");
Layer AveragePooling2D(std::array<int64_t, 2> pool_size = {2, 2}, std::array<int64_t, 2> strides = {0, 0},
                       const std::string& padding = "valid", const std::string& name = "");
Layer GlobalAveragePooling2D(bool keepdims = false, const std::string& name = "");
Layer GlobalMaxPooling2D(bool keepdims = false, const std::string& name = "");

}  // namespace kiln::nn
