#pragma once
#include <cstdint>

#include "data/dataset.h"

namespace kiln::testing {

// Three Gaussian blobs in 2-D (unbatched, labels s32): separable, so a small MLP should get
// them nearly all right.
data::Dataset blobs(int64_t n, uint64_t seed);

}  // namespace kiln::testing
