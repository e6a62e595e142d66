#include "nn/layers/bidirectional.h"

#include <stdexcept>

#include "nn/layer_registry.h"
#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

bool is_recurrent(const Layer& l) {
  const std::string c = l->class_name();
  return c == "LSTM" || c == "GRU" || c == "SimpleRNN";
}

// `layer` rebuilt from its config with some keys replaced (Keras recreates the wrapped layers).
Layer rebuilt(const Layer& layer, const std::string& name, std::optional<bool> go_backwards, bool zero_output) {
  Config c = layer->config();
  c.set("name", name);
  if (go_backwards) c.set("go_backwards", *go_backwards);
  c.set("zero_output_for_mask", zero_output);
  return layer_from_config(layer->class_name(), c);
}

class BidirectionalImpl : public LayerImpl {
 public:
  BidirectionalImpl(const Layer& layer, const std::string& merge_mode, const std::optional<Layer>& backward,
                    const std::string& name)
      : LayerImpl("bidirectional", name), merge_mode_(merge_mode) {
    if (!is_recurrent(layer) || (backward && !is_recurrent(*backward))) {
      throw std::invalid_argument("Bidirectional: wraps LSTM, GRU or SimpleRNN, got " + layer->class_name() +
                                  (backward ? " and " + (*backward)->class_name() : std::string()));
    }
    if (merge_mode != "concat" && merge_mode != "sum" && merge_mode != "mul" && merge_mode != "ave") {
      throw std::invalid_argument("Bidirectional: merge_mode '" + merge_mode +
                                  "' is not supported (concat, sum, mul or ave; None gives two outputs, and a Kiln layer has one)");
    }
    const Config lc = layer->config();
    return_sequences_ = lc.at("return_sequences").as_bool();
    const bool backwards = lc.at("go_backwards").as_bool();
    forward_ = rebuilt(layer, "forward_" + layer->name(), std::nullopt, return_sequences_);
    backward_ = backward ? rebuilt(*backward, (*backward)->name(), std::nullopt, return_sequences_)
                         : rebuilt(layer, "backward_" + layer->name(), !backwards, return_sequences_);
    const Config bc = backward_->config();
    if (bc.at("go_backwards").as_bool() == backwards) {
      throw std::invalid_argument("Bidirectional: forward_layer and backward_layer need different go_backwards, both are " +
                                  std::string(backwards ? "true" : "false"));
    }
    if (bc.at("return_sequences").as_bool() != return_sequences_) {
      throw std::invalid_argument("Bidirectional: forward_layer and backward_layer need the same return_sequences");
    }
  }

  void set_policy(const Policy& policy) override {
    LayerImpl::set_policy(policy);
    forward_->set_policy(policy);
    backward_->set_policy(policy);
  }

  Tensor call(const std::vector<Tensor>& in, bool training) override { return call_with_mask(in, {Tensor()}, training); }

  Tensor call_with_mask(const std::vector<Tensor>& in, const std::vector<Tensor>& masks, bool training) override {
    std::vector<Tensor> m{masks.empty() ? Tensor() : masks[0]};
    Tensor y = forward_->invoke_masked(in, m, training).value;
    Tensor y_rev = backward_->invoke_masked(in, m, training).value;
    if (return_sequences_) {
      // The backward layer's sequence is in its reading order; Keras flips it back.
      const int64_t t = y_rev.shape()[1];
      std::vector<int32_t> last_first;
      for (int64_t k = t - 1; k >= 0; --k) last_first.push_back(static_cast<int32_t>(k));
      y_rev = gather(y_rev, Tensor::from_int32(last_first, {t}), 1);
    }
    if (merge_mode_ == "concat") return concat({y, y_rev}, -1);
    if (merge_mode_ == "sum") return y + y_rev;
    if (merge_mode_ == "mul") return y * y_rev;
    return (y + y_rev) * 0.5f;
  }

  Tensor compute_mask(const std::vector<Tensor>&, const std::vector<Tensor>& masks) const override {
    return return_sequences_ && !masks.empty() ? masks[0] : Tensor();
  }

  std::vector<Variable> variables() const override {
    std::vector<Variable> v = forward_->variables();
    for (const Variable& b : backward_->variables()) v.push_back(b);
    return v;
  }
  std::vector<Variable> trainable_variables() const override {
    if (!trainable) return {};
    std::vector<Variable> v = forward_->trainable_variables();
    for (const Variable& b : backward_->trainable_variables()) v.push_back(b);
    return v;
  }

  std::string class_name() const override { return "Bidirectional"; }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("merge_mode", merge_mode_);
    c.set("layer", serialize_layer(forward_));
    c.set("backward_layer", serialize_layer(backward_));
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    std::optional<Shape> s = forward_->compute_output_shape(in);
    if (s && merge_mode_ == "concat") s->back() *= 2;
    return s;
  }
  double compute_cost(const std::vector<Shape>& in) const override {
    return forward_->compute_cost(in) + backward_->compute_cost(in);
  }

 private:
  std::string merge_mode_;
  bool return_sequences_ = false;
  Layer forward_, backward_;
};

// Keras's serialized layer ({"module", "class_name", "config", "registered_name",
// "build_config"}) or Kiln's ({"class_name", "config"}).
Layer read_wrapped(ConfigReader& r, const char* key) {
  const Config& s = r.get(key);
  if (!s.is_map() || !s.has("class_name") || !s.has("config")) r.fail(key, "must be a serialized layer with class_name and config");
  const std::string class_name = s.at("class_name").as_string();
  if (class_name != "LSTM" && class_name != "GRU" && class_name != "SimpleRNN") {
    r.fail(key, "wraps " + class_name + ", expected LSTM, GRU or SimpleRNN");
  }
  return layer_from_config(class_name, s.at("config"));
}

Layer from_config(const Config& config) {
  ConfigReader r(config, "Bidirectional config");
  BaseLayerConfig base = read_base_config(r);
  const Config* mode = r.optional("merge_mode");
  if (!mode) r.fail("merge_mode", "None is not supported (a Kiln layer has one output)");
  const std::string merge_mode = r.string("merge_mode");
  Layer forward = read_wrapped(r, "layer");
  std::optional<Layer> backward;
  if (r.optional("backward_layer")) backward = read_wrapped(r, "backward_layer");
  r.finish();
  // The wrapped configs carry the forward_/backward_ names already: keep them.
  std::string name = forward->name();
  const std::string prefix = "forward_";
  if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  Layer wrapped = layer_from_config(forward->class_name(), [&] {
    Config c = forward->config();
    c.set("name", name);
    return c;
  }());
  return with_base_config(Bidirectional(wrapped, merge_mode, backward, base.name), base);
}

const bool registered = register_builtin_layer("Bidirectional", from_config);

}  // namespace

Layer Bidirectional(const Layer& layer, const std::string& merge_mode, const std::optional<Layer>& backward_layer,
                    const std::string& name) {
  return Layer(std::make_shared<BidirectionalImpl>(layer, merge_mode, backward_layer, name));
}

}  // namespace kiln::nn
