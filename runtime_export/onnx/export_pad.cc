// pad as ONNX Pad (opset 11+: pads and constant_value are inputs, mode an attribute).
#include "runtime_export/onnx/exporter.h"
#include "tensor/ops/op_attrs.h"
#include "tensor/ops/pad.h"

namespace kiln::runtime_export::onnx_io {

void Exporter::write_pad(const Node& n) {
  const PadAttrs a = ops::parse_attrs_of<ops::OpKind::pad>(n.call);
  const int x = n.inputs[0], y = n.outputs[0];
  const int r = rank(x);
  if (static_cast<int>(a.before.size()) != r || static_cast<int>(a.after.size()) != r) {
    fail("pad amounts for rank " + std::to_string(a.before.size()) + " on " + shape_str(val(x).shape));
  }
  // Stays in NCHW where the input already is: the amounts follow their axes.
  const bool as_nchw = !const_[x] && r == 4 && !nchw_[x].empty();
  std::vector<int64_t> pads(2 * r);
  for (int d = 0; d < r; ++d) {
    const int64_t at = as_nchw ? nchw_axis(d) : d;
    pads[at] = a.before[d];
    pads[r + at] = a.after[d];
  }
  std::vector<std::string> ins{in(x, as_nchw), int64s(pads)};
  if (a.mode == PadMode::constant) ins.push_back(scalar_in(val(x).dtype, a.value));
  auto* p = emit("Pad", ins, {out(y, as_nchw)});
  auto* mode = p->add_attribute();
  mode->set_name("mode");
  mode->set_type(onnx::AttributeProto::STRING);
  mode->set_s(pad_mode_name(a.mode));
}

}  // namespace kiln::runtime_export::onnx_io
