#include "nn/policy.h"

#include <stdexcept>

#include "tensor/onednn/precision_probe.h"

namespace kiln::nn {
namespace {
Policy& global() {
  static Policy p;
  return p;
}
}  // namespace

Policy policy_from_name(const std::string& name) {
  if (name == "float32") return {"float32", DType::f32, DType::f32};
  if (name == "mixed_bfloat16") return {"mixed_bfloat16", DType::f32, DType::bf16};
  if (name == "auto") {
    cpu::PrecisionChoice choice = cpu::mixed_precision_choice();
    Policy p = policy_from_name(choice.policy);
    p.reason = choice.reason;
    return p;
  }
  throw std::invalid_argument("unknown dtype policy '" + name +
                              "' (expected 'float32', 'mixed_bfloat16' or 'auto')");
}

void set_global_policy(const std::string& name) { global() = policy_from_name(name); }
const Policy& global_policy() { return global(); }

}  // namespace kiln::nn
