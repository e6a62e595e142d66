#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace kiln::data {

// Bytes from a file, made safe to put in an error message: printable ASCII as is, anything
// else as \xNN, cut after max_chars with "...".
std::string escape_for_message(std::string_view bytes, size_t max_chars);

}  // namespace kiln::data
