#include "nn/layers/recurrent.h"

#include <atomic>
#include <stdexcept>

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"

namespace kiln::nn {
namespace {

enum class Cell { lstm, gru, simple_rnn };

const char* keras_name(Cell c) { return c == Cell::lstm ? "LSTM" : c == Cell::gru ? "GRU" : "SimpleRNN"; }
int gates(Cell c) { return c == Cell::lstm ? 4 : c == Cell::gru ? 3 : 1; }
int num_states(Cell c) { return c == Cell::lstm ? 2 : 1; }

class RecurrentImpl : public LayerImpl {
 public:
  RecurrentImpl(Cell cell, int64_t units, const RecurrentOptions& opt, const std::string& name)
      : LayerImpl(cell == Cell::lstm ? "lstm" : cell == Cell::gru ? "gru" : "simple_rnn", name),
        cell_(cell), units_(units), opt_(opt), seed_(opt.seed ? opt.seed : next_global_seed()) {
    const std::string who = std::string(keras_name(cell)) + ": ";
    if (units <= 0 || units > kMaxConfigSize) throw std::invalid_argument(who + "units must be positive, got " + std::to_string(units));
    auto refuse = [&](bool bad, const std::string& what) {
      if (bad) throw std::invalid_argument(who + what);
    };
    refuse(opt.activation != "tanh", "activation '" + opt.activation + "' is not supported (oneDNN's cells use tanh)");
    refuse(cell != Cell::simple_rnn && opt.recurrent_activation != "sigmoid",
           "recurrent_activation '" + opt.recurrent_activation + "' is not supported (oneDNN's cells use sigmoid)");
    refuse(!(opt.dropout >= 0.f && opt.dropout < 1.f), "dropout must be in [0, 1), got " + std::to_string(opt.dropout));
    refuse(opt.recurrent_dropout != 0.f,
           "recurrent_dropout=" + std::to_string(opt.recurrent_dropout) +
               " is not supported (0 only): Keras masks h before the recurrent matmul at every step, which oneDNN's "
               "fused cells cannot do; dropout (on the inputs) is supported");
    refuse(opt.stateful, "stateful=true is not supported (each call starts from zero states or initial_state)");
    refuse(cell == Cell::gru && !opt.reset_after, "reset_after=false is not supported (oneDNN's linear-before-reset GRU is reset_after=true, Keras's default)");
  }

  void build(const std::vector<Shape>& shapes) override {
    if (shapes[0].size() != 3) {
      throw std::invalid_argument("layer '" + name() + "' (" + keras_name(cell_) + ") needs [batch, time, features], got " + shape_str(shapes[0]));
    }
    const int64_t g = gates(cell_), features = shapes[0][2];
    kernel_ = add_weight("kernel", {features, g * units_}, opt_.kernel_initializer);
    recurrent_kernel_ = add_weight("recurrent_kernel", {units_, g * units_}, opt_.recurrent_initializer);
    if (opt_.use_bias) {
      bias_ = add_weight("bias", bias_shape(), opt_.bias_initializer);
      if (cell_ == Cell::lstm && opt_.unit_forget_bias) {
        // Keras: [bias_initializer(units), ones(units), bias_initializer(2 * units)].
        std::vector<float> b = bias_.value().to_vector();
        std::fill(b.begin() + units_, b.begin() + 2 * units_, 1.f);
        bias_.assign(Tensor::from_vector(b, bias_shape()));
      }
    }
  }

  // The sequence, then (as Keras's initial_state) none or all of the states.
  int num_inputs() const override { return -1; }
  int num_outputs() const override { return opt_.return_state ? 1 + num_states(cell_) : 1; }

  Tensor call(const std::vector<Tensor>& in, bool training) override { return call_with_mask(in, {}, training); }
  Tensor call_with_mask(const std::vector<Tensor>& in, const std::vector<Tensor>& masks, bool training) override {
    return run(in, masks, training)[0];
  }
  std::vector<MaskedTensor> call_outputs(const std::vector<Tensor>& in, const std::vector<Tensor>& masks,
                                         bool training) override {
    std::vector<Tensor> values = run(in, masks, training);
    std::vector<MaskedTensor> out{{values[0], compute_mask(in, masks)}};
    for (size_t k = 1; k < values.size(); ++k) out.push_back({values[k], Tensor()});
    return out;
  }

  Tensor compute_mask(const std::vector<Tensor>&, const std::vector<Tensor>& masks) const override {
    return opt_.return_sequences && !masks.empty() ? masks[0] : Tensor();
  }

  std::string class_name() const override { return keras_name(cell_); }
  Config config() const override {
    Config c = LayerImpl::config();
    c.set("units", units_);
    c.set("activation", opt_.activation);
    if (cell_ != Cell::simple_rnn) c.set("recurrent_activation", opt_.recurrent_activation);
    c.set("use_bias", opt_.use_bias);
    c.set("kernel_initializer", opt_.kernel_initializer);
    c.set("recurrent_initializer", opt_.recurrent_initializer);
    c.set("bias_initializer", opt_.bias_initializer);
    if (cell_ == Cell::lstm) c.set("unit_forget_bias", opt_.unit_forget_bias);
    c.set("dropout", opt_.dropout);
    c.set("recurrent_dropout", opt_.recurrent_dropout);
    c.set("seed", static_cast<int64_t>(seed_));  // the resolved seed: a loaded layer draws the same masks
    c.set("return_sequences", opt_.return_sequences);
    c.set("return_state", opt_.return_state);
    c.set("go_backwards", opt_.go_backwards);
    c.set("stateful", opt_.stateful);
    c.set("unroll", opt_.unroll);
    if (cell_ == Cell::gru) c.set("reset_after", opt_.reset_after);
    c.set("zero_output_for_mask", opt_.zero_output_for_mask);
    return c;
  }
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& in) const override {
    if (in.empty() || in[0].size() != 3) return std::nullopt;
    return opt_.return_sequences ? Shape{in[0][0], in[0][1], units_} : Shape{in[0][0], units_};
  }
  double compute_cost(const std::vector<Shape>& in) const override {
    if (in.empty() || in[0].size() != 3) return LayerImpl::compute_cost(in);
    const double steps = static_cast<double>(in[0][0]) * in[0][1];
    return steps * gates(cell_) * units_ * (static_cast<double>(in[0][2]) + units_);
  }

 private:
  // {output (the sequence or the last step), final states...}: the states only with return_state.
  std::vector<Tensor> run(const std::vector<Tensor>& in, const std::vector<Tensor>& masks, bool training) {
    const std::string who = "layer '" + name() + "' (" + keras_name(cell_) + ")";
    const size_t states = static_cast<size_t>(num_states(cell_));
    if (in.size() != 1 && in.size() != 1 + states) {
      throw std::invalid_argument(who + " takes the sequence and optionally its " + std::to_string(states) +
                                  " initial state(s), got " + std::to_string(in.size()) + " inputs");
    }
    Tensor x = in[0];
    expect_rank(x, 3, 3);
    if (x.shape()[2] != kernel_.shape()[0]) {
      throw std::invalid_argument(who + " was built for " + std::to_string(kernel_.shape()[0]) +
                                  " features but got input " + x.describe());
    }
    const Shape state_shape{x.shape()[0], units_};
    for (size_t k = 1; k < in.size(); ++k) {
      if (in[k].shape() != state_shape || in[k].dtype() != x.dtype()) {
        throw std::invalid_argument(who + ": initial state " + std::to_string(k - 1) + " must be " +
                                    std::string(dtype_name(x.dtype())) + shape_str(state_shape) + " (batch, units), got " +
                                    in[k].describe());
      }
    }
    if (training && opt_.dropout > 0.f) x = x * dropout_mask(x);
    Tensor mask = masks.empty() ? Tensor() : masks[0];
    Tensor kernel = compute_value(kernel_), recurrent = compute_value(recurrent_kernel_);
    // Without use_bias the op gets the zeros the bias stands for.
    Tensor bias = opt_.use_bias ? compute_value(bias_) : Tensor::zeros(bias_shape(), kernel.dtype());
    Tensor h0 = in.size() > 1 ? in[1] : Tensor(), c0 = in.size() > 2 ? in[2] : Tensor();
    RnnOptions o{.go_backwards = opt_.go_backwards, .zero_output_for_mask = opt_.zero_output_for_mask};
    std::vector<Tensor> out = cell_ == Cell::lstm ? lstm(x, kernel, recurrent, bias, h0, c0, mask, o)
                              : cell_ == Cell::gru ? gru(x, kernel, recurrent, bias, h0, mask, o)
                                                   : simple_rnn(x, kernel, recurrent, bias, h0, mask, o);
    std::vector<Tensor> result{last_output(out, mask, x)};
    if (opt_.return_state) result.insert(result.end(), out.begin() + 1, out.end());
    return result;
  }

  Tensor last_output(const std::vector<Tensor>& out, const Tensor& mask, const Tensor& x) const {
    if (opt_.return_sequences) return out[0];
    // Keras returns the last output: the final state, or the zeros a masked last step gives.
    if (!opt_.zero_output_for_mask || !mask.defined()) return out[1];
    const int64_t t = x.shape()[1];
    if (t == 0) return out[1];
    return reshape(slice(out[0], 1, t - 1, t), {x.shape()[0], units_});
  }

  // Keras's get_dropout_mask: one [batch, 1, features] draw per call, broadcast over time.
  Tensor dropout_mask(const Tensor& x) {
    RandomStream rs(dropout_call_seed(seed_, own_calls_));
    Tensor mask = Tensor::empty({x.shape()[0], 1, x.shape()[2]}, DType::f32);
    float* m = mask.data<float>();
    const float keep_scale = 1.f / (1.f - opt_.dropout);
    for (int64_t i = 0; i < mask.numel(); ++i) m[i] = rs.uniform01() >= opt_.dropout ? keep_scale : 0.f;
    return cast(mask, x.dtype());
  }

  Shape bias_shape() const {
    if (cell_ == Cell::gru) return {2, 3 * units_};
    return {gates(cell_) * units_};
  }

  Cell cell_;
  int64_t units_;
  RecurrentOptions opt_;
  uint64_t seed_;
  std::atomic<int64_t> own_calls_{0};
  Variable kernel_, recurrent_kernel_, bias_;
};

template <Cell C>
Layer from_config(const Config& config) {
  ConfigReader r(config, std::string(keras_name(C)) + " config");
  BaseLayerConfig base = read_base_config(r);
  const int64_t units = r.integer("units", 1, kMaxConfigSize);
  RecurrentOptions opt;
  opt.activation = read_activation(r, "activation", opt.activation);
  if (C != Cell::simple_rnn) opt.recurrent_activation = read_activation(r, "recurrent_activation", opt.recurrent_activation);
  opt.use_bias = r.boolean("use_bias", opt.use_bias);
  opt.kernel_initializer = read_initializer(r, "kernel_initializer", opt.kernel_initializer);
  opt.recurrent_initializer = read_initializer(r, "recurrent_initializer", opt.recurrent_initializer);
  opt.bias_initializer = read_initializer(r, "bias_initializer", opt.bias_initializer);
  if (C == Cell::lstm) opt.unit_forget_bias = r.boolean("unit_forget_bias", opt.unit_forget_bias);
  opt.dropout = r.real("dropout", 0.f);
  opt.recurrent_dropout = r.real("recurrent_dropout", 0.f);
  opt.return_sequences = r.boolean("return_sequences", false);
  opt.return_state = r.boolean("return_state", false);
  opt.go_backwards = r.boolean("go_backwards", false);
  opt.stateful = r.boolean("stateful", false);
  opt.unroll = r.boolean("unroll", false);
  if (C == Cell::gru) opt.reset_after = r.boolean("reset_after", true);
  opt.zero_output_for_mask = r.boolean("zero_output_for_mask", false);
  // Keras writes these; None is the only value Kiln runs.
  for (const char* key : {"kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "activity_regularizer",
                          "kernel_constraint", "recurrent_constraint", "bias_constraint"}) {
    if (r.optional(key)) r.fail(key, "is not supported (null only)");
  }
  if (const Config* seed = r.optional("seed")) {
    if (seed->kind() != Config::Kind::integer) r.fail("seed", "must be an integer or null");
    opt.seed = static_cast<uint64_t>(seed->as_int());
  }
  r.finish();
  Layer layer = C == Cell::lstm ? LSTM(units, opt, base.name) : C == Cell::gru ? GRU(units, opt, base.name) : SimpleRNN(units, opt, base.name);
  return with_base_config(layer, base);
}

const bool registered = register_builtin_layer("LSTM", from_config<Cell::lstm>) &&
                        register_builtin_layer("GRU", from_config<Cell::gru>) &&
                        register_builtin_layer("SimpleRNN", from_config<Cell::simple_rnn>);

}  // namespace

Layer LSTM(int64_t units, const RecurrentOptions& options, const std::string& name) {
  return Layer(std::make_shared<RecurrentImpl>(Cell::lstm, units, options, name));
}
Layer GRU(int64_t units, const RecurrentOptions& options, const std::string& name) {
  return Layer(std::make_shared<RecurrentImpl>(Cell::gru, units, options, name));
}
Layer SimpleRNN(int64_t units, const RecurrentOptions& options, const std::string& name) {
  return Layer(std::make_shared<RecurrentImpl>(Cell::simple_rnn, units, options, name));
}

}  // namespace kiln::nn
