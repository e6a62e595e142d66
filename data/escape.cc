#include "data/escape.h"

#include <cstdio>

namespace kiln::data {

std::string escape_for_message(std::string_view bytes, size_t max_chars) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < max_chars; ++i) {
    unsigned char c = bytes[i];
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (bytes.size() > max_chars) out += "...";
  return out;
}

}  // namespace kiln::data
