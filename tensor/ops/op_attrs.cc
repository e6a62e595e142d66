#include "tensor/ops/op_attrs.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace kiln::ops {
namespace {

// Reads one op's bag, naming the op and the attribute in every error.
class Reader {
 public:
  explicit Reader(const Attrs& a) : a_(a) {}

  [[noreturn]] void fail(const std::string& name, const std::string& what) const {
    throw std::invalid_argument(a_.op() + ": attribute '" + name + "' " + what);
  }

  int64_t integer(const std::string& name, int64_t low, int64_t high) const {
    int64_t v = a_.get_int(name);
    if (v < low || v > high) fail(name, "is " + std::to_string(v) + ", expected " + range(low, high));
    return v;
  }
  int small_int(const std::string& name) const {
    return static_cast<int>(integer(name, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
  }
  bool flag(const std::string& name) const { return a_.get_int(name) != 0; }

  float finite(const std::string& name) const {
    double v = a_.get_float(name);
    if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max()) {
      fail(name, "is " + attr_value_string(AttrValue(v)) + ", expected a finite float");
    }
    return static_cast<float>(v);
  }
  float not_nan(const std::string& name) const {
    double v = a_.get_float(name);
    if (std::isnan(v)) fail(name, "is NaN");
    return static_cast<float>(v);
  }
  float positive(const std::string& name) const {
    float v = finite(name);
    if (!(v > 0.f)) fail(name, "is " + attr_value_string(AttrValue(double{v})) + ", expected a positive float");
    return v;
  }

  // `count` ints (any count when -1), each in [low, high].
  std::vector<int64_t> ints(const std::string& name, int count, int64_t low, int64_t high) const {
    const std::vector<int64_t>& v = a_.get_ints(name);
    if (count >= 0 && static_cast<int>(v.size()) != count) {
      fail(name, "has " + std::to_string(v.size()) + " values, expected " + std::to_string(count));
    }
    for (int64_t x : v) {
      if (x < low || x > high) fail(name, "holds " + std::to_string(x) + ", expected " + range(low, high));
    }
    return v;
  }
  std::vector<int> small_ints(const std::string& name) const {
    std::vector<int> out;
    for (int64_t x : ints(name, -1, std::numeric_limits<int>::min(), std::numeric_limits<int>::max())) {
      out.push_back(static_cast<int>(x));
    }
    return out;
  }

  // An enum from its name, with the parser's message (which lists the choices).
  template <typename F>
  auto named(const std::string& name, F from_name) const {
    const std::string& s = a_.get_string(name);
    try {
      return from_name(s);
    } catch (const std::invalid_argument& e) {
      fail(name, std::string("is invalid: ") + e.what());
    }
  }
  DType dtype(const std::string& name) const { return named(name, dtype_from_name); }

 private:
  static std::string range(int64_t low, int64_t high) {
    return "in [" + std::to_string(low) + ", " + std::to_string(high) + "]";
  }
  const Attrs& a_;
};

// Strides, dilations, kernel sizes and groups: positive and at most 2^31 - 1, so that no
// geometry product of two of them overflows before the shapes are checked.
constexpr int64_t kMaxGeometry = std::numeric_limits<int32_t>::max();

// "pads" ({top, left, bottom, right}, each in [0, 2^31 - 1]) comes with padding="explicit"
// and only with it.
Pads2d explicit_pads(const Attrs& a, const Reader& r, Padding padding) {
  if (padding != Padding::explicit_pads) {
    if (a.has("pads")) r.fail("pads", "is given with padding '" + std::string(padding_name(padding)) + "', expected padding 'explicit'");
    return {0, 0, 0, 0};
  }
  if (!a.has("pads")) r.fail("pads", "is missing (padding 'explicit' needs {top, left, bottom, right})");
  auto p = r.ints("pads", 4, 0, kMaxGeometry);
  return {p[0], p[1], p[2], p[3]};
}

Conv2dAttrs conv_geometry(const Attrs& a, const Reader& r) {
  Conv2dAttrs o;
  auto s = r.ints("strides", 2, 1, kMaxGeometry);
  auto d = r.ints("dilation", 2, 1, kMaxGeometry);
  o.strides = {s[0], s[1]};
  o.dilation = {d[0], d[1]};
  o.padding = r.named("padding", op_padding_from_name);
  o.pads = explicit_pads(a, r, o.padding);
  o.groups = r.integer("groups", 1, kMaxGeometry);
  return o;
}

int32_t zero_point_for(const Reader& r, DType dtype) {
  int64_t low = dtype == DType::u8 ? 0 : -128, high = dtype == DType::u8 ? 255 : 127;
  return static_cast<int32_t>(r.integer("zero_point", low, high));
}

QuantizedEpilogue quantized_epilogue(const Attrs& a, const Reader& r) {
  r.named("activation", epilogue_from_name);
  r.dtype("out_dtype");
  r.positive("x_scale");
  r.positive("residual_scale");
  r.positive("out_scale");
  for (double s : a.get_floats("w_scales")) {
    if (!(std::isfinite(s) && s > 0 && s <= std::numeric_limits<float>::max() && static_cast<float>(s) > 0.f)) {
      r.fail("w_scales", "holds " + std::to_string(s) + ", expected finite positive floats");
    }
  }
  QuantizedEpilogue q = quantized_epilogue_from(a);  // checks the rest (tensor/ops/quantized.h)
  if (q.out_dtype == DType::bf16 || q.out_dtype == DType::s32) r.fail("out_dtype", "is " + std::string(dtype_name(q.out_dtype)) + ", expected f32, u8 or s8");
  return q;
}

}  // namespace

template <>
NoAttrs parse_attrs<NoAttrs>(const Attrs&) {
  return {};
}

template <>
LinearAttrs parse_attrs<LinearAttrs>(const Attrs& a) {
  return {Reader(a).named("activation", fused_activation_from_name)};
}

template <>
Conv2dAttrs parse_attrs<Conv2dAttrs>(const Attrs& a) {
  Reader r(a);
  Conv2dAttrs o = conv_geometry(a, r);
  o.activation = r.named("activation", fused_activation_from_name);
  return o;
}

template <>
FusedConv2dAttrs parse_attrs<FusedConv2dAttrs>(const Attrs& a) {
  Reader r(a);
  return {conv_geometry(a, r), r.named("activation", epilogue_from_name)};
}

template <>
FusedLinearAttrs parse_attrs<FusedLinearAttrs>(const Attrs& a) {
  return {Reader(a).named("activation", epilogue_from_name)};
}

template <>
QuantizeAttrs parse_attrs<QuantizeAttrs>(const Attrs& a) {
  Reader r(a);
  QuantizeAttrs o;
  o.scale = r.positive("scale");
  o.dtype = r.dtype("dtype");
  if (o.dtype != DType::u8 && o.dtype != DType::s8) r.fail("dtype", "is " + std::string(dtype_name(o.dtype)) + ", expected u8 or s8");
  o.zero_point = zero_point_for(r, o.dtype);
  return o;
}

template <>
DequantizeAttrs parse_attrs<DequantizeAttrs>(const Attrs& a) {
  Reader r(a);
  return {r.positive("scale"), static_cast<int32_t>(r.integer("zero_point", -128, 255))};
}

template <>
QConv2dAttrs parse_attrs<QConv2dAttrs>(const Attrs& a) {
  Reader r(a);
  return {conv_geometry(a, r), quantized_epilogue(a, r)};
}

template <>
QLinearAttrs parse_attrs<QLinearAttrs>(const Attrs& a) {
  return {quantized_epilogue(a, Reader(a))};
}

template <>
Pool2dAttrs parse_attrs<Pool2dAttrs>(const Attrs& a) {
  Reader r(a);
  Pool2dAttrs o;
  auto k = r.ints("pool_size", 2, 1, kMaxGeometry);
  auto s = r.ints("strides", 2, 0, kMaxGeometry);  // 0: the pool size
  o.pool_size = {k[0], k[1]};
  o.strides = {s[0], s[1]};
  o.padding = r.named("padding", op_padding_from_name);
  o.pads = explicit_pads(a, r, o.padding);
  return o;
}

template <>
BatchNormAttrs parse_attrs<BatchNormAttrs>(const Attrs& a) {
  Reader r(a);
  BatchNormAttrs o;
  r.finite("epsilon");
  o.epsilon = a.get_float("epsilon");
  if (o.epsilon < 0) r.fail("epsilon", "is negative");
  o.relu = r.flag("relu");
  return o;
}

template <>
LayerNormAttrs parse_attrs<LayerNormAttrs>(const Attrs& a) {
  Reader r(a);
  LayerNormAttrs o;
  r.finite("epsilon");
  o.epsilon = a.get_float("epsilon");
  if (o.epsilon < 0) r.fail("epsilon", "is negative");
  return o;
}

template <>
AxisAttrs parse_attrs<AxisAttrs>(const Attrs& a) {
  return {Reader(a).small_int("axis")};
}

template <>
ReduceAttrs parse_attrs<ReduceAttrs>(const Attrs& a) {
  Reader r(a);
  return {r.small_ints("axes"), r.flag("keepdims")};
}

template <>
CastAttrs parse_attrs<CastAttrs>(const Attrs& a) {
  return {Reader(a).dtype("dtype")};
}

template <>
OneHotAttrs parse_attrs<OneHotAttrs>(const Attrs& a) {
  Reader r(a);
  return {r.integer("depth", 0, std::numeric_limits<int64_t>::max()), r.dtype("dtype")};
}

template <>
ReshapeAttrs parse_attrs<ReshapeAttrs>(const Attrs& a) {
  return {Reader(a).ints("shape", -1, -1, std::numeric_limits<int64_t>::max())};
}

template <>
PermuteAttrs parse_attrs<PermuteAttrs>(const Attrs& a) {
  return {Reader(a).small_ints("perm")};
}

template <>
SliceAttrs parse_attrs<SliceAttrs>(const Attrs& a) {
  Reader r(a);
  SliceAttrs o;
  o.axis = r.small_int("axis");
  o.start = a.get_int("start");
  o.end = a.get_int("end");
  o.step = a.get_int("step");
  return o;
}

template <>
BroadcastToAttrs parse_attrs<BroadcastToAttrs>(const Attrs& a) {
  return {a.get_ints("shape")};
}

template <>
EltwiseAttrs parse_attrs<EltwiseAttrs>(const Attrs& a) {
  Reader r(a);
  return {r.not_nan("alpha"), r.not_nan("beta")};  // clip's bounds may be infinite
}

template <>
AttentionAttrs parse_attrs<AttentionAttrs>(const Attrs& a) {
  Reader r(a);
  AttentionAttrs o;
  o.scale = r.finite("scale");
  o.scale = a.get_float("scale");  // the double the eager op applied (finite() checked it fits a float)
  o.causal = r.flag("causal");
  o.mask_kind = r.named("mask_kind", attention_mask_from_name);
  return o;
}

template <>
RnnAttrs parse_attrs<RnnAttrs>(const Attrs& a) {
  Reader r(a);
  return {r.flag("initial_state"), r.flag("go_backwards"), r.flag("zero_output_for_mask")};
}

template <>
ConvTranspose2dAttrs parse_attrs<ConvTranspose2dAttrs>(const Attrs& a) {
  Reader r(a);
  ConvTranspose2dAttrs o;
  auto s = r.ints("strides", 2, 1, kMaxGeometry);
  auto d = r.ints("dilation", 2, 1, kMaxGeometry);
  auto p = r.ints("output_padding", 2, -1, kMaxGeometry);  // -1: Keras's None
  o.strides = {s[0], s[1]};
  o.dilation = {d[0], d[1]};
  o.output_padding = {p[0], p[1]};
  o.padding = r.named("padding", padding_from_name);
  for (int i = 0; i < 2; ++i) {
    if (p[i] >= s[i]) r.fail("output_padding", "holds " + std::to_string(p[i]) + ", expected below the stride " + std::to_string(s[i]));
  }
  return o;
}

template <>
Resize2dAttrs parse_attrs<Resize2dAttrs>(const Attrs& a) {
  Reader r(a);
  auto s = r.ints("size", 2, 1, kMaxGeometry);
  return {{s[0], s[1]}, r.named("interpolation", interpolation_from_name)};
}

template <>
PadAttrs parse_attrs<PadAttrs>(const Attrs& a) {
  Reader r(a);
  PadAttrs o;
  o.before = r.ints("before", -1, -kMaxGeometry, kMaxGeometry);
  o.after = r.ints("after", static_cast<int>(o.before.size()), -kMaxGeometry, kMaxGeometry);
  o.mode = r.named("mode", pad_mode_from_name);
  o.value = r.finite("value");
  o.value = a.get_float("value");  // the double the eager op wrote (finite() checked it fits a float)
  return o;
}

void check_attrs(const Attrs& a) {
  switch (a.kind()) {
#define KILN_CHECK_ATTRS(name, attrs, ...) \
  case OpKind::name:                       \
    parse_attrs<attrs>(a);                 \
    return;
    KILN_OPS(KILN_CHECK_ATTRS)
#undef KILN_CHECK_ATTRS
  }
}

std::optional<EltwiseKind> eltwise_kind_of(OpKind kind) {
  switch (kind) {
#define KILN_ELTWISE_KIND(name, ...) \
  case OpKind::name:                 \
    return EltwiseKind::name;
    KILN_ELTWISE_OPS(KILN_ELTWISE_KIND)
#undef KILN_ELTWISE_KIND
    default:
      return std::nullopt;
  }
}

Epilogue epilogue_of(FusedActivation activation) {
  return activation == FusedActivation::relu ? Epilogue::relu : Epilogue::none;
}

}  // namespace kiln::ops
