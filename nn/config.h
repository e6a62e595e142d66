#pragma once
#include "base/json.h"

namespace kiln::nn {

// A layer's, model's or compile state's config is a JSON value (base/json.h); nn names it
// Config, as Keras's get_config() does.
using Config = base::Json;
using base::kind_name;
constexpr int kMaxConfigDepth = base::kMaxJsonDepth;
inline Config parse_config_json(std::string_view text, const std::string& source) { return base::parse_json(text, source); }

}  // namespace kiln::nn
