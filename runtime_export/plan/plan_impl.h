#pragma once
// The inside of a Plan, shared by its builders (one file per op family) and its runner.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime_export/plan/plan.h"
#include "tensor/onednn/engine.h"
#include "tensor/onednn/isa.h"
#include "tensor/onednn/primitive_cache.h"
#include "tensor/ops/attrs.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/fused.h"

namespace kiln::runtime_export::plan_detail {

using dnnl::memory;
using tag = memory::format_tag;

// Kiln shapes -> oneDNN dims. 4-D tensors are NHWC images, which oneDNN calls {N, C, H, W}:
// the "plain" layout of a 4-D tensor is then nhwc, byte for byte Kiln's row-major NHWC.
memory::dims dnnl_dims(const Shape& s);
memory::desc plain_desc(const Shape& s, DType dtype);
inline bool is_float(DType d) { return d == DType::f32 || d == DType::bf16; }
inline bool is_int8(DType d) { return d == DType::u8 || d == DType::s8; }
// The same layout with another element type (int8 data in the blocked layout of the f32
// tensor it was quantized from, and back).
memory::desc with_dtype(const memory::desc& d, DType dtype);
// Strided (unblocked) layouts, for views such as a permute: Kiln axis i steps by strides[i]
// elements. strided_desc follows dnnl_dims' convention (4-D as {N, C, H, W}) and gives
// plain_desc itself when the strides are row-major, so a permute that undoes another is plain
// again; plain_strides reads such a desc back (nullopt for blocked layouts or an offset).
memory::desc strided_desc(const Shape& s, const Strides& strides, DType dtype);
std::optional<Strides> plain_strides(const Shape& s, const memory::desc& d);
// The same strides in oneDNN's matmul convention: dims in Kiln's order whatever the rank.
memory::desc matmul_desc(const Shape& s, const Strides& strides, DType dtype);

enum class Home { slot, constant, input, output };

// A buffer the plan reads or writes: a graph value in some layout, a reordered copy of one,
// or a view of another (alias_of) with other dims.
struct PTensor {
  Shape shape;  // Kiln's logical shape
  DType dtype = DType::f32;
  memory::desc desc;
  Home home = Home::slot;
  int alias_of = -1;  // shares the root's bytes
  Tensor constant;    // Home::constant
  int index = -1;     // Home::input / Home::output: which one
  int slot = -1;      // Home::slot roots, after liveness
};

struct Step {
  std::string kind;  // what describe() counts
  bool fused = false;
  // A oneDNN primitive with its arguments...
  dnnl::primitive prim;
  bool has_prim = false;
  std::vector<std::pair<int, int>> bind;  // (DNNL_ARG_*, PTensor)
  memory::desc scratchpad;
  // ... or an eager op (reads/writes Kiln-plain tensors) ...
  ops::Attrs call;
  std::vector<int> reads, writes;
  // ... or, when set, a Kiln kernel on the buffers of reads and writes (recurrent.cc).
  std::function<void(const std::vector<void*>& reads, const std::vector<void*>& writes)> kernel;
};

struct Workspace {
  std::vector<Tensor> slots;
  std::vector<Tensor> scratch;  // one per step that needs it (steps run one after another, so
                                // they could share; per step keeps each descriptor exact)
  std::vector<memory> mems;     // per PTensor
  std::vector<std::unordered_map<int, memory>> args;  // per step
};

}  // namespace kiln::runtime_export::plan_detail

namespace kiln::runtime_export {

struct Plan::Impl {
  using memory = dnnl::memory;
  Options options;
  std::vector<plan_detail::PTensor> tensors;
  std::vector<plan_detail::Step> steps;
  std::vector<size_t> slot_bytes;
  std::vector<int> input_tensors, output_tensors;
  std::vector<std::pair<int, int>> input_views;  // (tensor, input index): views of an input
  std::vector<DType> output_dtypes;
  std::vector<Shape> output_shapes;

  mutable std::mutex pool_mu;
  mutable std::vector<std::unique_ptr<plan_detail::Workspace>> pool;

  int root(int t) const {
    while (tensors[t].alias_of >= 0) t = tensors[t].alias_of;
    return t;
  }

  int add_tensor(plan_detail::PTensor t) {
    tensors.push_back(std::move(t));
    return static_cast<int>(tensors.size()) - 1;
  }
  int new_slot(const Shape& shape, DType dtype, const memory::desc& desc) {
    return add_tensor({shape, dtype, desc, plan_detail::Home::slot});
  }
  int alias(int of, const Shape& shape, const memory::desc& desc, std::optional<DType> dtype = std::nullopt) {
    plan_detail::PTensor t{shape, dtype.value_or(tensors[of].dtype), desc, plan_detail::Home::slot};
    t.alias_of = of;
    return add_tensor(std::move(t));
  }

  void add_primitive(const std::string& kind, const dnnl::primitive_desc_base& pd, dnnl::primitive prim,
                     std::vector<std::pair<int, int>> bind, bool fused = false) {
    plan_detail::Step s;
    s.kind = kind;
    s.fused = fused;
    s.prim = std::move(prim);
    s.has_prim = true;
    s.bind = std::move(bind);
    s.scratchpad = pd.scratchpad_desc();
    cpu::record_impl(("inference " + kind).c_str(), pd.impl_info_str(), kind);
    steps.push_back(std::move(s));
  }

  // t's contents laid out as `want` (a reorder step when the layout or dtype differs).
  std::map<std::pair<int, std::string>, int> reordered;
  int as_desc(int t, const memory::desc& want, DType want_dtype) {
    if (tensors[t].desc == want) return t;
    const dnnl_memory_desc_t& c = want.data;
    auto key = std::make_pair(t, std::string(reinterpret_cast<const char*>(&c), sizeof(c)));
    auto it = reordered.find(key);
    if (it != reordered.end()) return it->second;
    int out = new_slot(tensors[t].shape, want_dtype, want);
    auto pd = dnnl::reorder::primitive_desc(onednn::cpu_engine(), tensors[t].desc, onednn::cpu_engine(), want,
                                            onednn::default_attr());
    add_primitive("reorder", pd, dnnl::reorder(pd), {{DNNL_ARG_FROM, t}, {DNNL_ARG_TO, out}});
    reordered[key] = out;
    return out;
  }
  void forget_reorders_of(int t) {
    for (auto it = reordered.begin(); it != reordered.end();) {
      it = it->first.first == t ? reordered.erase(it) : std::next(it);
    }
  }
  void forget_reorders_of_root(int r) {
    for (auto it = reordered.begin(); it != reordered.end();) {
      it = root(it->first.first) == r ? reordered.erase(it) : std::next(it);
    }
  }
  int as_plain(int t, DType dtype) { return as_desc(t, plan_detail::plain_desc(tensors[t].shape, dtype), dtype); }
  int as_plain(int t) { return as_plain(t, tensors[t].dtype); }

  DType float_dtype() const { return options.compute; }
};

}  // namespace kiln::runtime_export
