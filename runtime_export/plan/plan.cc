#include "runtime_export/plan/plan.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "runtime_export/plan/builder.h"
#include "tensor/ops/registry.h"

namespace kiln::runtime_export {
namespace plan_detail {

memory::dims dnnl_dims(const Shape& s) {
  if (s.size() == 4) return {s[0], s[3], s[1], s[2]};
  if (s.empty()) return {1};
  return memory::dims(s.begin(), s.end());
}

memory::desc plain_desc(const Shape& s, DType dtype) {
  memory::dims dims = dnnl_dims(s);
  if (s.size() == 4) return memory::desc(dims, onednn::to_dnnl(dtype), tag::nhwc);
  memory::dims strides(dims.size());
  int64_t stride = 1;
  for (size_t i = dims.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= std::max<int64_t>(dims[i], 1);
  }
  return memory::desc(dims, onednn::to_dnnl(dtype), strides);
}

memory::desc with_dtype(const memory::desc& d, DType dtype) {
  dnnl_memory_desc_t c = d.data;
  c.data_type = static_cast<dnnl_data_type_t>(onednn::to_dnnl(dtype));
  return memory::desc(c);
}

namespace {

// Kiln axis of each oneDNN dim under dnnl_dims' convention.
std::vector<int> kiln_axis_of_dnnl_dim(size_t rank) {
  if (rank == 4) return {0, 3, 1, 2};
  std::vector<int> axes(rank);
  for (size_t i = 0; i < rank; ++i) axes[i] = static_cast<int>(i);
  return axes;
}

// A size-1 axis may have any stride: give it the row-major one, so that layouts which differ
// only there compare equal.
Strides canonical_strides(const Shape& s, const Strides& strides) {
  Strides out = strides;
  const Strides row_major = contiguous_strides(s);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == 1) out[i] = row_major[i];
  }
  return out;
}

}  // namespace

memory::desc strided_desc(const Shape& s, const Strides& strides, DType dtype) {
  const Strides st = canonical_strides(s, strides);
  if (s.empty() || st == contiguous_strides(s)) return plain_desc(s, dtype);
  const std::vector<int> axis = kiln_axis_of_dnnl_dim(s.size());
  memory::dims dnnl_strides(s.size());
  for (size_t j = 0; j < s.size(); ++j) dnnl_strides[j] = st[axis[j]];
  return memory::desc(dnnl_dims(s), onednn::to_dnnl(dtype), dnnl_strides);
}

std::optional<Strides> plain_strides(const Shape& s, const memory::desc& d) {
  const dnnl_memory_desc_t& c = d.data;
  if (s.empty() || c.ndims != static_cast<int>(s.size()) || c.format_kind != dnnl_blocked ||
      c.format_desc.blocking.inner_nblks != 0 || c.offset0 != 0) {
    return std::nullopt;
  }
  const std::vector<int> axis = kiln_axis_of_dnnl_dim(s.size());
  Strides st(s.size());
  for (size_t j = 0; j < s.size(); ++j) {
    if (c.dims[j] != s[axis[j]]) return std::nullopt;
    st[axis[j]] = c.format_desc.blocking.strides[j];
  }
  return canonical_strides(s, st);
}

memory::desc matmul_desc(const Shape& s, const Strides& strides, DType dtype) {
  return memory::desc(memory::dims(s.begin(), s.end()), onednn::to_dnnl(dtype),
                      memory::dims(strides.begin(), strides.end()));
}

}  // namespace plan_detail

using namespace plan_detail;

const Tensor& PackedWeights::get(int value, const Tensor& source, const dnnl::memory::desc& source_desc,
                                 const dnnl::memory::desc& want, const std::string& variant) {
  const dnnl_memory_desc_t& c = want.data;
  std::string key = std::to_string(value) + "|" + variant + "|" +
                    std::string(reinterpret_cast<const char*>(&c), sizeof(c));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = packed_.find(key);
  if (it != packed_.end()) return it->second;
  dnnl::memory to;
  Tensor packed = onednn::buffer_for(want, DType::u8, &to);
  Tensor dense = source.is_contiguous() ? source : source.clone_detached();
  // The reorder reads source_desc's bytes from the tensor: a kernel whose shape or dtype
  // disagrees with the node's (a crafted graph file) must stop here, not read past it.
  if (source_desc.get_size() > dense.nbytes() || source_desc.data_type() != onednn::to_dnnl(source.dtype())) {
    throw std::invalid_argument("inference: weight value " + std::to_string(value) + " is " + source.describe() +
                                ", but its layer reads it as " + std::to_string(source_desc.get_size()) +
                                " bytes of oneDNN data type " + std::to_string(static_cast<int>(source_desc.data_type())));
  }
  dnnl::memory from(source_desc, onednn::cpu_engine(), dense.raw_data());
  onednn::reorder("inference_weights", from, to);
  return packed_.emplace(key, packed).first->second;
}

namespace {

// Assigns buffers: a root gets a slot at the first step that touches it and gives it back
// after the last, so values never alive together share memory.
void assign_slots(Plan::Impl& p) {
  const int nt = static_cast<int>(p.tensors.size());
  std::vector<int> first(nt, -1), last(nt, -1);
  std::vector<size_t> bytes(nt, 0);
  for (int i = 0; i < nt; ++i) {
    int r = p.root(i);
    bytes[r] = std::max(bytes[r], p.tensors[i].desc.get_size());
  }
  auto touch = [&](int id, int s) {
    int r = p.root(id);
    if (first[r] < 0) first[r] = s;
    last[r] = s;
  };
  for (int s = 0; s < static_cast<int>(p.steps.size()); ++s) {
    for (auto [arg, id] : p.steps[s].bind) touch(id, s);
    for (int id : p.steps[s].reads) touch(id, s);
    for (int id : p.steps[s].writes) touch(id, s);
  }
  std::vector<std::vector<int>> starts(p.steps.size()), ends(p.steps.size());
  for (int i = 0; i < nt; ++i) {
    if (p.root(i) != i || p.tensors[i].home != Home::slot || first[i] < 0) continue;
    starts[first[i]].push_back(i);
    ends[last[i]].push_back(i);
  }
  std::vector<int> free_slots;
  for (size_t s = 0; s < p.steps.size(); ++s) {
    for (int id : starts[s]) {
      // Best fit among free slots; the largest grows when none fits.
      int best = -1;
      for (size_t k = 0; k < free_slots.size(); ++k) {
        size_t have = p.slot_bytes[free_slots[k]];
        if (have >= bytes[id] && (best < 0 || have < p.slot_bytes[free_slots[best]])) best = static_cast<int>(k);
      }
      if (best < 0 && !free_slots.empty()) {
        best = 0;
        for (size_t k = 1; k < free_slots.size(); ++k) {
          if (p.slot_bytes[free_slots[k]] > p.slot_bytes[free_slots[best]]) best = static_cast<int>(k);
        }
      }
      int slot;
      if (best >= 0) {
        slot = free_slots[best];
        free_slots.erase(free_slots.begin() + best);
        p.slot_bytes[slot] = std::max(p.slot_bytes[slot], bytes[id]);
      } else {
        slot = static_cast<int>(p.slot_bytes.size());
        p.slot_bytes.push_back(bytes[id]);
      }
      p.tensors[id].slot = slot;
    }
    for (int id : ends[s]) free_slots.push_back(p.tensors[id].slot);
  }
}

std::unique_ptr<Workspace> make_workspace(const Plan::Impl& p) {
  auto ws = std::make_unique<Workspace>();
  for (size_t bytes : p.slot_bytes) ws->slots.push_back(Tensor::empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))}, DType::u8));
  const dnnl::engine& engine = onednn::cpu_engine();
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const PTensor& t = p.tensors[i];
    const PTensor& r = p.tensors[p.root(static_cast<int>(i))];
    void* handle = DNNL_MEMORY_NONE;
    if (r.home == Home::constant) handle = r.constant.raw_data();
    else if (r.home == Home::slot && r.slot >= 0) handle = ws->slots[r.slot].raw_data();
    ws->mems.emplace_back(t.desc, engine, handle);
  }
  for (const Step& s : p.steps) {
    std::unordered_map<int, memory> args;
    for (auto [arg, id] : s.bind) args[arg] = ws->mems[id];
    if (s.has_prim && s.scratchpad.get_size() > 0) {
      ws->scratch.push_back(Tensor::empty({static_cast<int64_t>(s.scratchpad.get_size())}, DType::u8));
      args[DNNL_ARG_SCRATCHPAD] = memory(s.scratchpad, engine, ws->scratch.back().raw_data());
    }
    ws->args.push_back(std::move(args));
  }
  return ws;
}

void run_fallback(const Plan::Impl& p, const Step& s, Workspace& ws) {
  std::vector<Tensor> args;
  for (int id : s.reads) {
    const PTensor& t = p.tensors[id];
    if (t.home == Home::constant) {
      args.push_back(t.constant);
    } else {
      args.push_back(Tensor::from_bytes(ws.mems[id].get_data_handle(), t.shape, t.dtype));
    }
  }
  std::vector<Tensor> outs = ops::run_op(s.call, args);
  for (size_t j = 0; j < s.writes.size(); ++j) {
    const PTensor& t = p.tensors[s.writes[j]];
    Tensor dense = outs[j].is_contiguous() ? outs[j] : outs[j].clone_detached();
    if (dense.shape() != t.shape || dense.dtype() != t.dtype) {
      throw std::logic_error("inference: " + s.call.op() + " returned " + dense.describe() + ", the plan expects " +
                             shape_str(t.shape));
    }
    std::memcpy(ws.mems[s.writes[j]].get_data_handle(), dense.raw_data(), dense.nbytes());
  }
}

void run_kernel(const Step& s, Workspace& ws) {
  std::vector<void*> reads, writes;
  for (int id : s.reads) reads.push_back(ws.mems[id].get_data_handle());
  for (int id : s.writes) writes.push_back(ws.mems[id].get_data_handle());
  s.kernel(reads, writes);
}

}  // namespace

Plan::Plan(const graph::Graph& graph, const std::vector<Shape>& input_shapes, PackedWeights& weights,
           const Options& options)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  plan_detail::Builder(*impl_, graph, input_shapes, weights).build();
  assign_slots(*impl_);
  for (size_t i = 0; i < impl_->tensors.size(); ++i) {
    const PTensor& r = impl_->tensors[impl_->root(static_cast<int>(i))];
    if (impl_->tensors[i].alias_of >= 0 && r.home == Home::input) impl_->input_views.push_back({static_cast<int>(i), r.index});
  }
}

Plan::~Plan() = default;

std::vector<Tensor> Plan::run(const std::vector<Tensor>& inputs) const {
  const Impl& p = *impl_;
  std::unique_ptr<Workspace> ws;
  {
    std::lock_guard<std::mutex> lock(p.pool_mu);
    if (!p.pool.empty()) {
      ws = std::move(p.pool.back());
      p.pool.pop_back();
    }
  }
  if (!ws) ws = make_workspace(p);
  for (size_t i = 0; i < inputs.size(); ++i) ws->mems[p.input_tensors[i]].set_data_handle(inputs[i].raw_data());
  std::vector<Tensor> outputs;
  outputs.reserve(p.output_tensors.size());
  for (size_t i = 0; i < p.output_tensors.size(); ++i) {
    outputs.push_back(Tensor::empty(p.output_shapes[i], p.output_dtypes[i]));
    ws->mems[p.output_tensors[i]].set_data_handle(outputs.back().raw_data());
  }
  // Views of an input (a reshape of it) follow the input's handle.
  for (auto [tensor, input] : p.input_views) ws->mems[tensor].set_data_handle(inputs[input].raw_data());
  dnnl::stream& stream = onednn::cpu_stream();
  try {
    for (size_t s = 0; s < p.steps.size(); ++s) {
      const Step& step = p.steps[s];
      if (step.has_prim) {
        step.prim.execute(stream, ws->args[s]);
      } else if (step.kernel) {
        stream.wait();
        run_kernel(step, *ws);
      } else {
        stream.wait();
        run_fallback(p, step, *ws);
      }
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("InferenceModel: oneDNN execution failed: ") + e.what());
  }
  std::lock_guard<std::mutex> lock(p.pool_mu);
  p.pool.push_back(std::move(ws));
  return outputs;
}

std::string Plan::describe() const {
  std::map<std::string, std::pair<int, int>> counts;
  for (const Step& s : impl_->steps) {
    auto& c = counts[s.kind];
    ++c.first;
    if (s.fused) ++c.second;
  }
  std::string out;
  for (const auto& [kind, c] : counts) {
    if (!out.empty()) out += ", ";
    out += kind + ": " + std::to_string(c.first);
    if (c.second) out += " (" + std::to_string(c.second) + " fused)";
  }
  return out;
}

int Plan::fallback_steps() const {
  int n = 0;
  for (const Step& s : impl_->steps) n += s.has_prim || s.kernel ? 0 : 1;
  return n;
}

}  // namespace kiln::runtime_export
