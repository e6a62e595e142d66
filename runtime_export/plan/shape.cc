// Reshapes and permutes (views, no step) and float casts (a reorder, or nothing).
#include "runtime_export/plan/builder.h"
#include "tensor/ops/op_attrs.h"

namespace kiln::runtime_export::plan_detail {

namespace {

// perm with negative axes counted from the end, if it permutes 0 .. rank - 1.
std::optional<std::vector<int>> normalized_permutation(std::vector<int> perm, int rank) {
  if (static_cast<int>(perm.size()) != rank) return std::nullopt;
  std::vector<bool> seen(rank, false);
  for (int& a : perm) {
    if (a < 0) a += rank;
    if (a < 0 || a >= rank || seen[a]) return std::nullopt;
    seen[a] = true;
  }
  return perm;
}

}  // namespace

bool Builder::reshape(const graph::Node& n) {
  Shape out = concrete(g_.values[n.outputs[0]].shape);
  int x = value_[n.inputs[0]];
  if (numel(out) != numel(t(x).shape)) return false;  // the eager op names the mismatch
  int plain = p_.as_plain(x);
  value_[n.outputs[0]] = p_.alias(plain, out, plain_desc(out, t(plain).dtype));
  aliased_.insert(plain);
  return true;
}

// The permuted tensor is the same bytes seen through permuted strides; whoever needs it plain
// reorders it (one oneDNN reorder), a matmul reads the strides directly.
bool Builder::permute(const graph::Node& n) {
  int x = value_[n.inputs[0]];
  const int rank = static_cast<int>(t(x).shape.size());
  std::optional<std::vector<int>> perm =
      normalized_permutation(ops::parse_attrs_of<ops::OpKind::permute>(n.call).perm, rank);
  if (rank == 0 || rank > DNNL_MAX_NDIMS || !perm) return false;  // the eager op names a bad one
  auto [src, strides] = strided(x);
  const Shape xs = t(src).shape;
  Shape ys(rank);
  Strides ys_strides(rank);
  for (int i = 0; i < rank; ++i) {
    ys[i] = xs[(*perm)[i]];
    ys_strides[i] = strides[(*perm)[i]];
  }
  value_[n.outputs[0]] = p_.alias(src, ys, strided_desc(ys, ys_strides, t(src).dtype));
  aliased_.insert(src);
  return true;
}

std::pair<int, Strides> Builder::strided(int id) {
  if (std::optional<Strides> s = plain_strides(t(id).shape, t(id).desc)) return {id, *s};
  int plain = p_.as_plain(id);
  return {plain, contiguous_strides(t(plain).shape)};
}

std::optional<std::vector<int>> Builder::sole_permute_reader(int value) const {
  const graph::Node* reader = nullptr;
  for (int o : g_.outputs) {
    if (o == value) return std::nullopt;
  }
  for (size_t k = node_ + 1; k < g_.nodes.size(); ++k) {
    for (int i : g_.nodes[k].inputs) {
      if (i != value) continue;
      if (reader) return std::nullopt;
      reader = &g_.nodes[k];
    }
  }
  if (!reader || !reader->call.is(ops::OpKind::permute)) return std::nullopt;
  const std::vector<int> perm = ops::parse_attrs_of<ops::OpKind::permute>(reader->call).perm;
  return normalized_permutation(perm, static_cast<int>(perm.size()));
}

bool Builder::cast(const graph::Node& n) {
  int x = value_[n.inputs[0]];
  DType to = ops::parse_attrs_of<ops::OpKind::cast>(n.call).dtype;
  if (!is_float(to)) return false;  // integer casts truncate; oneDNN's reorder rounds
  DType target = p_.float_dtype();
  // oneDNN 2.6 has no s32 -> bf16 reorder (token ids into a bf16 plan): that cast runs eagerly.
  if (t(x).dtype == DType::s32 && target == DType::bf16) return false;
  if (t(x).dtype == target) {
    value_[n.outputs[0]] = x;
    return true;
  }
  value_[n.outputs[0]] = p_.as_plain(x, target);
  return true;
}

}  // namespace kiln::runtime_export::plan_detail
