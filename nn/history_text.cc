#include "nn/history_text.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace kiln::nn {

std::string history_to_text(const History& h) {
  std::string out = "epochs";
  for (int64_t e : h.epochs) out += ' ' + std::to_string(e);
  out += '\n';
  char buf[40];
  for (const auto& [key, values] : h.history) {
    out += key;
    for (double v : values) {
      std::snprintf(buf, sizeof buf, " %.17g", v);
      out += buf;
    }
    out += '\n';
  }
  return out;
}

History history_from_text(const std::string& text, const std::string& source) {
  History h;
  std::istringstream in(text);
  std::string line;
  bool has_epochs = false;
  for (int number = 1; std::getline(in, line); ++number) {
    std::istringstream ls(line);
    std::string key, word;
    if (!(ls >> key)) continue;
    auto bad = [&](const std::string& why) {
      return std::runtime_error("'" + source + "' line " + std::to_string(number) + " ('" + key + "'): " + why);
    };
    if (key == "epochs") {
      has_epochs = true;
      while (ls >> word) {
        char* end = nullptr;
        long long e = std::strtoll(word.c_str(), &end, 10);
        if (*end || end == word.c_str() || e < 0) throw bad("'" + word + "' is not an epoch number");
        h.epochs.push_back(e);
      }
      continue;
    }
    if (h.history.count(key)) throw bad("the key appears twice");
    std::vector<double>& values = h.history[key];
    while (ls >> word) {
      char* end = nullptr;
      double v = std::strtod(word.c_str(), &end);  // reads nan and inf too
      if (*end || end == word.c_str()) throw bad("'" + word + "' is not a number");
      values.push_back(v);
    }
  }
  if (!has_epochs) throw std::runtime_error("'" + source + "' holds no History (no 'epochs' line)");
  for (const auto& [key, values] : h.history) {
    if (values.size() != h.epochs.size()) {
      throw std::runtime_error("'" + source + "': '" + key + "' has " + std::to_string(values.size()) +
                               " values for " + std::to_string(h.epochs.size()) + " epochs");
    }
  }
  return h;
}

}  // namespace kiln::nn
