#include "nn/policy.h"

#include <stdexcept>

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
  throw std::invalid_argument("unknown dtype policy '" + name + "' (expected 'float32' or 'mixed_bfloat16')");
}

void set_global_policy(const std::string& name) { global() = policy_from_name(name); }
const Policy& global_policy() { return global(); }

}  // namespace kiln::nn
