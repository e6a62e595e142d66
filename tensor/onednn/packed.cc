#include "tensor/onednn/packed.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "tensor/onednn/engine.h"
#include "tensor/onednn/primitive_cache.h"

namespace kiln::onednn {
namespace {

// "Acdb64a" from the descriptor's blocking, for messages and describe().
std::string format_name(const dnnl::memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.format_kind != dnnl_blocked) return "opaque";
  const auto& blk = d.format_desc.blocking;
  int n = d.ndims;
  // Outer dims ordered by decreasing stride, as oneDNN's tags spell them.
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return blk.strides[a] > blk.strides[b]; });
  std::string s;
  for (int i : order) {
    bool blocked = false;
    for (int k = 0; k < blk.inner_nblks; ++k) blocked = blocked || blk.inner_idxs[k] == i;
    s += static_cast<char>(blocked ? 'A' + i : 'a' + i);
  }
  for (int k = 0; k < blk.inner_nblks; ++k) s += std::to_string(blk.inner_blks[k]) + static_cast<char>('a' + blk.inner_idxs[k]);
  return s;
}

}  // namespace

BlockedLayout::BlockedLayout(dnnl::memory::desc blocked_md, dnnl::memory::desc row_major_md)
    : blocked_md_(std::move(blocked_md)), row_major_md_(std::move(row_major_md)) {
  if (blocked_md_.dims() != row_major_md_.dims() || blocked_md_.data_type() != row_major_md_.data_type()) {
    throw std::invalid_argument("BlockedLayout: blocked and row-major descriptors differ in dims or dtype");
  }
}

void BlockedLayout::unpack(const void* packed, void* row_major) const {
  reorder("unpack_weights", dnnl::memory(blocked_md_, cpu_engine(), const_cast<void*>(packed)),
          dnnl::memory(row_major_md_, cpu_engine(), row_major));
}

void BlockedLayout::pack(const void* row_major, void* packed) const {
  reorder("pack_weights", dnnl::memory(row_major_md_, cpu_engine(), const_cast<void*>(row_major)),
          dnnl::memory(blocked_md_, cpu_engine(), packed));
}

bool BlockedLayout::same_as(const PackedLayout& other) const {
  auto* o = dynamic_cast<const BlockedLayout*>(&other);
  return o && o->blocked_md_ == blocked_md_ && o->row_major_md_ == row_major_md_;
}

std::string BlockedLayout::name() const { return format_name(blocked_md_); }

const dnnl::memory::desc* blocked_md(const Tensor& t) {
  if (!t.defined() || !t.is_packed()) return nullptr;
  auto* layout = dynamic_cast<const BlockedLayout*>(t.packed_layout().get());
  return layout ? &layout->blocked_md() : nullptr;
}

Tensor pack(const Tensor& t, const dnnl::memory::desc& blocked, const dnnl::memory::desc& row_major) {
  auto layout = std::make_shared<BlockedLayout>(blocked, row_major);
  DType dtype = t.dtype();
  if (to_dnnl(dtype) != blocked.data_type()) {
    throw std::invalid_argument("pack: tensor " + t.describe() + " does not match the layout's dtype");
  }
  Tensor out = Tensor::empty_packed(t.shape(), dtype, layout);
  out.copy_from(t);
  return out;
}

dnnl::memory packed_memory_of(const Tensor& t) {
  const dnnl::memory::desc* md = blocked_md(t);
  if (!md) throw std::logic_error("packed_memory_of: tensor " + t.describe() + " is not in a oneDNN blocked layout");
  return dnnl::memory(*md, cpu_engine(), t.packed_data());
}

}  // namespace kiln::onednn
