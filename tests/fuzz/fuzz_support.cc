#include "tests/fuzz/fuzz_support.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kiln::fuzz {
namespace {
BugHandler g_handler = nullptr;
}

void set_bug_handler(BugHandler handler) { g_handler = handler; }

void bug(const char* format, const std::string& what) {
  if (g_handler) {
    g_handler(format, what);
    return;
  }
  std::fprintf(stderr, "KILN FUZZ BUG [%s]: %s\n", format, what.c_str());
  std::abort();
}

void rejection_message(const char* format, const std::string& source, const char* what) {
  std::string msg = what ? what : "";
  static const bool verbose = std::getenv("KILN_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "[%s] rejected: %s\n", format, msg.c_str());
  if (msg.find(source) == std::string::npos) {
    bug(format, "rejection message does not name the source '" + source + "': " + msg);
  }
}

void check_tensor(const char* format, const Tensor& t) {
  if (!t.defined()) return bug(format, "accepted input gave an undefined tensor");
  auto dt = static_cast<uint8_t>(t.dtype());
  if (dt > static_cast<uint8_t>(DType::s32)) return bug(format, "tensor has dtype byte " + std::to_string(dt));
  uint64_t n = 1;
  for (int64_t d : t.shape()) {
    if (d < 0) return bug(format, "tensor has a negative dim: " + t.describe());
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return bug(format, "numel overflows: " + t.describe());
  }
  // The running product contiguous_strides() forms from the last dim: with a zero dim numel is
  // 0, but the dims after it still multiply, and their overflow is undefined behaviour.
  int64_t s = 1;
  for (size_t i = t.shape().size(); i-- > 0;) {
    if (__builtin_mul_overflow(s, t.shape()[i], &s)) {
      return bug(format, "accepted a shape whose strides overflow int64: " + t.describe());
    }
  }
  uint64_t bytes;
  if (__builtin_mul_overflow(n, dtype_size(t.dtype()), &bytes) || bytes != t.nbytes()) {
    return bug(format, "nbytes " + std::to_string(t.nbytes()) + " does not match " + t.describe());
  }
  if (!t.is_contiguous() || t.offset() != 0) return bug(format, "loaded tensor is not a fresh contiguous one");
  if (t.storage() == nullptr || t.storage()->bytes() < t.nbytes()) {
    return bug(format, "storage holds fewer bytes than " + t.describe() + " needs");
  }
  if (t.nbytes() == 0) return;
  volatile unsigned char sink = 0;  // reads every byte so ASan checks the whole buffer
  const auto* p = static_cast<const unsigned char*>(t.raw_data());
  for (size_t i = 0; i < t.nbytes(); ++i) sink = sink ^ p[i];
  (void)sink;
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  return a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

std::string describe_bytes(std::string_view bytes, size_t max) {
  std::string out;
  char buf[8];
  for (size_t i = 0; i < bytes.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (bytes.size() > max) out += "...";
  return out;
}

}  // namespace kiln::fuzz
