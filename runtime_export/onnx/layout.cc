#include "runtime_export/onnx/layout.h"

#include <numeric>
#include <stdexcept>

#include "tensor/ops/shape_ops.h"

namespace kiln::runtime_export::onnx_io {

Perm identity_perm(int rank) {
  Perm p(rank);
  std::iota(p.begin(), p.end(), 0);
  return p;
}

bool is_identity(const Perm& p) {
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] != static_cast<int>(i)) return false;
  }
  return true;
}

Perm compose(const Perm& first, const Perm& then) {
  Perm out(then.size());
  for (size_t i = 0; i < then.size(); ++i) out[i] = first[then[i]];
  return out;
}

Perm inverse(const Perm& p) {
  Perm out(p.size());
  for (size_t i = 0; i < p.size(); ++i) out[p[i]] = static_cast<int>(i);
  return out;
}

Shape permuted(const Shape& s, const Perm& p) {
  Shape out(p.size());
  for (size_t i = 0; i < p.size(); ++i) out[i] = s[p[i]];
  return out;
}

void check_perm(const Perm& p, int rank, const std::string& what) {
  std::vector<bool> seen(rank > 0 ? rank : 0, false);
  bool ok = static_cast<int>(p.size()) == rank;
  for (size_t i = 0; ok && i < p.size(); ++i) {
    ok = p[i] >= 0 && p[i] < rank && !seen[p[i]];
    if (ok) seen[p[i]] = true;
  }
  if (!ok) {
    std::string s;
    for (size_t i = 0; i < p.size(); ++i) s += (i ? ", " : "") + std::to_string(p[i]);
    throw std::invalid_argument(what + ": [" + s + "] is not a permutation of " + std::to_string(rank) + " axes");
  }
}

Tensor permuted_copy(const Tensor& t, const Perm& p) { return contiguous(permute(t, p)).clone_detached(); }

}  // namespace kiln::runtime_export::onnx_io
