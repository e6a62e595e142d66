#include "data/csv.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "base/files.h"
#include "data/escape.h"

namespace kiln::data {
namespace {

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw std::runtime_error("read_csv: '" + source + "' " + what);
}

std::string where(int64_t line, int64_t column) {
  return "line " + std::to_string(line) + " column " + std::to_string(column);
}

std::string quoted(std::string_view cell) { return "'" + escape_for_message(cell, 40) + "'"; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if ((a[i] | 0x20) != b[i]) return false;
  }
  return true;
}

// Decimal floats as numpy.loadtxt reads them: [+-] (digits [. digits] | . digits) [e [+-] digits],
// or nan / inf / infinity in any case. strtof alone would also take hex, "nan(...)" and prefixes.
bool is_decimal_number(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  std::string_view body = s.substr(i);
  if (iequals(body, "nan") || iequals(body, "inf") || iequals(body, "infinity")) return true;
  size_t digits = 0;
  while (i < s.size() && is_digit(s[i])) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && is_digit(s[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

}  // namespace

Tensor read_csv(const std::string& path, const CsvOptions& opt) { return parse_csv(base::read_file(path), path, opt); }

Tensor parse_csv(std::string_view text, const std::string& source, const CsvOptions& opt) {
  const char d = opt.delimiter;
  if (d == '\0' || d == '\n' || d == '\r' || is_digit(d) || std::strchr("+-.eE", d)) {
    fail(source, "cannot be split on delimiter " + quoted(std::string_view(&d, 1)));
  }
  auto blank = [d](char c) { return (c == ' ' || c == '\t') && c != d; };
  std::vector<float> values;
  std::string cell_buf;
  int64_t cols = -1, rows = 0, line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // A NUL usually means a binary or UTF-16 file; say so rather than parse around it.
    if (size_t nul = line.find('\0'); nul != std::string_view::npos) {
      int64_t col = 1 + std::count(line.begin(), line.begin() + nul, d);
      fail(source, where(line_no, col) + " has a NUL byte (not a text file?)");
    }
    if (opt.header && line_no == 1) continue;
    size_t first = 0;
    while (first < line.size() && blank(line[first])) ++first;
    if (first == line.size()) continue;
    int64_t col = 0;
    size_t start = 0;
    while (true) {
      size_t end = line.find(d, start);
      if (end == std::string_view::npos) end = line.size();
      std::string_view cell = line.substr(start, end - start);
      ++col;
      while (!cell.empty() && blank(cell.front())) cell.remove_prefix(1);
      while (!cell.empty() && blank(cell.back())) cell.remove_suffix(1);
      if (cell.empty()) fail(source, where(line_no, col) + ": empty cell");
      if (!is_decimal_number(cell)) fail(source, where(line_no, col) + ": " + quoted(cell) + " is not a decimal number");
      cell_buf.assign(cell);
      char* e = nullptr;
      errno = 0;
      float v = std::strtof(cell_buf.c_str(), &e);
      if (e != cell_buf.c_str() + cell_buf.size()) {
        fail(source, where(line_no, col) + ": " + quoted(cell) + " is not a number");
      }
      // ERANGE also flags underflow to zero or a subnormal, which loadtxt accepts too.
      if (errno == ERANGE && std::isinf(v)) fail(source, where(line_no, col) + ": " + quoted(cell) + " is out of f32 range");
      values.push_back(v);
      if (end == line.size()) break;
      start = end + 1;
    }
    if (cols >= 0 && col != cols) {
      fail(source, "line " + std::to_string(line_no) + " has " + std::to_string(col) + " columns, expected " +
                       std::to_string(cols));
    }
    cols = col;
    ++rows;
  }
  if (rows == 0) fail(source, "has no data rows");
  try {
    checked_nbytes({rows, cols}, sizeof(float), "table");
  } catch (const std::invalid_argument& e) {
    fail(source, e.what());
  }
  return Tensor::from_vector(values, {rows, cols});
}

}  // namespace kiln::data
