#pragma once
// numpy.pad written out, for pad's tests (pad_test, op_table_test).
#include "tensor/ops/pad.h"
#include "tests/reference.h"

namespace kiln::ref {

// reflect mirrors about the border element (again and again for pads longer than the axis; an
// axis of 1 repeats), edge repeats the border element, constant writes the value; negative
// amounts crop.
RefTensor pad(const RefTensor& x, const PadAttrs& attrs);

}  // namespace kiln::ref
