#include "runtime_export/onnx/onnx_import.h"

#include <filesystem>
#include <limits>
#include <stdexcept>

#include "base/files.h"
#include "runtime_export/onnx/external_data.h"
#include "graph/passes/dead_code.h"
#include "runtime_export/onnx/importer.h"
#include "tensor/allocator.h"
#include "tensor/ops/quantized.h"

namespace kiln::runtime_export {
namespace onnx_io {

Graph Importer::run() {
  for (const auto& t : gp_.initializer()) {
    if (!inits_.emplace(t.name(), &t).second) throw std::invalid_argument("initializer '" + t.name() + "' appears twice");
    if (t.name().empty()) throw std::invalid_argument("an initializer has no name");
  }
  if (gp_.sparse_initializer_size()) throw std::invalid_argument("sparse initializers are not supported");
  note_qdq_nodes();
  for (const auto& in : gp_.input()) {
    where_ = "graph input '" + in.name() + "'";
    if (inits_.count(in.name())) continue;  // IR < 4 lists initializers as inputs too
    if (!in.type().has_tensor_type()) fail("is not a tensor");
    const auto& tt = in.type().tensor_type();
    // Token ids: torch writes INT64, Kiln has no 64-bit integers and gathers with s32.
    // BOOL (an attention mask): u8 holding 1/0, read as Kiln's f32 booleans (import_logical.cc).
    const bool boolean = tt.elem_type() == onnx::TensorProto::BOOL;
    DType dtype = tt.elem_type() == onnx::TensorProto::INT64 ? DType::s32
                  : boolean                                   ? DType::u8
                                                              : kiln_dtype(tt.elem_type(), where_);
    if (!tt.has_shape()) fail("has no shape");
    Shape s;
    for (int d = 0; d < tt.shape().dim_size(); ++d) {
      const auto& dim = tt.shape().dim(d);
      if (d == 0 && dim.has_dim_value() && dim.dim_value() == 0) fail("has a fixed batch dimension of 0 (no sample can be fed)");
      if (dim.has_dim_value() && dim.dim_value() >= 0) s.push_back(dim.dim_value());
      else if (d == 0 && dim.has_dim_param()) s.push_back(kBatch);
      else fail("dimension " + std::to_string(d) + " is neither a size nor (dimension 0 only) the symbolic batch");
    }
    if (refs_.count(in.name())) fail("is declared twice");
    int v = add_value(in.name(), s, dtype);
    g_.inputs.push_back(v);
    refs_[in.name()] = Ref{v, "", identity_perm(static_cast<int>(s.size()))};
    if (boolean) booleans_.insert(in.name());
  }
  for (bool constants : {true, false}) {
    for (int i = 0; i < gp_.node_size(); ++i) {
      if ((gp_.node(i).op_type() == "Constant" && gp_.node(i).domain().empty()) == constants) order_.push_back(i);
    }
  }
  for (index_ = 0; index_ < static_cast<int>(order_.size());) {
    const onnx::NodeProto& n = gp_.node(order_[index_]);
    where_ = "node " + std::to_string(order_[index_]) + " ('" + n.name() + "', " + n.op_type() + ")";
    index_ += node(n);
  }
  if (gp_.output_size() == 0) throw std::invalid_argument("the graph has no outputs");
  for (const auto& o : gp_.output()) {
    where_ = "graph output '" + o.name() + "'";
    if (views_.count(o.name())) ref(o.name());  // a view laid out as a plain value
    if (!refs_.count(o.name()) && dequantized_.count(o.name())) materialize_dequantized(o.name());
    auto it = refs_.find(o.name());
    if (it == refs_.end()) fail("is never computed");
    int v = materialize(it->second);
    graph::Value& val = g_.values[v];
    if (o.type().has_tensor_type()) {
      const auto& tt = o.type().tensor_type();
      if (kiln_dtype(tt.elem_type(), where_) != val.dtype) fail("is declared " + std::to_string(tt.elem_type()) + " but computed as " + dtype_name(val.dtype));
      if (tt.has_shape()) {
        bool ok = tt.shape().dim_size() == static_cast<int>(val.shape.size());
        for (int d = 0; ok && d < tt.shape().dim_size(); ++d) {
          const auto& dim = tt.shape().dim(d);
          // A named dimension past the batch is one the exporter did not work out (torch names
          // [batch, seq] outputs' seq so): any computed size fits it.
          ok = dim.has_dim_value() ? dim.dim_value() == val.shape[d] : val.shape[d] == kBatch || d > 0;
        }
        if (!ok) fail("has a declared shape other than the computed " + shape_str(val.shape));
      }
    }
    if (val.name != o.name() && !names_.count(o.name())) {
      names_.insert(o.name());
      val.name = o.name();
    }
    g_.outputs.push_back(v);
  }
  // Quantization parameters taken from initializers are checked here as a graph file's are.
  // QDQ import leaves the float twins of what it moved to int8 (weights, dequantize nodes) unread.
  if (saw_qdq_) g_ = graph::eliminate_dead_code(g_);
  g_.validate();
  return g_;
}


}  // namespace onnx_io

namespace {
// Opset 11 is the oldest torch.onnx.export still writes by default for CNNs; 21 (IR 10) the newest
// the importer's opset-dependent ops (Softmax, ReduceMean, Gelu, ...) are written for.
constexpr int kMinOpset = 11;
constexpr int kMaxOpset = 21;
constexpr int kMaxIrVersion = 10;
}  // namespace


graph::Graph parse_onnx(std::string_view bytes, const std::string& source, const std::string& model_dir) {
  auto error = [&](const std::string& msg) { return std::invalid_argument("onnx '" + source + "': " + msg); };
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) throw error("file is over 2 GiB");
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw error("not a valid ONNX protobuf (corrupt or truncated)");
  }
  if (model.ir_version() < 3 || model.ir_version() > kMaxIrVersion) {
    throw error("IR version " + std::to_string(model.ir_version()) + "; Kiln reads 3 to " + std::to_string(kMaxIrVersion));
  }
  bool default_domain = false;
  int64_t opset = 0;
  for (const auto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") {
      if (o.version() < kMinOpset || o.version() > kMaxOpset) {
        throw error("opset " + std::to_string(o.version()) + "; Kiln reads opsets " + std::to_string(kMinOpset) + " to " +
                    std::to_string(kMaxOpset));
      }
      if (default_domain) throw error("the default domain's opset is declared twice");
      opset = o.version();
      default_domain = true;
    }
    // Other domains may be imported without being used (quant_pre_process adds ai.onnx.ml):
    // a node in one is refused where it appears, naming the node.
  }
  if (!default_domain) throw error("no opset for the default domain");
  if (model.functions_size()) throw error("model-local functions are not supported");
  if (!model.has_graph()) throw error("no graph");
  try {
    onnx_io::load_external_data(model, model_dir);
    return onnx_io::Importer(model.graph(), opset).run();
  } catch (const AllocationError&) {
    throw;
  } catch (const std::invalid_argument& e) {
    throw error(e.what());
  } catch (const std::out_of_range& e) {
    throw error(e.what());
  } catch (const std::overflow_error& e) {
    throw error(e.what());
  } catch (const std::runtime_error& e) {  // AllocationError is rethrown above: a bug, not bad input
    throw error(e.what());
  }
}

graph::Graph import_onnx(const std::string& path) {
  std::string bytes;
  try {
    bytes = base::read_file(path);
  } catch (const std::exception&) {
    throw std::invalid_argument("onnx '" + path + "' cannot be opened");
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  return parse_onnx(bytes, path, dir.empty() ? "." : dir);
}

}  // namespace kiln::runtime_export
