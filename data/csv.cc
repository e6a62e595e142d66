#include "data/csv.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace kiln::data {

Tensor read_csv(const std::string& path, const CsvOptions& opt) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("read_csv: cannot open '" + path + "'");
  std::vector<float> values;
  int64_t cols = -1, rows = 0, line_no = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (opt.header && line_no == 1) continue;
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    int64_t c = 0;
    size_t start = 0;
    while (true) {
      size_t end = line.find(opt.delimiter, start);
      std::string cell = line.substr(start, end == std::string::npos ? std::string::npos : end - start);
      const char* b = cell.c_str();
      char* e = nullptr;
      errno = 0;
      float v = std::strtof(b, &e);
      while (e && (*e == ' ' || *e == '\t')) ++e;
      if (e == b || *e != '\0') {
        throw std::runtime_error("read_csv: '" + path + "' line " + std::to_string(line_no) + " column " +
                                 std::to_string(c + 1) + ": '" + cell + "' is not a number");
      }
      values.push_back(v);
      ++c;
      if (end == std::string::npos) break;
      start = end + 1;
    }
    if (cols >= 0 && c != cols) {
      throw std::runtime_error("read_csv: '" + path + "' line " + std::to_string(line_no) + " has " +
                               std::to_string(c) + " columns, expected " + std::to_string(cols));
    }
    cols = c;
    ++rows;
  }
  if (rows == 0) throw std::runtime_error("read_csv: '" + path + "' has no data rows");
  return Tensor::from_vector(values, {rows, cols});
}

}  // namespace kiln::data
