#include "nn/layers/merge.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

std::string shapes_str(const std::vector<Shape>& shapes) {
  std::string s;
  for (const Shape& x : shapes) s += (s.empty() ? "" : ", ") + shape_str(x);
  return s;
}

// What every merge layer shares: the input count, Keras's broadcasting and its output shape.
class MergeImpl : public LayerImpl {
 public:
  MergeImpl(const char* type_name, const char* class_name, const std::string& name, size_t max_inputs = SIZE_MAX)
      : LayerImpl(type_name, name), class_name_(class_name), max_inputs_(max_inputs) {}
  int num_inputs() const override { return -1; }
  std::string class_name() const override { return class_name_; }
  Tensor call(const std::vector<Tensor>& in, bool) override { return merge(aligned(in)); }
  // Keras's Merge layers support masking. Its compute_mask: the element-wise OR of the inputs'
  // masks when every input has one, else no mask. Masks align as their values do (a lower
  // rank gains 1s after the batch) and broadcast as they do.
  Tensor compute_mask(const std::vector<Tensor>& in, const std::vector<Tensor>& masks) const override {
    if (masks.empty() || !all_masked(in, masks)) return Tensor();
    std::vector<Tensor> m = aligned_masks(in, masks);
    Tensor out = m[0];
    for (size_t i = 1; i < m.size(); ++i) out = maximum(out, m[i]);
    return out;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    try {
      return merged_shape(in);
    } catch (const std::invalid_argument&) {
      return std::nullopt;
    }
  }

 protected:
  virtual Tensor merge(const std::vector<Tensor>& in) const = 0;

  // The inputs, of lower rank ones reshaped to the highest rank, after the checks.
  std::vector<Tensor> aligned(const std::vector<Tensor>& in) const {
    std::vector<Shape> shapes;
    for (const Tensor& x : in) shapes.push_back(x.shape());
    merged_shape(shapes);
    size_t rank = 0;
    for (const Tensor& x : in) rank = std::max(rank, static_cast<size_t>(x.ndim()));
    std::vector<Tensor> out;
    for (const Tensor& x : in) {
      if (static_cast<size_t>(x.ndim()) == rank) {
        out.push_back(x);
        continue;
      }
      Shape s = x.shape();
      s.insert(s.begin() + 1, rank - s.size(), 1);
      out.push_back(reshape(x, s));
    }
    return out;
  }

  // True when every input has a mask; throws when the counts differ.
  bool all_masked(const std::vector<Tensor>& in, const std::vector<Tensor>& masks) const {
    if (masks.size() != in.size()) {
      throw std::invalid_argument("layer '" + name() + "' (" + class_name_ + "): " + std::to_string(masks.size()) +
                                  " masks for " + std::to_string(in.size()) + " inputs");
    }
    for (const Tensor& m : masks) {
      if (!m.defined()) return false;
    }
    return true;
  }

  // The defined masks reshaped as aligned() reshapes their values (undefined ones stay so).
  std::vector<Tensor> aligned_masks(const std::vector<Tensor>& in, const std::vector<Tensor>& masks) const {
    size_t rank = 0;
    for (const Tensor& x : in) rank = std::max(rank, static_cast<size_t>(x.ndim()));
    std::vector<Tensor> out;
    for (size_t i = 0; i < masks.size(); ++i) {
      const size_t missing = rank - static_cast<size_t>(in[i].ndim());
      if (!masks[i].defined() || missing == 0) {
        out.push_back(masks[i]);
        continue;
      }
      Shape s = masks[i].shape();
      s.insert(s.begin() + std::min<size_t>(1, s.size()), missing, 1);
      out.push_back(reshape(masks[i], s));
    }
    return out;
  }

  // Keras's _compute_elemwise_op_output_shape over the inputs; throws naming the layer.
  virtual Shape merged_shape(const std::vector<Shape>& in) const {
    check_count(in);
    size_t rank = 0;
    for (const Shape& s : in) {
      if (s.empty()) fail("inputs must have a batch dimension", in);
      if (s[0] != in[0][0]) fail("batch sizes differ", in);
      rank = std::max(rank, s.size());
    }
    Shape out(rank, 1);
    out[0] = in[0][0];
    for (const Shape& s : in) {
      const size_t offset = rank - s.size();  // a lower rank gains its dimensions after the batch
      for (size_t i = 1; i < s.size(); ++i) {
        int64_t& o = out[offset + i];
        if (o == 1) o = s[i];
        else if (s[i] != 1 && s[i] != o) fail("shapes do not broadcast", in);
      }
    }
    return out;
  }

  void check_count(const std::vector<Shape>& in) const {
    if (in.empty() || in.size() > max_inputs_ || (max_inputs_ == 2 && in.size() != 2)) {
      std::string want = max_inputs_ == 2 ? "exactly 2" : "at least 1";
      throw std::invalid_argument("layer '" + name() + "' (" + class_name_ + ") needs " + want + " inputs, got " +
                                  std::to_string(in.size()));
    }
  }
  [[noreturn]] void fail(const std::string& what, const std::vector<Shape>& in) const {
    throw std::invalid_argument("layer '" + name() + "' (" + class_name_ + "): " + what + ": " + shapes_str(in));
  }

 private:
  std::string class_name_;
  size_t max_inputs_;
};

class AddImpl : public MergeImpl {
 public:
  explicit AddImpl(const std::string& name) : MergeImpl("add", "Add", name) {}
  Tensor call_with_relu(const std::vector<Tensor>& in, bool) override { return sum(aligned(in), true); }
  bool fuses_relu() const override { return true; }

 protected:
  Tensor merge(const std::vector<Tensor>& in) const override { return sum(in, false); }

 private:
  static Tensor sum(const std::vector<Tensor>& in, bool relu_after) {
    if (in.size() == 1) return relu_after ? relu(in[0]) : in[0];
    Tensor total = in[0];
    for (size_t i = 1; i + 1 < in.size(); ++i) total = total + in[i];
    return relu_after ? add_relu(total, in.back()) : total + in.back();
  }
};

// Keras's ops.where(mask, a, b) for a 0/1 mask: exact for finite a and b (an inf or NaN at a
// step the mask drops still reaches the output, as NaN: Kiln propagates them everywhere).
Tensor select(const Tensor& mask, const Tensor& a, const Tensor& b) {
  return a * mask + b * (Tensor::scalar(1.f, mask.dtype()) - mask);
}

// All-ones of `shape`, whose batch (shape[0]) is that of `mask`, computed from it so that a
// traced graph keeps its batch dimension free (a literal of ones would fix it to the
// sample's). Exact: a mask holds only 0 and 1.
Tensor kept_like(const Tensor& mask, const Shape& shape) {
  std::vector<int> rest;
  for (int i = 1; i < mask.ndim(); ++i) rest.push_back(i);
  Tensor per_row = rest.empty() ? mask : reduce_max(mask, rest, /*keepdims=*/true);
  Tensor ones_per_row = per_row * Tensor::scalar(0.f) + Tensor::scalar(1.f);
  Shape tail = shape;
  tail[0] = 1;
  return tail == Shape(shape.size(), 1) ? ones_per_row : ones_per_row * Tensor::ones(tail);
}

// How a merge treats the values at masked steps (Keras's _merge_function of each layer).
enum class MaskedValues {
  kept,            // Add, Subtract, Average: the values merge as they are
  skipped,         // Maximum, Minimum (_apply_merge_op_and_or_mask): a masked step takes the other side's value
  one_then_zero,   // Multiply: a masked factor is 1, and a step no input keeps is 0
};

// The element-wise merges whose step is one binary op folded over the inputs.
class FoldImpl : public MergeImpl {
 public:
  using Step = Tensor (*)(const Tensor&, const Tensor&);
  FoldImpl(const char* type_name, const char* class_name, Step step, const std::string& name, size_t max_inputs = SIZE_MAX,
           MaskedValues masked = MaskedValues::kept)
      : MergeImpl(type_name, class_name, name, max_inputs), step_(step), masked_(masked) {}

  Tensor call_with_mask(const std::vector<Tensor>& in_raw, const std::vector<Tensor>& masks_raw, bool) override {
    std::vector<Tensor> in = aligned(in_raw);
    if (masked_ == MaskedValues::kept) return merge(in);
    all_masked(in_raw, masks_raw);  // checks the count
    std::vector<Tensor> masks = aligned_masks(in_raw, masks_raw);
    for (Tensor& m : masks) {
      if (m.defined()) m = mask_for_value(m, in[0].dtype());
    }
    return masked_ == MaskedValues::skipped ? merge_skipping(in, masks) : multiply_masked(in, masks);
  }

 protected:
  Tensor merge(const std::vector<Tensor>& in) const override {
    Tensor out = in[0];
    for (size_t i = 1; i < in.size(); ++i) out = step_(out, in[i]);
    return out;
  }

 private:
  // Keras's _apply_merge_op_and_or_mask, step by step; the running mask ends at the first
  // input without one.
  Tensor merge_skipping(const std::vector<Tensor>& in, const std::vector<Tensor>& masks) const {
    Tensor out = in[0], out_mask = masks[0];
    for (size_t i = 1; i < in.size(); ++i) {
      Tensor x = in[i];
      if (masks[i].defined()) x = select(masks[i], x, out);
      if (out_mask.defined()) out = select(out_mask, out, x);
      out_mask = masks[i].defined() && out_mask.defined() ? maximum(out_mask, masks[i]) : Tensor();
      out = step_(out, x);
    }
    return out;
  }

  // Keras's Multiply._merge_function.
  Tensor multiply_masked(const std::vector<Tensor>& in, const std::vector<Tensor>& masks) const {
    bool all = true;
    for (const Tensor& m : masks) all = all && m.defined();
    Tensor out, out_mask;
    for (size_t i = 0; i < in.size(); ++i) {
      Tensor x = in[i];
      if (masks[i].defined()) {
        x = select(masks[i], x, Tensor::scalar(1.f, x.dtype()));
        if (all) out_mask = out_mask.defined() ? maximum(out_mask, masks[i]) : masks[i];
      }
      out = out.defined() ? step_(out, x) : x;
    }
    return all ? out * out_mask : out;
  }

  Step step_;
  MaskedValues masked_;
};

class AverageImpl : public MergeImpl {
 public:
  explicit AverageImpl(const std::string& name) : MergeImpl("average", "Average", name) {}

 protected:
  Tensor merge(const std::vector<Tensor>& in) const override {
    Tensor out = in[0];
    for (size_t i = 1; i < in.size(); ++i) out = out + in[i];
    return out / static_cast<float>(in.size());
  }
};

class ConcatenateImpl : public MergeImpl {
 public:
  ConcatenateImpl(int axis, const std::string& name) : MergeImpl("concatenate", "Concatenate", name), axis_(axis) {}
  Config config() const override { return LayerImpl::config().set("axis", axis_); }
  int axis() const { return axis_; }

  // Keras's Concatenate.compute_mask: an input without a mask counts as all kept; the masks
  // (each broadcast over its input's features) join along the axis and a step is kept where
  // any of its features is. So along the features axis the result is the OR of the masks,
  // along another axis their concatenation.
  Tensor compute_mask(const std::vector<Tensor>& in, const std::vector<Tensor>& masks) const override {
    if (masks.empty() || !any_mask(masks)) return Tensor();
    all_masked(in, masks);  // checks the count
    const int rank = in[0].ndim();
    const size_t a = resolved_axis(rank, {});
    Tensor some;  // a defined mask, for the batch of the all-kept ones
    for (const Tensor& m : masks) {
      if (m.defined()) some = m;
    }
    if (a + 1 == static_cast<size_t>(rank)) {
      Tensor out;
      for (const Tensor& m : masks) {
        if (!m.defined()) return kept_like(some, some.shape());
        out = out.defined() ? maximum(out, m) : m;
      }
      return out;
    }
    std::vector<Tensor> parts;
    for (size_t i = 0; i < masks.size(); ++i) {
      Shape s = in[i].shape();
      s.pop_back();
      parts.push_back(masks[i].defined() ? masks[i] : a == 0 ? Tensor::ones(s) : kept_like(some, s));
    }
    return parts.size() == 1 ? parts[0] : concat(parts, static_cast<int>(a));
  }

 protected:
  Tensor merge(const std::vector<Tensor>& in) const override {
    return in.size() == 1 ? in[0] : concat(in, static_cast<int>(resolved_axis(in[0].ndim(), {})));
  }
  // Concatenation does not broadcast: no input is reshaped.
  Shape merged_shape(const std::vector<Shape>& in) const override {
    check_count(in);
    Shape out = in[0];
    const size_t a = resolved_axis(static_cast<int>(out.size()), in);
    for (size_t k = 1; k < in.size(); ++k) {
      const Shape& s = in[k];
      if (s.size() != out.size()) fail("ranks differ", in);
      for (size_t i = 0; i < s.size(); ++i) {
        if (i != a && s[i] != out[i]) fail("shapes differ outside axis " + std::to_string(axis_), in);
      }
      out[a] += s[a];
    }
    return out;
  }

 private:
  size_t resolved_axis(int rank, const std::vector<Shape>& in) const {
    int a = axis_ < 0 ? axis_ + rank : axis_;
    if (a < 0 || a >= rank) fail("axis " + std::to_string(axis_) + " is out of range for rank " + std::to_string(rank), in);
    return static_cast<size_t>(a);
  }
  int axis_;
};

Tensor sub_step(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor mul_step(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor max_step(const Tensor& a, const Tensor& b) { return maximum(a, b); }
Tensor min_step(const Tensor& a, const Tensor& b) { return minimum(a, b); }

// The merges without arguments of their own: only the base config.
Layer plain_from_config(const Config& config, const std::string& class_name, Layer (*make)(const std::string&)) {
  ConfigReader r(config, class_name + " config");
  BaseLayerConfig base = read_base_config(r);
  r.finish();
  return with_base_config(make(base.name), base);
}
Layer add_from_config(const Config& c) { return plain_from_config(c, "Add", Add); }
Layer subtract_from_config(const Config& c) { return plain_from_config(c, "Subtract", Subtract); }
Layer multiply_from_config(const Config& c) { return plain_from_config(c, "Multiply", Multiply); }
Layer average_from_config(const Config& c) { return plain_from_config(c, "Average", Average); }
Layer maximum_from_config(const Config& c) { return plain_from_config(c, "Maximum", Maximum); }
Layer minimum_from_config(const Config& c) { return plain_from_config(c, "Minimum", Minimum); }

Layer concatenate_from_config(const Config& config) {
  ConfigReader r(config, "Concatenate config");
  BaseLayerConfig base = read_base_config(r);
  int64_t axis = r.integer("axis", -1, -64, 63);
  r.finish();
  return with_base_config(Concatenate(static_cast<int>(axis), base.name), base);
}

const bool registered = register_builtin_layer("Add", add_from_config) &&
                        register_builtin_layer("Subtract", subtract_from_config) &&
                        register_builtin_layer("Multiply", multiply_from_config) &&
                        register_builtin_layer("Average", average_from_config) &&
                        register_builtin_layer("Maximum", maximum_from_config) &&
                        register_builtin_layer("Minimum", minimum_from_config) &&
                        register_builtin_layer("Concatenate", concatenate_from_config);

}  // namespace

Layer Add(const std::string& name) { return Layer(std::make_shared<AddImpl>(name)); }
Layer Subtract(const std::string& name) {
  return Layer(std::make_shared<FoldImpl>("subtract", "Subtract", sub_step, name, 2));
}
Layer Multiply(const std::string& name) {
  return Layer(std::make_shared<FoldImpl>("multiply", "Multiply", mul_step, name, SIZE_MAX, MaskedValues::one_then_zero));
}
Layer Average(const std::string& name) { return Layer(std::make_shared<AverageImpl>(name)); }
Layer Maximum(const std::string& name) {
  return Layer(std::make_shared<FoldImpl>("maximum", "Maximum", max_step, name, SIZE_MAX, MaskedValues::skipped));
}
Layer Minimum(const std::string& name) {
  return Layer(std::make_shared<FoldImpl>("minimum", "Minimum", min_step, name, SIZE_MAX, MaskedValues::skipped));
}
Layer Concatenate(int axis, const std::string& name) { return Layer(std::make_shared<ConcatenateImpl>(axis, name)); }

}  // namespace kiln::nn
