#pragma once
#include <string>

#include "tensor/tensor.h"

namespace kiln::detail {

// Contiguous data for a kernel, copying only when t is a strided or broadcast view.
// Not recorded: the caller records its op against the original tensor.
Tensor dense(const Tensor& t);
// Copies any view, including zero-stride (broadcast) views, into fresh contiguous storage.
Tensor materialize(const Tensor& view);

void check_floating(const Tensor& t, const char* op);
void check_same_dtype(const Tensor& a, const Tensor& b, const char* op);
void check_defined(const Tensor& t, const char* op, const char* what);
void check_rank(const Tensor& t, int rank, const char* op, const char* what);

}  // namespace kiln::detail
