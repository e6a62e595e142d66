#include "tensor/onednn/precision_cache.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "base/byte_io.h"
#include "tensor/onednn/isa.h"

// Version 1, one line each, '\n' ends every line:
//   kiln precision probe 1
//   cpu <CPUID brand>            printable ASCII, 1..128 chars, no edge spaces
//   flags <tokens>               the same
//   onednn <d>.<d>.<d>
//   isa <name>                   as isa_name() spells it
//   threads <n>                  1..65536, no sign or leading zero
//   matmul_f32 <seconds>         as std::to_chars(scientific, 6) writes it, in (0, 60]
//   matmul_bf16 / conv_f32 / conv_bf16 <seconds>
//   crc <8 lowercase hex>        zlib CRC-32 of every byte before this line
namespace kiln::cpu {
namespace {

constexpr std::string_view kMagic = "kiln precision probe 1";
constexpr size_t kMaxText = 128;
constexpr double kMaxSeconds = 60;  // the probe takes milliseconds; more is a corrupt file

std::string seconds_text(double s) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, s, std::chars_format::scientific, 6);
  return std::string(buf, r.ptr);
}

std::string crc_text(std::string_view bytes) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08lx", static_cast<unsigned long>(base::crc32_of(bytes)));
  return buf;
}

class Parser {
 public:
  Parser(std::string_view bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("precision cache '" + source_ + "' line " + std::to_string(line_no_) + ": " + what);
  }

  std::string_view next_line() {
    ++line_no_;
    size_t end = bytes_.find('\n', pos_);
    if (end == std::string_view::npos) fail("missing (the file is truncated)");
    std::string_view line = bytes_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return line;
  }

  // The value of the next line, which must be "<name> <value>".
  std::string_view field(std::string_view name) {
    std::string_view line = next_line();
    if (line.size() < name.size() + 2 || line.substr(0, name.size()) != name || line[name.size()] != ' ') {
      fail("expected '" + std::string(name) + " <value>'");
    }
    return line.substr(name.size() + 1);
  }

  std::string text(std::string_view name) {
    std::string_view v = field(name);
    if (v.size() > kMaxText) fail(std::string(name) + " is longer than " + std::to_string(kMaxText) + " characters");
    for (char c : v) {
      if (c < 0x20 || c > 0x7e) fail(std::string(name) + " holds a byte that is not printable ASCII");
    }
    if (v.front() == ' ' || v.back() == ' ') fail(std::string(name) + " has leading or trailing spaces");
    return std::string(v);
  }

  std::string version(std::string_view name) {
    std::string v = text(name);
    int parts = 0;
    size_t digits = 0;
    for (char c : v + ".") {
      if (c >= '0' && c <= '9' && digits < 6) {
        ++digits;
      } else if (c == '.' && digits > 0) {
        ++parts, digits = 0;
      } else {
        fail(std::string(name) + " '" + v + "' is not major.minor.patch");
      }
    }
    if (parts != 3) fail(std::string(name) + " '" + v + "' is not major.minor.patch");
    return v;
  }

  std::string isa(std::string_view name) {
    std::string v = text(name);
    try {
      if (isa_name(isa_from_name(v)) == v) return v;
    } catch (const std::invalid_argument&) {
    }
    fail(std::string(name) + " '" + v + "' is not an ISA name Kiln writes");
  }

  int threads(std::string_view name) {
    std::string_view v = field(name);
    int n = 0;
    auto r = std::from_chars(v.data(), v.data() + v.size(), n);
    if (r.ec != std::errc() || r.ptr != v.data() + v.size() || n < 1 || n > 65536 || std::to_string(n) != v) {
      fail(std::string(name) + " must be a whole number from 1 to 65536");
    }
    return n;
  }

  double seconds(std::string_view name) {
    std::string_view v = field(name);
    double s = 0;
    auto r = std::from_chars(v.data(), v.data() + v.size(), s, std::chars_format::scientific);
    if (r.ec != std::errc() || r.ptr != v.data() + v.size() || !std::isfinite(s) || s <= 0 || s > kMaxSeconds) {
      fail(std::string(name) + " must be a time in seconds in (0, 60]");
    }
    if (seconds_text(s) != v) fail(std::string(name) + " is not written in the one form Kiln writes");
    return s;
  }

  void crc() {
    size_t covered = pos_;
    std::string_view v = field("crc");
    if (v != crc_text(bytes_.substr(0, covered))) fail("CRC-32 does not match the contents (the file changed)");
    if (pos_ != bytes_.size()) fail("unexpected bytes after the crc line");
  }

  void magic() {
    std::string_view line = next_line();
    if (line != kMagic) {
      if (line.substr(0, kMagic.size() - 1) == kMagic.substr(0, kMagic.size() - 1)) {
        fail("unsupported version (this Kiln reads '" + std::string(kMagic) + "')");
      }
      fail("not a Kiln precision cache (expected '" + std::string(kMagic) + "')");
    }
  }

 private:
  std::string_view bytes_;
  const std::string& source_;
  size_t pos_ = 0;
  int line_no_ = 0;
};

}  // namespace

std::string serialize_probe_cache(const ProbeRecord& r) {
  std::string out = std::string(kMagic) + "\n";
  out += "cpu " + r.key.cpu + "\n";
  out += "flags " + r.key.flags + "\n";
  out += "onednn " + r.key.onednn + "\n";
  out += "isa " + r.key.isa + "\n";
  out += "threads " + std::to_string(r.key.threads) + "\n";
  out += "matmul_f32 " + seconds_text(r.timings.matmul_f32) + "\n";
  out += "matmul_bf16 " + seconds_text(r.timings.matmul_bf16) + "\n";
  out += "conv_f32 " + seconds_text(r.timings.conv_f32) + "\n";
  out += "conv_bf16 " + seconds_text(r.timings.conv_bf16) + "\n";
  out += "crc " + crc_text(out) + "\n";
  return out;
}

ProbeRecord parse_probe_cache(std::string_view bytes, const std::string& source) {
  if (bytes.size() > kMaxProbeCacheBytes) {
    throw std::runtime_error("precision cache '" + source + "': " + std::to_string(bytes.size()) +
                             " bytes, more than the " + std::to_string(kMaxProbeCacheBytes) + " it can hold");
  }
  Parser p(bytes, source);
  p.magic();
  ProbeRecord r;
  r.key.cpu = p.text("cpu");
  r.key.flags = p.text("flags");
  r.key.onednn = p.version("onednn");
  r.key.isa = p.isa("isa");
  r.key.threads = p.threads("threads");
  r.timings.matmul_f32 = p.seconds("matmul_f32");
  r.timings.matmul_bf16 = p.seconds("matmul_bf16");
  r.timings.conv_f32 = p.seconds("conv_f32");
  r.timings.conv_bf16 = p.seconds("conv_bf16");
  p.crc();
  return r;
}

}  // namespace kiln::cpu
