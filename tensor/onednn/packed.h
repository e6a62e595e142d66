#pragma once
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>

#include "tensor/tensor.h"

namespace kiln::onednn {

// A oneDNN blocked layout for a tensor whose row-major values oneDNN sees through
// `row_major_md` (for an HWIO conv kernel, OIHW dims with hwio strides).
class BlockedLayout final : public PackedLayout {
 public:
  BlockedLayout(dnnl::memory::desc blocked_md, dnnl::memory::desc row_major_md);
  size_t bytes() const override { return blocked_md_.get_size(); }
  void unpack(const void* packed, void* row_major) const override;
  void pack(const void* row_major, void* packed) const override;
  bool same_as(const PackedLayout& other) const override;
  std::string name() const override;
  const dnnl::memory::desc& blocked_md() const { return blocked_md_; }
  const dnnl::memory::desc& row_major_md() const { return row_major_md_; }

 private:
  dnnl::memory::desc blocked_md_, row_major_md_;
};

// The blocked descriptor of a packed tensor, or null when it is not packed by oneDNN.
const dnnl::memory::desc* blocked_md(const Tensor& t);

// A copy of `t` (row-major or packed) in `blocked_md`; its dtype is the descriptor's.
Tensor pack(const Tensor& t, const dnnl::memory::desc& blocked_md, const dnnl::memory::desc& row_major_md);

// The oneDNN memory over a packed tensor's storage, in its own layout.
dnnl::memory packed_memory_of(const Tensor& t);

}  // namespace kiln::onednn
