#pragma once
// Small tensors the ONNX importer computes at import time: the shape subgraphs exporters write
// (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, ConstantOfShape, Range, Where, ...) and
// the scalar float arithmetic around them. An integer may be a multiple of the symbolic batch,
// so that a Reshape target built from Shape(x)[0] keeps the batch free.
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace kiln::runtime_export::onnx_io {

// coef, or coef x N where N is the batch the graph will run at (any N >= 1).
struct SymInt {
  int64_t coef = 0;
  bool batch = false;
  bool operator==(const SymInt& o) const { return coef == o.coef && batch == o.batch; }
  bool is(int64_t v) const { return !batch && coef == v; }
};
std::string sym_str(const SymInt& d);
std::string sym_str(const std::vector<SymInt>& v);

// An INT64/INT32/BOOL tensor (ints) or a floating one (reals), known at import time.
struct Folded {
  Shape shape;
  bool real = false;
  std::vector<SymInt> ints;
  std::vector<double> reals;
  int64_t numel() const { return real ? static_cast<int64_t>(reals.size()) : static_cast<int64_t>(ints.size()); }
  bool has_batch() const;
  std::vector<int64_t> static_ints(const std::string& what) const;  // throws when a value is batch-sized
};

// Elements a folded tensor may hold: shape subgraphs hold a handful; more means a bug or a
// hostile file, reported with this bound.
constexpr int64_t kMaxFoldedElements = int64_t{1} << 20;

// Every function throws std::invalid_argument with a message (the caller adds the node).
SymInt sym_binary(const std::string& op, SymInt a, SymInt b);
// NumPy broadcasting of folded tensors through `f` on flat indices.
Shape folded_broadcast(const std::vector<const Folded*>& in);
std::vector<int64_t> broadcast_index(const Shape& out, const Shape& in);  // flat output index -> input index table
Folded folded_gather(const Folded& data, const Folded& indices, int64_t axis);
Folded folded_slice(const Folded& data, const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
                    const std::vector<int64_t>& axes, const std::vector<int64_t>& steps);
Folded folded_concat(const std::vector<Folded>& in, int64_t axis);

}  // namespace kiln::runtime_export::onnx_io
