#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

// Product of the dims. Throws std::overflow_error when it does not fit int64 (shapes are
// validated where they enter, so this never fires for a tensor that exists).
int64_t numel(const Shape& shape);
// The one checked entry for shapes from outside (files, user calls): rejects negative dims
// and element or byte counts that overflow, naming `what` and the shape. Returns the bytes
// that shape * element_size needs.
uint64_t checked_nbytes(const Shape& shape, size_t element_size, const std::string& what);
// checked_nbytes' test without its message: false where checked_nbytes would throw, for hot
// paths that build the message only on failure.
bool nbytes_fit(const Shape& shape, size_t element_size, uint64_t* bytes);
Strides contiguous_strides(const Shape& shape);
// The same into an existing vector, keeping its capacity (a recycled tensor's).
void contiguous_strides_into(Strides& strides, const Shape& shape);
std::string shape_str(const Shape& shape);
// Maps a possibly negative axis into [0, ndim); throws naming the shape when out of range.
int normalize_axis(int64_t axis, int ndim, const Shape& shape_for_error, const char* op);
// NumPy broadcasting; throws naming both shapes when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Throws std::invalid_argument naming op for a negative dim or an overflowing element count.
void check_shape_valid(const Shape& shape, const char* op);

}  // namespace kiln
