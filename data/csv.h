#pragma once
#include <string>
#include <string_view>

#include "tensor/tensor.h"

namespace kiln::data {

struct CsvOptions {
  char delimiter = ',';
  bool header = false;  // skip the first line
};

// Reads a numeric CSV into an f32 [rows, columns] tensor. Cells are decimal numbers (nan and
// inf allowed, as numpy.loadtxt does); blank lines are skipped. Ragged rows, empty cells, hex,
// partial numbers, values beyond f32 range and NUL bytes throw std::runtime_error naming the
// file, line and column.
Tensor read_csv(const std::string& path, const CsvOptions& options = {});
// The same parser over text already in memory; `source` names it in errors (a path).
Tensor parse_csv(std::string_view text, const std::string& source, const CsvOptions& options = {});

}  // namespace kiln::data
