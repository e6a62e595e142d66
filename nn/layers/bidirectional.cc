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
// A flipped copy draws its own dropout seed (the forward copy keeps the layer's).
Layer rebuilt(const Layer& layer, const std::string& name, std::optional<bool> go_backwards, bool zero_output) {
  Config c = layer->config();
  c.set("name", name);
  if (go_backwards) {
    c.set("go_backwards", *go_backwards);
    c.set("seed", Config());
  }
  c.set("zero_output_for_mask", zero_output);
  return layer_from_config(layer->class_name(), c);
}

class BidirectionalImpl : public LayerImpl {
 public:
  BidirectionalImpl(const Layer& layer, const std::optional<std::string>& merge_mode, const std::optional<Layer>& backward,
                    const std::string& name)
      : LayerImpl("bidirectional", name), merge_mode_(merge_mode) {
    if (!is_recurrent(layer) || (backward && !is_recurrent(*backward))) {
      throw std::invalid_argument("Bidirectional: wraps LSTM, GRU or SimpleRNN, got " + layer->class_name() +
                                  (backward ? " and " + (*backward)->class_name() : std::string()));
    }
    if (merge_mode && *merge_mode != "concat" && *merge_mode != "sum" && *merge_mode != "mul" && *merge_mode != "ave") {
      throw std::invalid_argument("Bidirectional: merge_mode '" + *merge_mode +
                                  "' is not supported (concat, sum, mul, ave, or none for both outputs)");
    }
    const Config lc = layer->config();
    return_sequences_ = lc.at("return_sequences").as_bool();
    return_state_ = lc.at("return_state").as_bool();
    states_ = layer->class_name() == "LSTM" ? 2 : 1;
    const bool backwards = lc.at("go_backwards").as_bool();
    forward_ = rebuilt(layer, "forward_" + layer->name(), std::nullopt, return_sequences_);
    backward_ = backward ? rebuilt(*backward, (*backward)->name(), std::nullopt, return_sequences_)
                         : rebuilt(layer, "backward_" + layer->name(), !backwards, return_sequences_);
    const Config bc = backward_->config();
    if (bc.at("go_backwards").as_bool() == backwards) {
      throw std::invalid_argument("Bidirectional: forward_layer and backward_layer need different go_backwards, both are " +
                                  std::string(backwards ? "true" : "false"));
    }
    if (bc.at("return_sequences").as_bool() != return_sequences_ || bc.at("return_state").as_bool() != return_state_ ||
        backward_->class_name() != forward_->class_name()) {
      throw std::invalid_argument(
          "Bidirectional: forward_layer and backward_layer need the same class, return_sequences and return_state");
    }
  }

  void set_policy(const Policy& policy) override {
    LayerImpl::set_policy(policy);
    forward_->set_policy(policy);
    backward_->set_policy(policy);
  }

  // The sequence, then none or all of the initial states (forward's, then backward's).
  int num_inputs() const override { return -1; }
  int num_outputs() const override { return (merge_mode_ ? 1 : 2) + (return_state_ ? 2 * states_ : 0); }

  Tensor call(const std::vector<Tensor>& in, bool training) override { return call_with_mask(in, {}, training); }
  Tensor call_with_mask(const std::vector<Tensor>& in, const std::vector<Tensor>& masks, bool training) override {
    return call_outputs(in, masks, training)[0].value;
  }

  std::vector<MaskedTensor> call_outputs(const std::vector<Tensor>& in, const std::vector<Tensor>& masks,
                                         bool training) override {
    const size_t states = static_cast<size_t>(states_);
    if (in.size() != 1 && in.size() != 1 + 2 * states) {
      throw std::invalid_argument("layer '" + name() + "' (Bidirectional) takes the sequence and optionally " +
                                  std::to_string(2 * states) + " initial states (the forward layer's, then the " +
                                  "backward layer's), got " + std::to_string(in.size()) + " inputs");
    }
    const Tensor mask = masks.empty() ? Tensor() : masks[0];
    std::vector<Tensor> fwd_in{in[0]}, bwd_in{in[0]};
    if (in.size() > 1) {
      fwd_in.insert(fwd_in.end(), in.begin() + 1, in.begin() + 1 + states_);
      bwd_in.insert(bwd_in.end(), in.begin() + 1 + states_, in.end());
    }
    std::vector<Tensor> fwd_masks(fwd_in.size()), bwd_masks(bwd_in.size());
    fwd_masks[0] = bwd_masks[0] = mask;
    std::vector<MaskedTensor> fwd = forward_->invoke_outputs(fwd_in, fwd_masks, training);
    std::vector<MaskedTensor> bwd = backward_->invoke_outputs(bwd_in, bwd_masks, training);
    const Tensor out_mask = compute_mask(in, masks);
    std::vector<MaskedTensor> out;
    Tensor y_rev = in_input_order(bwd[0].value);
    if (merge_mode_) {
      out.push_back({merge(fwd[0].value, y_rev), out_mask});
    } else {
      out.push_back({fwd[0].value, out_mask});
      out.push_back({y_rev, out_mask});
    }
    for (size_t k = 1; k < fwd.size(); ++k) out.push_back({fwd[k].value, Tensor()});
    for (size_t k = 1; k < bwd.size(); ++k) out.push_back({bwd[k].value, Tensor()});
    return out;
  }

  Tensor in_input_order(Tensor y_rev) const {
    if (return_sequences_) {
      // The backward layer's sequence is in its reading order; Keras flips it back.
      const int64_t t = y_rev.shape()[1];
      std::vector<int32_t> last_first;
      for (int64_t k = t - 1; k >= 0; --k) last_first.push_back(static_cast<int32_t>(k));
      y_rev = gather(y_rev, Tensor::from_int32(last_first, {t}), 1);
    }
    return y_rev;
  }

  Tensor merge(const Tensor& y, const Tensor& y_rev) const {
    if (*merge_mode_ == "concat") return concat({y, y_rev}, -1);
    if (*merge_mode_ == "sum") return y + y_rev;
    if (*merge_mode_ == "mul") return y * y_rev;
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
    c.set("merge_mode", merge_mode_ ? Config(*merge_mode_) : Config());
    c.set("layer", serialize_layer(forward_));
    c.set("backward_layer", serialize_layer(backward_));
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    std::optional<Shape> s = forward_->compute_output_shape(in);
    if (s && merge_mode_ == "concat") s->back() *= 2;  // output 0; the others are no larger
    return s;
  }
  double compute_cost(const std::vector<Shape>& in) const override {
    return forward_->compute_cost(in) + backward_->compute_cost(in);
  }

 private:
  std::optional<std::string> merge_mode_;  // std::nullopt: Keras's None, both outputs
  bool return_sequences_ = false, return_state_ = false;
  int states_ = 1;  // per direction
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
  // Absent: Keras's default, concat; null: None, both outputs.
  std::optional<std::string> merge_mode = "concat";
  if (r.has("merge_mode")) merge_mode = r.optional("merge_mode") ? std::optional(r.string("merge_mode")) : std::nullopt;
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

Layer Bidirectional(const Layer& layer, const std::optional<std::string>& merge_mode, const std::optional<Layer>& backward_layer,
                    const std::string& name) {
  return Layer(std::make_shared<BidirectionalImpl>(layer, merge_mode, backward_layer, name));
}

}  // namespace kiln::nn
