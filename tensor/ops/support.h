#pragma once
#include <string>

namespace kiln::ops {

// One backend's decision about one op kind, for the support matrix (docs/support_matrix.md,
// tests/support_matrix_test.cc): whether the backend takes it, and how (or why not).
struct Support {
  bool supported = false;
  std::string note;  // "oneDNN convolution", "eager op", or the reason it is not supported
};
inline Support supported(std::string how) { return {true, std::move(how)}; }
inline Support unsupported(std::string why) { return {false, std::move(why)}; }

}  // namespace kiln::ops
