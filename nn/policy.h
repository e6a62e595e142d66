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
  // Why "auto" resolved to this policy ("bf16 0.61x f32 on this CPU: ..."); empty when the
  // policy was named directly. name is always the resolved policy, so configs and saved models
  // record what ran, never "auto".
  std::string reason;
};

// "float32", "mixed_bfloat16", or "auto": mixed_bfloat16 where bf16 measured faster than f32 on
// this CPU, else float32 (tensor/onednn/precision_probe.h; measured once per machine and cached,
// so set any ISA cap before asking for "auto").
Policy policy_from_name(const std::string& name);
// The policy new layers take when none is given.
void set_global_policy(const std::string& name);
const Policy& global_policy();

}  // namespace kiln::nn
