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

// The element-wise merges whose step is one binary op folded over the inputs.
class FoldImpl : public MergeImpl {
 public:
  using Step = Tensor (*)(const Tensor&, const Tensor&);
  FoldImpl(const char* type_name, const char* class_name, Step step, const std::string& name, size_t max_inputs = SIZE_MAX)
      : MergeImpl(type_name, class_name, name, max_inputs), step_(step) {}

 protected:
  Tensor merge(const std::vector<Tensor>& in) const override {
    Tensor out = in[0];
    for (size_t i = 1; i < in.size(); ++i) out = step_(out, in[i]);
    return out;
  }

 private:
  Step step_;
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
Layer Multiply(const std::string& name) { return Layer(std::make_shared<FoldImpl>("multiply", "Multiply", mul_step, name)); }
Layer Average(const std::string& name) { return Layer(std::make_shared<AverageImpl>(name)); }
Layer Maximum(const std::string& name) { return Layer(std::make_shared<FoldImpl>("maximum", "Maximum", max_step, name)); }
Layer Minimum(const std::string& name) { return Layer(std::make_shared<FoldImpl>("minimum", "Minimum", min_step, name)); }
Layer Concatenate(int axis, const std::string& name) { return Layer(std::make_shared<ConcatenateImpl>(axis, name)); }

}  // namespace kiln::nn
