// ONNX Pad as Kiln's pad: the opset 2-10 form (pads and value attributes) and the opset 11+
// form (pads, constant_value and, from opset 18, axes as inputs), modes constant, reflect and
// edge. The amounts follow the ONNX axes onto Kiln's (an NCHW view of an NHWC value pads H and
// W of the NHWC value); the batch axis may not be padded.
#include <set>

#include "runtime_export/onnx/importer.h"
#include "tensor/ops/pad.h"

namespace kiln::runtime_export::onnx_io {

void Importer::pad(const onnx::NodeProto& n, NodeAttrs& a) {
  const bool attribute_form = a.has("pads");
  want_inputs(n, 1, attribute_form ? 1 : 4);
  const std::string mode_name = a.get_string("mode", "constant");
  PadAttrs p;
  if (mode_name == "wrap") fail("Pad mode 'wrap' (opset 19) is not supported (constant, reflect and edge are)");
  try {
    p.mode = pad_mode_from_name(mode_name);
  } catch (const std::invalid_argument& e) {
    fail(std::string("Pad: ") + e.what());
  }
  std::vector<int64_t> pads;
  std::vector<int64_t> axes;
  bool has_axes = false;
  if (attribute_form) {
    pads = a.get_ints("pads", {});
    p.value = a.get_float("value", 0.f);
  } else {
    if (n.input_size() < 2 || n.input(1).empty()) fail("Pad needs its pads input");
    pads = int64_input(n.input(1), "Pad pads");
    if (n.input_size() > 2 && !n.input(2).empty()) p.value = scalar_input(n.input(2), "Pad constant_value");
    if (n.input_size() > 3 && !n.input(3).empty()) {
      axes = int64_input(n.input(3), "Pad axes");
      has_axes = true;
    }
  }
  a.done();
  Ref x = ref(n.input(0));
  const int r = rank_of(x);
  if (!has_axes) {
    for (int i = 0; i < r; ++i) axes.push_back(i);
  }
  if (pads.size() != 2 * axes.size()) {
    fail("Pad pads " + ints_str(pads) + " should hold 2 x " + std::to_string(axes.size()) + " values (begins, then ends) for " +
         (has_axes ? "axes " + ints_str(axes) : "rank " + std::to_string(r)));
  }
  if (x.value < 0) x = Ref{materialize(x), "", identity_perm(r)};
  const graph::Value& in = g_.values[x.value];
  p.before.assign(r, 0);
  p.after.assign(r, 0);
  std::set<int64_t> seen;
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t onnx_axis = axis(axes[i], r);
    if (!seen.insert(onnx_axis).second) fail("Pad axes " + ints_str(axes) + " repeat axis " + std::to_string(onnx_axis));
    const int64_t k = x.perm[onnx_axis];
    p.before[k] = pads[i];
    p.after[k] = pads[axes.size() + i];
    if (in.shape[k] == kBatch && (pads[i] != 0 || pads[axes.size() + i] != 0)) {
      fail("Pad pads " + ints_str(pads) + " pad or crop axis " + std::to_string(onnx_axis) +
           ", the batch dimension, whose size the graph leaves free");
    }
  }
  Shape concrete = in.shape;
  const bool batched = !concrete.empty() && concrete[0] == kBatch;
  if (batched) concrete[0] = 1;
  Shape out;
  try {
    out = padded_shape(concrete, in.dtype, p, shape_str(in.shape));
  } catch (const std::invalid_argument& e) {
    fail(e.what());
  }
  if (batched) out[0] = kBatch;
  define(n.output(0), add_node(to_attrs(p), {x.value}, nhwc_name(n.output(0)), out, in.dtype), x.perm);
}

}  // namespace kiln::runtime_export::onnx_io
