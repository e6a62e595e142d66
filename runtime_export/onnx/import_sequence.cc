// ONNX Gather and LayerNormalization as Kiln's gather and layer_norm.
#include <limits>

#include "runtime_export/onnx/importer.h"

namespace kiln::runtime_export::onnx_io {

void Importer::gather(const onnx::NodeProto& n, NodeAttrs& a) {
  want_inputs(n, 2, 2);
  Ref data = ref(n.input(0));
  const int r = rank_of(data);
  if (r == 0) fail("Gather of a scalar");
  const int64_t ax = axis(a.get_int("axis", 0), r);
  a.done();
  const int dv = materialize(data);
  int iv = -1;
  auto init = inits_.find(n.input(1));
  if (init != inits_.end() && init->second->data_type() == onnx::TensorProto::INT64) {
    // Constant INT64 indices (what most exporters write) become an s32 constant; negative
    // ones count from the end, as ONNX says, and are resolved here.
    const std::vector<int64_t> ids = int64_values(*init->second);
    const int64_t rows = g_.values[dv].shape[ax];
    std::vector<int32_t> s32;
    for (int64_t id : ids) {
      if (rows < 0 || id < -rows || id >= rows) {
        fail("index " + std::to_string(id) + " is outside [-" + std::to_string(rows) + ", " + std::to_string(rows) +
             ") for axis " + std::to_string(ax) + " of " + shape_str(g_.values[dv].shape));
      }
      s32.push_back(static_cast<int32_t>(id < 0 ? id + rows : id));
    }
    Shape s(init->second->dims().begin(), init->second->dims().end());
    Tensor t = Tensor::from_int32(s32, s);
    iv = add_value(n.input(1), t.shape(), t.dtype());
    g_.constants.push_back({iv, false, t});
  } else {
    iv = materialize(ref(n.input(1)));
  }
  if (is_floating(g_.values[iv].dtype)) fail("Gather indices must be integers");
  const Shape ds = g_.values[dv].shape, is = g_.values[iv].shape;
  Shape out(ds.begin(), ds.begin() + ax);
  out.insert(out.end(), is.begin(), is.end());
  out.insert(out.end(), ds.begin() + ax + 1, ds.end());
  const DType dtype = g_.values[dv].dtype;
  const int rank_out = static_cast<int>(out.size());
  define(n.output(0), add_node(ops::Attrs("gather").set("axis", ops::AttrValue(ax)), {dv, iv}, n.output(0), out, dtype),
         identity_perm(rank_out));
}

void Importer::layer_norm(const onnx::NodeProto& n, NodeAttrs& a) {
  if (n.output_size() != 1) fail("LayerNormalization's Mean and InvStdDev outputs are not supported");
  want_inputs(n, 3, 3);
  Ref x = ref(n.input(0));
  const int r = rank_of(x);
  if (r == 0) fail("LayerNormalization of a scalar");
  if (axis(a.get_int("axis", -1), r) != r - 1) fail("LayerNormalization over more than the last axis is not supported");
  const float eps = a.get_float("epsilon", 1e-5f);
  if (a.get_int("stash_type", 1) != 1) fail("stash_type other than 1 (float statistics) is not supported");
  a.done();
  const int xv = materialize(x);
  const graph::Value in = g_.values[xv];  // a copy: materialize() below grows g_.values
  if (!is_floating(in.dtype)) fail("LayerNormalization input is not FLOAT");
  std::vector<int> ins{xv};
  for (int i = 1; i < 3; ++i) {
    Ref p = ref(n.input(i));
    if (shape_of(p) != Shape{in.shape.back()} || dtype_of(p) != DType::f32) {
      fail("parameter '" + n.input(i) + "' is " + shape_str(shape_of(p)) + ", expected FLOAT[" +
           std::to_string(in.shape.back()) + "]");
    }
    ins.push_back(materialize(p));
  }
  ops::Attrs call("layer_norm");
  call.set("epsilon", ops::AttrValue(double{eps}));
  define(n.output(0), add_node(call, ins, n.output(0), in.shape, in.dtype), identity_perm(r));
}

}  // namespace kiln::runtime_export::onnx_io
