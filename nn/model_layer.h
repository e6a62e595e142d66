#pragma once
#include <memory>

#include "nn/layer.h"

namespace kiln::nn {

class Model;

// A Model used as a layer of another model (Model::as_layer()). Its weights are the model's,
// so they appear among the outer model's variables; its config is the model's config.
class ModelLayer : public LayerImpl {
 public:
  explicit ModelLayer(std::shared_ptr<Model> model);

  const std::shared_ptr<Model>& model() const { return model_; }

  Tensor call(const std::vector<Tensor>& inputs, bool training) override;
  // The model's masks flow through it: its inputs' masks in, its output's mask out.
  MaskedTensor call_and_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& masks, bool training,
                             bool with_relu) override;
  // The model's own layers cast their inputs by their own policies.
  bool autocast_inputs() const override { return false; }
  int num_inputs() const override;
  std::string class_name() const override;
  Config config() const override;
  std::optional<Shape> compute_output_shape(const std::vector<Shape>& input_shapes) const override;
  // The model's layers' costs over its graph, for this batch size.
  double compute_cost(const std::vector<Shape>& input_shapes) const override;
  void set_policy(const Policy& policy) override;
  int set_packed_weights(bool packed) override;
  std::vector<Variable> variables() const override;
  std::vector<Variable> trainable_variables() const override;
  std::vector<Variable> non_trainable_variables() const override;

 private:
  std::shared_ptr<Model> model_;
};

}  // namespace kiln::nn
