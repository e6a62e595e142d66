#include "tests/temp_path.h"

#include <cstdlib>

namespace kiln::testing {

std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

}  // namespace kiln::testing
