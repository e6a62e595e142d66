#include "benchmarks/args.h"

#include <stdexcept>

namespace kiln::bench {

std::string arg_value(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}

int64_t arg_int(int argc, char** argv, const std::string& name, int64_t fallback, int64_t minimum) {
  const std::string text = arg_value(argc, argv, name, std::to_string(fallback));
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || value < minimum) {
    throw std::invalid_argument("--" + name + " must be an integer >= " + std::to_string(minimum) + ", got '" +
                                text + "'");
  }
  return value;
}

}  // namespace kiln::bench
