#pragma once
// Padding by per-axis (before, after) amounts on any rank: numpy.pad's constant, reflect and
// edge modes (ONNX Pad's modes). Keras's ZeroPadding1D/2D trace to it.
#include <string>
#include <vector>

#include "tensor/ops/attrs.h"
#include "tensor/tensor.h"

namespace kiln {

enum class PadMode { constant, reflect, edge };
PadMode pad_mode_from_name(const std::string& name);  // "constant", "reflect" or "edge"
const char* pad_mode_name(PadMode mode);

struct PadAttrs {
  // One amount per axis. A negative amount crops that many elements from that end (ONNX's
  // negative pads); the output along an axis, n + before + after, must not be negative.
  std::vector<int64_t> before, after;
  PadMode mode = PadMode::constant;
  double value = 0;  // what constant mode writes; for integer dtypes an integer in their range
};

// Output element o along an axis reads input element o - before when that lies inside; outside:
//   constant: the value;
//   reflect:  the mirror image without repeating the border (numpy 'reflect', ONNX 'reflect'),
//             folding again for pads longer than the axis, as numpy does; an axis of 1 repeats;
//   edge:     the nearest border element.
// With a negative before, the output starts inside the input, so cropping and reflecting
// compose as padding first and cropping the result. Any dtype (int8 activations too); reflect and
// edge need a non-empty axis where they pad. The gradient of constant padding is a pad with the
// amounts negated (a slice, where the pads are positive); reflect and edge add every copy's
// gradient into the element it copies (accumulated in f32 for bf16).
Tensor pad(const Tensor& x, const PadAttrs& attrs);

// The shape pad gives an input of shape `in` (described as `input` in errors), checking the
// amounts, the mode and the value against it.
Shape padded_shape(const Shape& in, DType dtype, const PadAttrs& attrs, const std::string& input);

// The attributes pad records (ops::parse_attrs reads them back).
inline ops::Attrs to_attrs(const PadAttrs& o) {
  ops::Attrs a("pad");
  a.set("before", o.before);
  a.set("after", o.after);
  a.set("mode", pad_mode_name(o.mode));
  a.set("value", ops::AttrValue(o.value));
  return a;
}

}  // namespace kiln
