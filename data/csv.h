#pragma once
#include <string>

#include "tensor/tensor.h"

namespace kiln::data {

struct CsvOptions {
  char delimiter = ',';
  bool header = false;  // skip the first line
};

// Reads a numeric CSV into an f32 [rows, columns] tensor. Ragged rows or non-numeric cells
// throw std::runtime_error naming the file, line and column.
Tensor read_csv(const std::string& path, const CsvOptions& options = {});

}  // namespace kiln::data
