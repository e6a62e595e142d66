#pragma once
#include <string>

#include "tensor/dtype.h"

namespace kiln::nn {

// Keras dtype policy: variables are stored in variable_dtype; layers compute in compute_dtype.
// "mixed_bfloat16" keeps f32 master weights and computes in bf16.
struct Policy {
  std::string name = "float32";
  DType variable_dtype = DType::f32;
  DType compute_dtype = DType::f32;
};

Policy policy_from_name(const std::string& name);  // "float32", "mixed_bfloat16"
// The policy new layers take when none is given.
void set_global_policy(const std::string& name);
const Policy& global_policy();

}  // namespace kiln::nn
