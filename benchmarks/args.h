#pragma once
// Command-line values of the benchmark binaries that take "--name value" pairs.
#include <cstdint>
#include <string>

namespace kiln::bench {

// The value after "--name" in argv, or fallback when the flag is absent.
std::string arg_value(int argc, char** argv, const std::string& name, const std::string& fallback);

// The integer after "--name" (fallback when absent); throws std::invalid_argument naming the
// flag when the value is not an integer or is below minimum.
int64_t arg_int(int argc, char** argv, const std::string& name, int64_t fallback, int64_t minimum);

}  // namespace kiln::bench
