#include "nn/optimize.h"

#include <stdexcept>

#include "nn/policy.h"

namespace kiln {

std::string OptimizeReport::describe() const {
  return "kiln::optimize: " + std::to_string(packed_variables) + " weight(s) packed into oneDNN blocked layouts, policy " +
         policy;
}

OptimizeReport optimize(nn::Model& model, optim::Optimizer* optimizer, const OptimizeOptions& options) {
  if (options.dtype) {
    DType want = *options.dtype;
    if (want != DType::f32 && want != DType::bf16) {
      throw std::invalid_argument(std::string("kiln::optimize: dtype must be f32 or bf16, got ") + dtype_name(want));
    }
    const std::string policy = want == DType::bf16 ? "mixed_bfloat16" : "float32";
    bool same = true;
    for (const nn::Layer& l : model.layers()) same = same && l->policy().compute_dtype == want;
    if (!same) {
      if (model.built()) {
        throw std::invalid_argument("kiln::optimize: model '" + model.name() + "' is already built with another dtype policy; "
                                    "pass .dtype = " + dtype_name(want) + " before the model is built, or leave it unset");
      }
      model.set_policy(policy);
    }
  }
  OptimizeReport report;
  for (const nn::Layer& l : model.layers()) report.packed_variables += l->set_packed_weights(options.pack_weights);
  // Slots created before now move into their variables' layouts here rather than on the first
  // step; slots the optimizer creates later start in the right layout.
  if (optimizer) optimizer->follow_variable_layouts(model.trainable_variables());
  report.policy = model.layers().empty() ? nn::global_policy().name : model.layers().front()->policy().name;
  return report;
}

}  // namespace kiln
