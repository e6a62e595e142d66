// Every op kind in one table: what the tape and trace record, and how a Graph runs it again
// from its attributes. Each op's file writes its attributes with the same names (to_attrs).
// Backward-only ops (conv2d_backward_data, eltwise_backward, ...) live on tapes, never in
// traced graphs, and are not listed.
#include <stdexcept>
#include <unordered_map>

#include "tensor/ops/ops.h"
#include "tensor/ops/registry.h"

namespace kiln::ops {
namespace {

using Inputs = std::vector<Tensor>;
using Outputs = std::vector<Tensor>;

Tensor optional_input(const Inputs& in, size_t i) { return in.size() > i ? in[i] : Tensor(); }

std::vector<int> ints(const Attrs& a, const std::string& name) {
  std::vector<int> out;
  for (int64_t v : a.get_ints(name)) out.push_back(static_cast<int>(v));
  return out;
}

OpDef binary(const std::string& name, Tensor (*fn)(const Tensor&, const Tensor&), bool differentiable = true) {
  return {name, 2, 2, differentiable, [fn](const Inputs& in, const Attrs&) { return Outputs{fn(in[0], in[1])}; }};
}

OpDef eltwise_row(EltwiseKind kind) {
  return {eltwise_name(kind), 1, 1, true, [kind](const Inputs& in, const Attrs& a) {
            return Outputs{eltwise(kind, in[0], static_cast<float>(a.get_float("alpha")),
                                   static_cast<float>(a.get_float("beta")))};
          }};
}

OpDef reduce_row(const std::string& name, Tensor (*fn)(const Tensor&, const std::vector<int>&, bool)) {
  return {name, 1, 1, true, [fn](const Inputs& in, const Attrs& a) {
            return Outputs{fn(in[0], ints(a, "axes"), a.get_int("keepdims") != 0)};
          }};
}

std::vector<OpDef> build_table() {
  std::vector<OpDef> t = {
      binary("add", add), binary("sub", sub), binary("mul", mul), binary("div", div),
      binary("maximum", maximum), binary("minimum", minimum), binary("add_relu", add_relu),
      binary("equal", equal, false), binary("greater", greater, false),
      binary("greater_equal", greater_equal, false), binary("less", less, false),
      binary("matmul", matmul),
      {"linear", 2, 3, true,
       [](const Inputs& in, const Attrs& a) {
         return Outputs{linear(in[0], in[1], optional_input(in, 2), fused_activation_from_name(a.get_string("activation")))};
       }},
      {"conv2d", 2, 3, true,
       [](const Inputs& in, const Attrs& a) {
         return Outputs{conv2d(in[0], in[1], optional_input(in, 2), conv2d_options_from(a))};
       }},
      {"fused_conv2d", 2, 4, false,
       [](const Inputs& in, const Attrs& a) {
         Conv2dAttrs conv = conv2d_geometry_from(a);
         return Outputs{fused_conv2d(in[0], in[1], optional_input(in, 2), optional_input(in, 3), conv,
                                     epilogue_from_name(a.get_string("activation")))};
       }},
      {"fused_linear", 2, 4, false,
       [](const Inputs& in, const Attrs& a) {
         return Outputs{fused_linear(in[0], in[1], optional_input(in, 2), optional_input(in, 3),
                                     epilogue_from_name(a.get_string("activation")))};
       }},
      {"quantize_linear", 1, 1, false,
       [](const Inputs& in, const Attrs& a) {
         return Outputs{quantize_linear(in[0], static_cast<float>(a.get_float("scale")),
                                        static_cast<int32_t>(a.get_int("zero_point")), dtype_from_name(a.get_string("dtype")))};
       }},
      {"dequantize_linear", 1, 1, false,
       [](const Inputs& in, const Attrs& a) {
         return Outputs{dequantize_linear(in[0], static_cast<float>(a.get_float("scale")),
                                          static_cast<int32_t>(a.get_int("zero_point")))};
       }},
      {"qconv2d", 2, 4, false,
       [](const Inputs& in, const Attrs& a) {
         Conv2dAttrs conv = conv2d_geometry_from(a);
         return Outputs{qconv2d(in[0], in[1], optional_input(in, 2), optional_input(in, 3), conv,
                                quantized_epilogue_from(a))};
       }},
      {"qlinear", 2, 4, false,
       [](const Inputs& in, const Attrs& a) {
         return Outputs{qlinear(in[0], in[1], optional_input(in, 2), optional_input(in, 3), quantized_epilogue_from(a))};
       }},
      {"max_pool2d", 1, 1, true,
       [](const Inputs& in, const Attrs& a) { return Outputs{max_pool2d(in[0], pool2d_options_from(a))}; }},
      {"avg_pool2d", 1, 1, true,
       [](const Inputs& in, const Attrs& a) { return Outputs{avg_pool2d(in[0], pool2d_options_from(a))}; }},
      {"batch_norm", 3, 3, true,
       [](const Inputs& in, const Attrs& a) {
         return Outputs{batch_norm_training(in[0], in[1], in[2], static_cast<float>(a.get_float("epsilon")),
                                            a.get_int("relu") != 0)
                            .y};
       }},
      {"batch_norm_inference", 5, 5, true,
       [](const Inputs& in, const Attrs& a) {
         return Outputs{batch_norm_inference(in[0], in[1], in[2], in[3], in[4],
                                             static_cast<float>(a.get_float("epsilon")), a.get_int("relu") != 0)};
       }},
      {"softmax", 1, 1, true,
       [](const Inputs& in, const Attrs& a) { return Outputs{softmax(in[0], static_cast<int>(a.get_int("axis")))}; }},
      {"sparse_softmax_cross_entropy", 2, 2, true,
       [](const Inputs& in, const Attrs&) { return Outputs{sparse_softmax_cross_entropy(in[0], in[1])}; }},
      {"log_softmax", 1, 1, true,
       [](const Inputs& in, const Attrs& a) {
         return Outputs{log_softmax(in[0], static_cast<int>(a.get_int("axis")))};
       }},
      reduce_row("reduce_sum", reduce_sum), reduce_row("reduce_mean", reduce_mean),
      reduce_row("reduce_max", reduce_max),
      {"argmax", 1, 1, false,
       [](const Inputs& in, const Attrs& a) { return Outputs{argmax(in[0], static_cast<int>(a.get_int("axis")))}; }},
      {"cast", 1, 1, true,
       [](const Inputs& in, const Attrs& a) { return Outputs{cast(in[0], dtype_from_name(a.get_string("dtype")))}; }},
      {"one_hot", 1, 1, false,
       [](const Inputs& in, const Attrs& a) {
         return Outputs{one_hot(in[0], a.get_int("depth"), dtype_from_name(a.get_string("dtype")))};
       }},
      {"reshape", 1, 1, true,
       [](const Inputs& in, const Attrs& a) {
         // 0 copies the input's dimension (ONNX's convention; trace writes it for the batch).
         Shape shape = a.get_ints("shape");
         for (size_t i = 0; i < shape.size(); ++i) {
           if (shape[i] == 0 && static_cast<int>(i) < in[0].ndim()) shape[i] = in[0].shape()[i];
         }
         return Outputs{reshape(in[0], shape)};
       }},
      {"permute", 1, 1, true,
       [](const Inputs& in, const Attrs& a) { return Outputs{permute(in[0], ints(a, "perm"))}; }},
      {"slice", 1, 1, true,
       [](const Inputs& in, const Attrs& a) {
         return Outputs{slice(in[0], static_cast<int>(a.get_int("axis")), a.get_int("start"), a.get_int("end"),
                              a.get_int("step"))};
       }},
      {"contiguous", 1, 1, true, [](const Inputs& in, const Attrs&) { return Outputs{contiguous(in[0])}; }},
      {"identity", 1, 1, false, [](const Inputs& in, const Attrs&) { return Outputs{stop_gradient(in[0])}; }},
      {"broadcast_to", 1, 1, true,
       [](const Inputs& in, const Attrs& a) { return Outputs{broadcast_to(in[0], a.get_ints("shape"))}; }},
      {"concat", 1, -1, true,
       [](const Inputs& in, const Attrs& a) { return Outputs{concat(in, static_cast<int>(a.get_int("axis")))}; }},
  };
  for (EltwiseKind kind : all_eltwise_kinds()) t.push_back(eltwise_row(kind));
  return t;
}

}  // namespace

const std::vector<OpDef>& registered_ops() {
  static const std::vector<OpDef>* table = new std::vector<OpDef>(build_table());
  return *table;
}

const OpDef& op_def(const std::string& name) {
  static const auto* index = [] {
    auto* m = new std::unordered_map<std::string, const OpDef*>();
    for (const OpDef& d : registered_ops()) {
      if (!m->emplace(d.name, &d).second) throw std::logic_error("op table: '" + d.name + "' is registered twice");
    }
    return m;
  }();
  auto it = index->find(name);
  if (it == index->end()) throw std::invalid_argument("op '" + name + "' is not a registered op kind");
  return *it->second;
}

std::vector<Tensor> run_op(const Attrs& call, const std::vector<Tensor>& inputs) {
  const OpDef& def = op_def(call.op());
  int n = static_cast<int>(inputs.size());
  if (n < def.min_inputs || (def.max_inputs >= 0 && n > def.max_inputs)) {
    std::string takes = def.max_inputs == def.min_inputs ? std::to_string(def.min_inputs)
                        : def.max_inputs < 0 ? std::to_string(def.min_inputs) + " or more"
                                             : std::to_string(def.min_inputs) + " to " + std::to_string(def.max_inputs);
    throw std::invalid_argument("op '" + def.name + "' takes " + takes + " inputs, got " + std::to_string(n));
  }
  return def.run(inputs, call);
}

}  // namespace kiln::ops
