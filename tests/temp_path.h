#pragma once
#include <string>

namespace kiln::testing {

// A path under Bazel's per-test temporary directory (TEST_TMPDIR), or /tmp outside Bazel.
std::string temp_path(const std::string& name);

}  // namespace kiln::testing
