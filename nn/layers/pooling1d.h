#pragma once
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

// keras.layers.GlobalAveragePooling1D: [batch, steps, features] -> [batch, features] (or
// [batch, 1, features] with keepdims). With a mask (nn/mask.h) it averages over the real
// steps only, as Keras does: sum(x * mask) / sum(mask) (a row whose mask is all 0 gives
// 0/0 = NaN, as in Keras). The mask stops here.
Layer GlobalAveragePooling1D(bool keepdims = false, const std::string& name = "");
// keras.layers.GlobalMaxPooling1D: the maximum over steps. Keras 3's ignores masks (it does
// not support masking: padded steps take part in the max and the mask stops here); so does
// this one.
Layer GlobalMaxPooling1D(bool keepdims = false, const std::string& name = "");

}  // namespace kiln::nn
