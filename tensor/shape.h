#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

int64_t numel(const Shape& shape);
Strides contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);
// Maps a possibly negative axis into [0, ndim); throws naming the shape when out of range.
int normalize_axis(int64_t axis, int ndim, const Shape& shape_for_error, const char* op);
// NumPy broadcasting; throws naming both shapes when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
void check_shape_valid(const Shape& shape, const char* op);

}  // namespace kiln
