#include <cmath>
#include <cstdlib>
#include <cstring>

#include "data/csv.h"
#include "tests/fuzz/fuzz_support.h"

// CSV has no single spec, so the reference model only speaks where csv.h is clear: cells are
// numbers as strtof reads them, rows must not be ragged, blank lines carry no row. It is
// "unsure" about quotes, lone CRs, a byte-order mark, empty cells and files with no rows.
// Two metamorphic relations cover the rest: CRLF line ends and another delimiter change
// nothing.
namespace {

const char* const kFormat = "csv";

enum class Verdict { kValid, kInvalid, kUnsure };

struct Model {
  Verdict verdict = Verdict::kUnsure;
  std::string why;
  bool simple = true;  // only short plain decimals, no blank lines or padding: must be accepted
  int64_t rows = 0, cols = -1;
  std::vector<float> values, via_double;  // strtof and strtod-then-round readings
};

bool simple_number(std::string_view c) {
  size_t i = c.size() && c[0] == '-', digits = 0, dot = 0;
  for (; i < c.size(); ++i) {
    if (c[i] == '.' && !dot && digits) dot = i;
    else if (std::isdigit(static_cast<unsigned char>(c[i]))) ++digits;
    else return false;
  }
  return digits && digits <= 9 && (!dot || dot + 1 < c.size());
}

Model model(std::string_view text, char delim, bool header) {
  Model m;
  if (text.find('"') != std::string_view::npos) return m.why = "quotes", m;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n')) return m.why = "a lone CR", m;
  }
  if (text.substr(0, 3) == "\xef\xbb\xbf") return m.why = "a byte-order mark", m;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t' && c != '\r' && c != '\n') || u >= 0x7f) m.simple = false;  // even in a header line
  }
  std::vector<std::string_view> lines;
  for (size_t start = 0; start < text.size();) {
    size_t end = std::min(text.find('\n', start), text.size());
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    start = end + 1;
  }
  for (size_t l = header ? 1 : 0; l < lines.size(); ++l) {
    std::string_view line = lines[l];
    if (line.find_first_not_of(" \t") == std::string_view::npos) {
      m.simple = false;
      continue;
    }
    int64_t c = 0;
    for (size_t start = 0;; ++c) {
      size_t end = std::min(line.find(delim, start), line.size());
      std::string_view cell = line.substr(start, end - start);
      size_t a = cell.find_first_not_of(" \t"), b = cell.find_last_not_of(" \t");
      if (a == std::string_view::npos) return m.verdict = Verdict::kUnsure, m.why = "an empty cell", m;
      std::string trimmed(cell.substr(a, b - a + 1));
      m.simple &= trimmed.size() == cell.size() && simple_number(trimmed);
      char* e = nullptr;
      float v = std::strtof(trimmed.c_str(), &e);
      if (e != trimmed.c_str() + trimmed.size()) {
        return m.verdict = Verdict::kInvalid, m.why = "line " + std::to_string(l + 1) + " cell '" + kiln::fuzz::describe_bytes(cell) + "' is not a number", m;
      }
      m.values.push_back(v);
      m.via_double.push_back(static_cast<float>(std::strtod(trimmed.c_str(), nullptr)));
      if (end == line.size()) break;
      start = end + 1;
    }
    if (m.cols >= 0 && c + 1 != m.cols) return m.verdict = Verdict::kInvalid, m.why = "ragged line " + std::to_string(l + 1), m;
    m.cols = c + 1;
    ++m.rows;
  }
  if (m.rows == 0) return m.verdict = Verdict::kUnsure, m.why = "no data rows", m;
  m.verdict = Verdict::kValid;
  return m;
}

bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, 4) == 0; }

void check(const char* how, const Model& m, bool ok, const kiln::Tensor& t) {
  using kiln::fuzz::bug;
  if (!ok) {
    if (m.verdict == Verdict::kValid && m.simple) bug(kFormat, std::string("rejected a plain numeric CSV (") + how + ")");
    return;
  }
  kiln::fuzz::check_tensor(kFormat, t);
  if (t.dtype() != kiln::DType::f32 || t.ndim() != 2) return bug(kFormat, std::string("accepted as ") + t.describe());
  if (m.verdict == Verdict::kInvalid) return bug(kFormat, std::string("silent accept (") + how + "): " + m.why);
  if (m.verdict != Verdict::kValid) return;
  if (t.shape() != kiln::Shape{m.rows, m.cols}) {
    return bug(kFormat, std::string("accepted (") + how + ") as " + t.describe() + ", the model reads " +
                            std::to_string(m.rows) + "x" + std::to_string(m.cols));
  }
  const float* p = t.data<float>();
  for (size_t i = 0; i < m.values.size(); ++i) {
    if (!same_float(p[i], m.values[i]) && !same_float(p[i], m.via_double[i])) {
      return bug(kFormat, std::string("value ") + std::to_string(i) + " (" + how + ") reads " + std::to_string(p[i]) +
                              ", strtof gives " + std::to_string(m.values[i]));
    }
  }
}

struct Run {
  bool ok = false;
  kiln::Tensor t;
};

Run run(std::string_view text, const kiln::data::CsvOptions& o) {
  const std::string source = "fuzz-input.csv";
  Run r;
  r.ok = kiln::fuzz::accepts(kFormat, source, [&] { r.t = kiln::data::parse_csv(text, source, o); });
  return r;
}

void same_as(const char* how, const Run& a, const Run& b) {
  if (a.ok != b.ok || (a.ok && !kiln::fuzz::same_tensor(a.t, b.t))) {
    kiln::fuzz::bug(kFormat, std::string(how) + " changed the result (" + (a.ok ? "accepted" : "rejected") + " -> " +
                                 (b.ok ? "accepted" : "rejected") + ")");
  }
}

std::string replace_all(std::string_view s, char from, std::string_view to) {
  std::string out;
  for (char c : s) c == from ? out.append(to) : out.append(1, c);
  return out;
}

}  // namespace

int kiln_fuzz_csv(const uint8_t* data, size_t size) {
  using kiln::data::CsvOptions;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Run plain = run(text, {});
  check("default options", model(text, ',', false), plain.ok, plain.t);
  Run header = run(text, {.header = true});
  check("header = true", model(text, ',', true), header.ok, header.t);
  if (text.find(';') == std::string_view::npos) {
    same_as("',' -> ';' with delimiter ';'", plain, run(replace_all(text, ',', ";"), {.delimiter = ';'}));
  }
  if (text.find('\r') == std::string_view::npos && text.find('\n') != std::string_view::npos) {
    same_as("LF -> CRLF", plain, run(replace_all(text, '\n', "\r\n"), {}));
  }
  return plain.ok ? 1 : 0;
}
