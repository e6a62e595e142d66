// Every op kind in one table: what the tape and trace record, and how a Graph runs it again
// from its attributes. The rows come from op_list.h; how each kind runs is one case of
// run_of's switch (no default: a kind without a case does not compile, -Werror=switch).
#include <stdexcept>

#include "tensor/ops/op_attrs.h"
#include "tensor/ops/ops.h"
#include "tensor/ops/registry.h"

namespace kiln::ops {
namespace {

using Inputs = std::vector<Tensor>;
using Outputs = std::vector<Tensor>;
using RunFn = std::function<Outputs(const Inputs&, const Attrs&)>;

Tensor optional_input(const Inputs& in, size_t i) { return in.size() > i ? in[i] : Tensor(); }

// A run function that parses K's typed attributes and hands them to `f`.
template <OpKind K, typename F>
RunFn typed(F f) {
  return [f](const Inputs& in, const Attrs& a) { return Outputs{f(in, parse_attrs<AttrsOf<K>>(a))}; };
}

RunFn binary(Tensor (*fn)(const Tensor&, const Tensor&)) {
  return [fn](const Inputs& in, const Attrs&) { return Outputs{fn(in[0], in[1])}; };
}

RunFn reduce(Tensor (*fn)(const Tensor&, const std::vector<int>&, bool)) {
  return [fn](const Inputs& in, const Attrs& a) {
    ReduceAttrs r = parse_attrs<ReduceAttrs>(a);
    return Outputs{fn(in[0], r.axes, r.keepdims)};
  };
}

// The inputs after the bias: the initial states when the node has them, then the mask.
Outputs run_rnn_node(OpKind kind, const Inputs& in, const RnnAttrs& a) {
  const size_t states = !a.initial_state ? 0 : kind == OpKind::lstm ? 2 : 1;
  if (in.size() < 4 + states || in.size() > 5 + states) {
    throw std::invalid_argument(std::string(op_kind_name(kind)) + ": " + std::to_string(in.size()) +
                                " inputs, expected 4 + " + std::to_string(states) +
                                " initial states (initial_state=" + std::to_string(a.initial_state) + ") + an optional mask");
  }
  const RnnOptions o{.go_backwards = a.go_backwards, .zero_output_for_mask = a.zero_output_for_mask};
  Tensor h0 = optional_input(in, states ? 4 : in.size()), mask = optional_input(in, 4 + states);
  if (kind == OpKind::lstm) return lstm(in[0], in[1], in[2], in[3], h0, optional_input(in, states ? 5 : in.size()), mask, o);
  if (kind == OpKind::gru) return gru(in[0], in[1], in[2], in[3], h0, mask, o);
  return simple_rnn(in[0], in[1], in[2], in[3], h0, mask, o);
}

RunFn run_of(OpKind kind) {
  using K = OpKind;
  switch (kind) {
    case K::add: return binary(add);
    case K::sub: return binary(sub);
    case K::mul: return binary(mul);
    case K::div: return binary(div);
    case K::maximum: return binary(maximum);
    case K::minimum: return binary(minimum);
    case K::add_relu: return binary(add_relu);
    case K::equal: return binary(equal);
    case K::greater: return binary(greater);
    case K::greater_equal: return binary(greater_equal);
    case K::less: return binary(less);
    case K::matmul: return binary(matmul);
    case K::scaled_dot_product_attention:
      return typed<K::scaled_dot_product_attention>([](const Inputs& in, const AttentionAttrs& a) {
        AttentionOptions o{.scale = a.scale, .causal = a.causal, .mask_kind = a.mask_kind};
        return scaled_dot_product_attention(in[0], in[1], in[2], optional_input(in, 3), o);
      });
    case K::linear:
      return typed<K::linear>([](const Inputs& in, const LinearAttrs& a) {
        return linear(in[0], in[1], optional_input(in, 2), a.activation);
      });
    case K::conv2d:
      return typed<K::conv2d>([](const Inputs& in, const Conv2dAttrs& a) {
        return conv2d(in[0], in[1], optional_input(in, 2), a);
      });
    case K::fused_conv2d:
      return typed<K::fused_conv2d>([](const Inputs& in, const FusedConv2dAttrs& a) {
        return fused_conv2d(in[0], in[1], optional_input(in, 2), optional_input(in, 3), a.conv, a.activation);
      });
    case K::fused_linear:
      return typed<K::fused_linear>([](const Inputs& in, const FusedLinearAttrs& a) {
        return fused_linear(in[0], in[1], optional_input(in, 2), optional_input(in, 3), a.activation);
      });
    case K::quantize_linear:
      return typed<K::quantize_linear>([](const Inputs& in, const QuantizeAttrs& a) {
        return quantize_linear(in[0], a.scale, a.zero_point, a.dtype);
      });
    case K::dequantize_linear:
      return typed<K::dequantize_linear>([](const Inputs& in, const DequantizeAttrs& a) {
        return dequantize_linear(in[0], a.scale, a.zero_point);
      });
    case K::qconv2d:
      return typed<K::qconv2d>([](const Inputs& in, const QConv2dAttrs& a) {
        return qconv2d(in[0], in[1], optional_input(in, 2), optional_input(in, 3), a.conv, a.q);
      });
    case K::qlinear:
      return typed<K::qlinear>([](const Inputs& in, const QLinearAttrs& a) {
        return qlinear(in[0], in[1], optional_input(in, 2), optional_input(in, 3), a.q);
      });
    case K::max_pool2d:
      return typed<K::max_pool2d>([](const Inputs& in, const Pool2dAttrs& a) { return max_pool2d(in[0], a); });
    case K::avg_pool2d:
      return typed<K::avg_pool2d>([](const Inputs& in, const Pool2dAttrs& a) { return avg_pool2d(in[0], a); });
    case K::batch_norm:
      return typed<K::batch_norm>([](const Inputs& in, const BatchNormAttrs& a) {
        return batch_norm_training(in[0], in[1], in[2], static_cast<float>(a.epsilon), a.relu).y;
      });
    case K::batch_norm_inference:
      return typed<K::batch_norm_inference>([](const Inputs& in, const BatchNormAttrs& a) {
        return batch_norm_inference(in[0], in[1], in[2], in[3], in[4], static_cast<float>(a.epsilon), a.relu);
      });
    case K::softmax:
      return typed<K::softmax>([](const Inputs& in, const AxisAttrs& a) { return softmax(in[0], a.axis); });
    case K::log_softmax:
      return typed<K::log_softmax>([](const Inputs& in, const AxisAttrs& a) { return log_softmax(in[0], a.axis); });
    case K::sparse_softmax_cross_entropy: return binary(sparse_softmax_cross_entropy);
    case K::reduce_sum: return reduce(reduce_sum);
    case K::reduce_mean: return reduce(reduce_mean);
    case K::reduce_max: return reduce(reduce_max);
    case K::argmax:
      return typed<K::argmax>([](const Inputs& in, const AxisAttrs& a) { return argmax(in[0], a.axis); });
    case K::cast:
      return typed<K::cast>([](const Inputs& in, const CastAttrs& a) { return cast(in[0], a.dtype); });
    case K::one_hot:
      return typed<K::one_hot>([](const Inputs& in, const OneHotAttrs& a) { return one_hot(in[0], a.depth, a.dtype); });
    case K::reshape:
      return typed<K::reshape>([](const Inputs& in, const ReshapeAttrs& a) {
        // 0 copies the input's dimension (ONNX's convention; trace writes it for the batch).
        Shape shape = a.shape;
        for (size_t i = 0; i < shape.size(); ++i) {
          if (shape[i] == 0 && static_cast<int>(i) < in[0].ndim()) shape[i] = in[0].shape()[i];
        }
        return reshape(in[0], shape);
      });
    case K::permute:
      return typed<K::permute>([](const Inputs& in, const PermuteAttrs& a) { return permute(in[0], a.perm); });
    case K::slice:
      return typed<K::slice>([](const Inputs& in, const SliceAttrs& a) {
        return slice(in[0], a.axis, a.start, a.end, a.step);
      });
    case K::contiguous:
      return [](const Inputs& in, const Attrs&) { return Outputs{contiguous(in[0])}; };
    case K::identity:
      return [](const Inputs& in, const Attrs&) { return Outputs{stop_gradient(in[0])}; };
    case K::broadcast_to:
      return typed<K::broadcast_to>([](const Inputs& in, const BroadcastToAttrs& a) { return broadcast_to(in[0], a.shape); });
    case K::concat:
      return [](const Inputs& in, const Attrs& a) { return Outputs{concat(in, parse_attrs<AxisAttrs>(a).axis)}; };
    case K::gather:
      return typed<K::gather>([](const Inputs& in, const AxisAttrs& a) { return gather(in[0], in[1], a.axis); });
    case K::layer_norm:
      return typed<K::layer_norm>([](const Inputs& in, const LayerNormAttrs& a) {
        return layer_norm(in[0], in[1], in[2], static_cast<float>(a.epsilon));
      });
    case K::conv_transpose2d:
      return typed<K::conv_transpose2d>([](const Inputs& in, const ConvTranspose2dAttrs& a) {
        return conv_transpose2d(in[0], in[1], optional_input(in, 2), a);
      });
    case K::resize2d:
      return typed<K::resize2d>([](const Inputs& in, const Resize2dAttrs& a) { return resize2d(in[0], a); });
    case K::pad:
      return typed<K::pad>([](const Inputs& in, const PadAttrs& a) { return pad(in[0], a); });
    case K::where: return [](const Inputs& in, const Attrs&) { return Outputs{where(in[0], in[1], in[2])}; };
    case K::logical_not: return [](const Inputs& in, const Attrs&) { return Outputs{logical_not(in[0])}; };
    case K::logical_and: return binary(logical_and);
    case K::logical_or: return binary(logical_or);
    case K::erf: return [](const Inputs& in, const Attrs&) { return Outputs{erf(in[0])}; };
    KILN_RNN_OPS(KILN_OP_CASE)
    return [kind](const Inputs& in, const Attrs& attrs) { return run_rnn_node(kind, in, parse_attrs<RnnAttrs>(attrs)); };
    KILN_ELTWISE_OPS(KILN_OP_CASE) {
      EltwiseKind e = *eltwise_kind_of(kind);
      return [e](const Inputs& in, const Attrs& a) {
        EltwiseAttrs p = parse_attrs<EltwiseAttrs>(a);
        return Outputs{eltwise(e, in[0], p.alpha, p.beta)};
      };
    }
  }
  throw std::logic_error(std::string("op kind ") + op_kind_name(kind) + " has no row in the op table");
}

std::vector<OpDef> build_table() {
  std::vector<OpDef> t;
#define KILN_OP_ROW(name, attrs, min_inputs, max_inputs, differentiable) \
  t.push_back({OpKind::name, #name, min_inputs, max_inputs, differentiable, run_of(OpKind::name), \
             infer_function_of(OpKind::name)});
  KILN_OPS(KILN_OP_ROW)
#undef KILN_OP_ROW
  return t;
}

}  // namespace

const std::vector<OpDef>& registered_ops() {
  static const std::vector<OpDef>* table = new std::vector<OpDef>(build_table());
  return *table;
}

const OpDef& op_def(OpKind kind) { return registered_ops()[static_cast<size_t>(kind)]; }

const OpDef& op_def(const std::string& name) {
  std::optional<OpKind> kind = op_kind_from_name(name);
  if (!kind) throw std::invalid_argument("op '" + name + "' is not a registered op kind");
  return op_def(*kind);
}

void check_arity(const OpDef& def, int n) {
  if (n >= def.min_inputs && (def.max_inputs < 0 || n <= def.max_inputs)) return;
  std::string takes = def.max_inputs == def.min_inputs ? std::to_string(def.min_inputs)
                      : def.max_inputs < 0 ? std::to_string(def.min_inputs) + " or more"
                                           : std::to_string(def.min_inputs) + " to " + std::to_string(def.max_inputs);
  throw std::invalid_argument("op '" + def.name + "' takes " + takes + " inputs, got " + std::to_string(n));
}

std::vector<Tensor> run_op(const Attrs& call, const std::vector<Tensor>& inputs) {
  const OpDef& def = op_def(call.kind());
  check_arity(def, static_cast<int>(inputs.size()));
  return def.run(inputs, call);
}

}  // namespace kiln::ops
