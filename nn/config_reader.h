#pragma once
#include "base/config_reader.h"
#include "nn/config.h"

namespace kiln::nn {

using base::ConfigReader;
using base::kMaxConfigSize;

}  // namespace kiln::nn
