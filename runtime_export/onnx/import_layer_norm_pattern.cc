// LayerNormalization as exporters write it before opset 17 (torch at opsets 13-16):
//   m = ReduceMean(x, [-1]); d = x - m; v = ReduceMean(d ^ 2, [-1]); y = d / sqrt(v + eps) [* w + b]
// back to Kiln's layer_norm. The pattern's nodes are found by their values, not their position
// (the exporter interleaves Constant nodes), and only when no other node reads what lies inside.
#include <cmath>
#include <optional>

#include "runtime_export/onnx/importer.h"

namespace kiln::runtime_export::onnx_io {

const std::vector<int>& Importer::readers(const std::string& name) {
  if (readers_.empty()) {
    for (int i = 0; i < gp_.node_size(); ++i) {
      for (const auto& in : gp_.node(i).input()) readers_[in].push_back(i);
    }
    for (const auto& o : gp_.output()) readers_[o.name()].push_back(-1);  // a graph output
  }
  static const std::vector<int> kNone;
  auto it = readers_.find(name);
  return it == readers_.end() ? kNone : it->second;
}

// The one node after this one that reads `name`, when nothing else does.
const onnx::NodeProto* Importer::sole_reader(const std::string& name, const char* op, int* index) {
  const std::vector<int>& r = readers(name);
  if (r.size() != 1 || r[0] <= order_[index_]) return nullptr;
  const onnx::NodeProto& n = gp_.node(r[0]);
  if (n.op_type() != op || !n.domain().empty() || n.output_size() != 1) return nullptr;
  *index = r[0];
  return &n;
}

// A float scalar known now or from a Constant node later in the file.
std::optional<float> Importer::scalar_ahead(const std::string& name) {
  if (inits_.count(name)) {
    if (inits_.at(name)->data_type() != onnx::TensorProto::FLOAT) return std::nullopt;
    const Tensor& t = init_tensor(name);
    if (t.numel() != 1) return std::nullopt;
    return t.to_vector()[0];
  }
  for (int i = 0; i < gp_.node_size(); ++i) {
    const onnx::NodeProto& c = gp_.node(i);
    if (c.output_size() != 1 || c.output(0) != name) continue;
    if (c.op_type() != "Constant" || c.attribute_size() != 1 || c.attribute(0).name() != "value" ||
        c.attribute(0).type() != onnx::AttributeProto::TENSOR || c.attribute(0).t().data_type() != onnx::TensorProto::FLOAT) {
      return std::nullopt;
    }
    Tensor t = from_tensor_proto(c.attribute(0).t());
    if (t.numel() != 1) return std::nullopt;
    return t.to_vector()[0];
  }
  return std::nullopt;
}

int Importer::layer_norm_decomposed(const onnx::NodeProto& n) {
  if (n.op_type() != "ReduceMean" || n.input_size() < 1 || n.output_size() != 1 || !n.domain().empty()) return 0;
  if (!refs_.count(n.input(0))) return 0;
  const std::string& x = n.input(0);
  const int rank = rank_of(refs_.at(x));
  auto last_axis_mean = [&](const onnx::NodeProto& r) {
    std::vector<int64_t> axes;
    int64_t keep = 1;
    for (const auto& a : r.attribute()) {
      if (a.name() == "axes" && a.type() == onnx::AttributeProto::INTS) axes.assign(a.ints().begin(), a.ints().end());
      else if (a.name() == "keepdims" && a.type() == onnx::AttributeProto::INT) keep = a.i();
      else return false;
    }
    if (r.input_size() == 2) {
      if (!is_folded(r.input(1))) return false;
      axes = folded(r.input(1)).static_ints("axes");
    } else if (r.input_size() != 1) {
      return false;
    }
    return keep == 1 && axes.size() == 1 && (axes[0] == -1 || axes[0] == rank - 1);
  };
  if (rank == 0 || !last_axis_mean(n)) return 0;
  int i_sub = -1, i_pow = -1, i_var = -1, i_add = -1, i_sqrt = -1, i_div = -1, i_mul = -1, i_bias = -1;
  const onnx::NodeProto* sub = sole_reader(n.output(0), "Sub", &i_sub);
  if (!sub || sub->input_size() != 2 || sub->input(0) != x || sub->input(1) != n.output(0)) return 0;
  const std::string& d = sub->output(0);
  const std::vector<int>& d_readers = readers(d);
  if (d_readers.size() != 2) return 0;
  const onnx::NodeProto *pow = nullptr, *div = nullptr;
  for (int r : d_readers) {
    if (r <= order_[index_]) return 0;
    const onnx::NodeProto& c = gp_.node(r);
    if (c.op_type() == "Pow" && c.input_size() == 2 && c.input(0) == d) pow = &c, i_pow = r;
    else if (c.op_type() == "Div" && c.input_size() == 2 && c.input(0) == d) div = &c, i_div = r;
  }
  if (!pow || !div || pow->output_size() != 1 || pow->attribute_size() || scalar_ahead(pow->input(1)) != 2.f) return 0;
  const onnx::NodeProto* var = sole_reader(pow->output(0), "ReduceMean", &i_var);
  if (!var || var->input(0) != pow->output(0) || !last_axis_mean(*var)) return 0;
  const onnx::NodeProto* add = sole_reader(var->output(0), "Add", &i_add);
  if (!add || add->input_size() != 2) return 0;
  const std::string& eps_name = add->input(0) == var->output(0) ? add->input(1) : add->input(0);
  const std::optional<float> eps = scalar_ahead(eps_name);
  if (!eps || !(*eps >= 0.f)) return 0;
  const onnx::NodeProto* sqrt = sole_reader(add->output(0), "Sqrt", &i_sqrt);
  if (!sqrt || sqrt->input_size() != 1 || sqrt->output(0) != div->input(1) || readers(sqrt->output(0)).size() != 1) return 0;
  // Optional affine: * w + b with constant [C] parameters.
  std::string out = div->output(0), gamma, beta;
  auto other = [](const onnx::NodeProto& c, const std::string& v) { return c.input(0) == v ? c.input(1) : c.input(0); };
  const Shape xs = shape_of(refs_.at(x));
  auto channel_param = [&](const std::string& p) {
    return inits_.count(p) && inits_.at(p)->data_type() == onnx::TensorProto::FLOAT && shape_of(ref(p)) == Shape{xs.back()};
  };
  if (const onnx::NodeProto* mul = sole_reader(out, "Mul", &i_mul); mul && mul->input_size() == 2 && channel_param(other(*mul, out))) {
    gamma = other(*mul, out);
    out = mul->output(0);
    if (const onnx::NodeProto* bias = sole_reader(out, "Add", &i_bias); bias && bias->input_size() == 2 && channel_param(other(*bias, out))) {
      beta = other(*bias, out);
      out = bias->output(0);
    } else {
      i_bias = -1;
    }
  } else {
    i_mul = -1;
  }
  // Without * w + b Kiln's layer_norm gets ones and zeros, made here: only for a channel count
  // a real model has (graph input shapes come from the file, not from bytes in it).
  if (xs.back() == kBatch || ((gamma.empty() || beta.empty()) && xs.back() > kMaxFoldedElements)) return 0;
  auto parameter = [&](std::string name, float fill) {
    if (!name.empty()) return name;
    name = fresh(out + (fill == 1.f ? "/gamma" : "/beta"));
    Tensor t = Tensor::full({xs.back()}, fill);
    owned_constants_.emplace_back();
    to_tensor_proto(t, name, &owned_constants_.back());
    inits_[name] = &owned_constants_.back();
    init_tensors_[name] = t;
    return name;
  };
  onnx::NodeProto probe;
  probe.set_op_type("LayerNormalization");
  probe.add_input(x);
  probe.add_input(parameter(gamma, 1.f));
  probe.add_input(parameter(beta, 0.f));
  probe.add_output(out);
  auto* attr = probe.add_attribute();
  attr->set_name("epsilon");
  attr->set_type(onnx::AttributeProto::FLOAT);
  attr->set_f(*eps);
  NodeAttrs a(probe, where_ + " (LayerNormalization written out)");
  layer_norm(probe, a);
  for (int i : {i_sub, i_pow, i_var, i_add, i_sqrt, i_div, i_mul, i_bias}) {
    if (i >= 0) absorbed_.insert(i);
  }
  return 1;
}

}  // namespace kiln::runtime_export::onnx_io
