#pragma once
// Keras's merge layers. The element-wise ones broadcast as Keras's do: the batch sizes must be
// equal, the other dimensions align from the right and a 1 broadcasts; an input of lower rank
// gains dimensions of 1 right after the batch (Keras's expand_dims(x, 1)).
// Masks (nn/mask.h) as Keras's merge layers: the element-wise ones give the OR of their
// inputs' masks when every input has one (else none); Maximum and Minimum skip masked values
// (a masked step takes the other inputs' value) and Multiply takes a masked factor as 1 and
// zeroes the steps no input keeps; Concatenate joins the masks, an unmasked input counting as
// all kept (along the features axis: the OR of the masks).
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

// Element-wise sum of its inputs (residual connections; a ReLU after it folds into it).
Layer Add(const std::string& name = "");
// inputs[0] - inputs[1]: exactly two inputs.
Layer Subtract(const std::string& name = "");
// Element-wise product (squeeze-excite: [N, H, W, C] * [N, 1, 1, C]).
Layer Multiply(const std::string& name = "");
// Element-wise mean, maximum and minimum of the inputs.
Layer Average(const std::string& name = "");
Layer Maximum(const std::string& name = "");
Layer Minimum(const std::string& name = "");
// Joins the inputs along `axis` (negative counts from the end; the batch axis is 0); every
// other dimension must match.
Layer Concatenate(int axis = -1, const std::string& name = "");

}  // namespace kiln::nn
