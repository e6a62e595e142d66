#pragma once
// What the keras.applications image models share: the image input (input_shape, or an
// input_tensor and the Inputs it comes from), argument checks, and the include_top=false pooling.
#include <optional>
#include <string>
#include <vector>

#include "nn/symbolic.h"

namespace kiln::nn::applications {

struct ImageInput {
  std::vector<SymbolicTensor> model_inputs;  // the Model's inputs
  SymbolicTensor image;                      // what the architecture starts from, [H, W, C]
};

// Keras's get_source_inputs for input_tensor; otherwise a fresh Input(input_shape). Throws,
// naming `application`, unless the image is [H, W, C] with H, W >= min_size.
ImageInput image_input(const std::string& application, const Shape& input_shape,
                       const std::optional<SymbolicTensor>& input_tensor, int64_t min_size = 32);

// Throws, naming `application`, for alpha <= 0, classes < 1 with include_top, or a pooling
// other than "", "avg" and "max".
void check_application_options(const std::string& application, double alpha, bool include_top, int64_t classes,
                               const std::string& pooling);

// include_top=false: "" returns x, "avg" / "max" a global pool to [N, C] with these names.
SymbolicTensor pool_features(const SymbolicTensor& x, const std::string& pooling, const std::string& avg_name,
                             const std::string& max_name);

// Keras's imagenet_utils.correct_pad: the ZeroPadding2D before a stride-2 'valid' conv, so its
// windows start at the image's first pixel as TF's 'same' would for odd sizes.
std::array<std::array<int64_t, 2>, 2> correct_pad(const Shape& image_hwc, int64_t kernel_size);

}  // namespace kiln::nn::applications
