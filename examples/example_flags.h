#pragma once
// Minimal "--name value" flag parsing shared by the examples.
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace kiln::examples {

inline std::string flag(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--" + name + "=", 0) == 0) return a.substr(name.size() + 3);
  }
  return fallback;
}

// A flag without a value ("--smoke"), present or not.
inline bool switch_flag(int argc, char** argv, const std::string& name) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i] == "--" + name) return true;
  }
  return false;
}

inline int64_t int_flag(int argc, char** argv, const std::string& name, int64_t fallback) {
  std::string v = flag(argc, argv, name, std::to_string(fallback));
  try {
    return std::stoll(v);
  } catch (const std::exception&) {
    throw std::invalid_argument("--" + name + " expects an integer, got '" + v + "'");
  }
}

}  // namespace kiln::examples
