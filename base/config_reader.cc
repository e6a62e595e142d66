#include "base/config_reader.h"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace kiln::base {

ConfigReader::ConfigReader(const Json& config, std::string owner) : config_(config), owner_(std::move(owner)) {
  if (!config.is_map()) {
    throw std::invalid_argument(owner_ + " must be a map, got " + kind_name(config.kind()));
  }
}

void ConfigReader::fail(const std::string& key, const std::string& what) const {
  throw std::invalid_argument(owner_ + ": '" + key + "' " + what);
}

const Json& ConfigReader::get(const std::string& key) {
  read_.insert(key);
  const Json* v = config_.find(key);
  if (!v) throw std::invalid_argument(owner_ + " has no '" + key + "'");
  return *v;
}

const Json* ConfigReader::optional(const std::string& key) {
  read_.insert(key);
  const Json* v = config_.find(key);
  return v && !v->is_null() ? v : nullptr;
}

namespace {
std::string got(const Json& v) {
  std::string s = kind_name(v.kind());
  if (v.kind() != Json::Kind::list && v.kind() != Json::Kind::map) {
    std::string text = v.to_json();
    if (text.size() > 40) text = text.substr(0, 40) + "...";
    s += " (" + text + ")";
  }
  return s;
}
}  // namespace

int64_t ConfigReader::integer(const std::string& key, int64_t lo, int64_t hi) {
  const Json& v = get(key);
  if (v.kind() != Json::Kind::integer) fail(key, "must be an integer, got " + got(v));
  int64_t x = v.as_int();
  if (x < lo || x > hi) {
    fail(key, "is " + std::to_string(x) + ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return x;
}

int64_t ConfigReader::integer(const std::string& key, int64_t fallback, int64_t lo, int64_t hi) {
  return optional(key) ? integer(key, lo, hi) : fallback;
}

double ConfigReader::number(const std::string& key) {
  const Json& v = get(key);
  if (v.kind() != Json::Kind::number && v.kind() != Json::Kind::integer) {
    fail(key, "must be a number, got " + got(v));
  }
  return v.as_number();
}

double ConfigReader::number(const std::string& key, double fallback) { return optional(key) ? number(key) : fallback; }

float ConfigReader::real(const std::string& key) {
  double d = number(key);
  // config() writes a float option as the exact double of the float, which converts back
  // exactly; other numbers (0.001 from a hand-written file) round to the nearest float.
  if (std::isfinite(d) && std::fabs(d) > std::numeric_limits<float>::max()) {
    fail(key, "is " + std::to_string(d) + ", outside the float32 range");
  }
  return static_cast<float>(d);
}

float ConfigReader::real(const std::string& key, float fallback) { return optional(key) ? real(key) : fallback; }

bool ConfigReader::boolean(const std::string& key, bool fallback) {
  const Json* v = optional(key);
  if (!v) return fallback;
  if (v->kind() != Json::Kind::boolean) fail(key, "must be true or false, got " + got(*v));
  return v->as_bool();
}

std::string ConfigReader::string(const std::string& key) {
  const Json& v = get(key);
  if (v.kind() != Json::Kind::string) fail(key, "must be a string, got " + got(v));
  return v.as_string();
}

std::string ConfigReader::string(const std::string& key, const std::string& fallback) {
  return optional(key) ? string(key) : fallback;
}

std::array<int64_t, 2> ConfigReader::pair(const std::string& key, std::array<int64_t, 2> fallback, int64_t lo,
                                          int64_t hi) {
  const Json* v = optional(key);
  if (!v) return fallback;
  auto one = [&](const Json& x) {
    if (x.kind() != Json::Kind::integer) fail(key, "must hold integers, got " + got(x));
    int64_t n = x.as_int();
    if (n < lo || n > hi) {
      fail(key, "holds " + std::to_string(n) + ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    return n;
  };
  if (v->kind() == Json::Kind::integer) {
    int64_t n = one(*v);
    return {n, n};
  }
  if (v->kind() != Json::Kind::list || v->size() != 2) fail(key, "must be an integer or a list of 2, got " + got(*v));
  return {one((*v)[0]), one((*v)[1])};
}

void ConfigReader::finish() const {
  for (const std::string& k : config_.keys()) {
    if (!read_.count(k)) throw std::invalid_argument(owner_ + " has an unknown key '" + k + "'");
  }
}

}  // namespace kiln::base
