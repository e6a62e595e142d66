#include "nn/applications/image_input.h"

#include <stdexcept>
#include <unordered_set>

#include "nn/layers/layers.h"

namespace kiln::nn::applications {

ImageInput image_input(const std::string& application, const Shape& input_shape,
                       const std::optional<SymbolicTensor>& input_tensor, int64_t min_size) {
  ImageInput in;
  if (input_tensor) {
    in.image = *input_tensor;
    // The Inputs this tensor was computed from, each once, in first-seen order.
    std::vector<SymbolicTensor> stack{*input_tensor};
    std::unordered_set<const SymbolicTensor::Node*> seen;
    while (!stack.empty()) {
      SymbolicTensor t = stack.back();
      stack.pop_back();
      if (!t.node() || !seen.insert(t.node().get()).second) continue;
      if (!t.node()->layer.defined()) {
        in.model_inputs.push_back(t);
        continue;
      }
      for (auto it = t.node()->inputs.rbegin(); it != t.node()->inputs.rend(); ++it) stack.push_back(*it);
    }
  } else {
    if (input_shape.size() != 3) {
      throw std::invalid_argument(application + ": input_shape must be [height, width, channels], got " +
                                  shape_str(input_shape));
    }
    in.image = Input(input_shape);
    in.model_inputs = {in.image};
  }
  const Shape& s = in.image.shape();
  if (s.size() != 3 || s[0] < min_size || s[1] < min_size || s[2] < 1) {
    throw std::invalid_argument(application + ": the image must be [height, width, channels] with height and width at least " +
                                std::to_string(min_size) + ", got " + shape_str(s) +
                                (input_tensor ? " (input_tensor)" : " (input_shape)"));
  }
  return in;
}

void check_application_options(const std::string& application, double alpha, bool include_top, int64_t classes,
                               const std::string& pooling) {
  if (!(alpha > 0)) throw std::invalid_argument(application + ": alpha must be positive, got " + std::to_string(alpha));
  if (include_top && classes < 1) {
    throw std::invalid_argument(application + ": classes must be at least 1, got " + std::to_string(classes));
  }
  if (pooling != "" && pooling != "avg" && pooling != "max") {
    throw std::invalid_argument(application + ": pooling must be \"\", \"avg\" or \"max\", got \"" + pooling + "\"");
  }
}

SymbolicTensor pool_features(const SymbolicTensor& x, const std::string& pooling, const std::string& avg_name,
                             const std::string& max_name) {
  if (pooling == "avg") return GlobalAveragePooling2D(false, avg_name)(x);
  if (pooling == "max") return GlobalMaxPooling2D(false, max_name)(x);
  return x;
}

std::array<std::array<int64_t, 2>, 2> correct_pad(const Shape& image_hwc, int64_t kernel_size) {
  int64_t correct = kernel_size / 2;
  int64_t adjust_h = 1 - image_hwc[0] % 2, adjust_w = 1 - image_hwc[1] % 2;
  return {{{correct - adjust_h, correct}, {correct - adjust_w, correct}}};
}

}  // namespace kiln::nn::applications
