#include "nn/layers/recurrent.h"

#include <stdexcept>

#include "nn/layers/layer_config.h"
#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

enum class Cell { lstm, gru, simple_rnn };

const char* keras_name(Cell c) { return c == Cell::lstm ? "LSTM" : c == Cell::gru ? "GRU" : "SimpleRNN"; }
int gates(Cell c) { return c == Cell::lstm ? 4 : c == Cell::gru ? 3 : 1; }

class RecurrentImpl : public LayerImpl {
 public:
  RecurrentImpl(Cell cell, int64_t units, const RecurrentOptions& opt, const std::string& name)
      : LayerImpl(cell == Cell::lstm ? "lstm" : cell == Cell::gru ? "gru" : "simple_rnn", name),
        cell_(cell), units_(units), opt_(opt) {
    const std::string who = std::string(keras_name(cell)) + ": ";
    if (units <= 0 || units > kMaxConfigSize) throw std::invalid_argument(who + "units must be positive, got " + std::to_string(units));
    auto refuse = [&](bool bad, const std::string& what) {
      if (bad) throw std::invalid_argument(who + what);
    };
    refuse(opt.activation != "tanh", "activation '" + opt.activation + "' is not supported (oneDNN's cells use tanh)");
    refuse(cell != Cell::simple_rnn && opt.recurrent_activation != "sigmoid",
           "recurrent_activation '" + opt.recurrent_activation + "' is not supported (oneDNN's cells use sigmoid)");
    refuse(opt.dropout != 0.f || opt.recurrent_dropout != 0.f, "dropout and recurrent_dropout are not supported (0 only)");
    refuse(opt.stateful, "stateful=true is not supported (each call starts from zero states)");
    refuse(opt.return_state, "return_state=true is not supported: a Kiln layer has one output (kiln::lstm/gru/simple_rnn in tensor/ops/rnn.h return the final states)");
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

  Tensor call(const std::vector<Tensor>& in, bool training) override { return call_with_mask(in, {Tensor()}, training); }

  Tensor call_with_mask(const std::vector<Tensor>& in, const std::vector<Tensor>& masks, bool) override {
    const Tensor& x = in[0];
    expect_rank(x, 3, 3);
    if (x.shape()[2] != kernel_.shape()[0]) {
      throw std::invalid_argument("layer '" + name() + "' (" + keras_name(cell_) + ") was built for " +
                                  std::to_string(kernel_.shape()[0]) + " features but got input " + x.describe());
    }
    Tensor mask = masks.empty() ? Tensor() : masks[0];
    Tensor kernel = compute_value(kernel_), recurrent = compute_value(recurrent_kernel_);
    // Without use_bias the op gets the zeros the bias stands for.
    Tensor bias = opt_.use_bias ? compute_value(bias_) : Tensor::zeros(bias_shape(), kernel.dtype());
    RnnOptions o{.go_backwards = opt_.go_backwards, .zero_output_for_mask = opt_.zero_output_for_mask};
    std::vector<Tensor> out = cell_ == Cell::lstm ? lstm(x, kernel, recurrent, bias, Tensor(), Tensor(), mask, o)
                              : cell_ == Cell::gru ? gru(x, kernel, recurrent, bias, Tensor(), mask, o)
                                                   : simple_rnn(x, kernel, recurrent, bias, Tensor(), mask, o);
    if (opt_.return_sequences) return out[0];
    // Keras returns the last output: the final state, or the zeros a masked last step gives.
    if (!opt_.zero_output_for_mask || !mask.defined()) return out[1];
    const int64_t t = x.shape()[1];
    if (t == 0) return out[1];
    return reshape(slice(out[0], 1, t - 1, t), {x.shape()[0], units_});
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
    if (in.size() != 1 || in[0].size() != 3) return std::nullopt;
    return opt_.return_sequences ? Shape{in[0][0], in[0][1], units_} : Shape{in[0][0], units_};
  }
  double compute_cost(const std::vector<Shape>& in) const override {
    if (in.size() != 1 || in[0].size() != 3) return LayerImpl::compute_cost(in);
    const double steps = static_cast<double>(in[0][0]) * in[0][1];
    return steps * gates(cell_) * units_ * (static_cast<double>(in[0][2]) + units_);
  }

 private:
  Shape bias_shape() const {
    if (cell_ == Cell::gru) return {2, 3 * units_};
    return {gates(cell_) * units_};
  }

  Cell cell_;
  int64_t units_;
  RecurrentOptions opt_;
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
  if (r.has("seed")) r.optional("seed");  // dropout's seed: no dropout runs
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
