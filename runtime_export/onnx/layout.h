#pragma once
// Axis permutations between Kiln's NHWC values and ONNX's NCHW operators. A permutation p
// describes permute(x, p): output axis i is input axis p[i].
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace kiln::runtime_export::onnx_io {

using Perm = std::vector<int>;

inline const Perm kToNchw{0, 3, 1, 2};  // NHWC -> NCHW
inline const Perm kToNhwc{0, 2, 3, 1};  // NCHW -> NHWC
inline const Perm kHwioToOihw{3, 2, 0, 1};
inline const Perm kOihwToHwio{2, 3, 1, 0};

Perm identity_perm(int rank);
bool is_identity(const Perm& p);
// permute(permute(x, first), then) == permute(x, compose(first, then)).
Perm compose(const Perm& first, const Perm& then);
Perm inverse(const Perm& p);
Shape permuted(const Shape& s, const Perm& p);
// Throws std::invalid_argument naming `what` unless p is a permutation of [0, rank).
void check_perm(const Perm& p, int rank, const std::string& what);
// A dense copy of permute(t, p) (constants are permuted once, at export or import time).
Tensor permuted_copy(const Tensor& t, const Perm& p);

}  // namespace kiln::runtime_export::onnx_io
