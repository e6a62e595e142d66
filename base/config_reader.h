#pragma once
#include <array>
#include <cstdint>
#include <set>
#include <string>

#include "base/json.h"

namespace kiln::base {

// Reads the attributes of one from_config() call strictly, as Keras passes a config to a
// constructor: a missing required key, a value of the wrong kind or out of range, and a key
// that nobody read (finish()) are std::invalid_argument errors naming `owner` ("Dense config")
// and the key. Integer ranges keep sizes from a file small enough that later arithmetic on them
// (kernel span, products of dims) cannot overflow before the shape checks see it.
class ConfigReader {
 public:
  ConfigReader(const Json& config, std::string owner);

  bool has(const std::string& key) const { return config_.has(key); }
  const Json& get(const std::string& key);  // required, any kind
  const Json* optional(const std::string& key);  // nullptr when absent (or null)

  int64_t integer(const std::string& key, int64_t lo, int64_t hi);
  int64_t integer(const std::string& key, int64_t fallback, int64_t lo, int64_t hi);
  double number(const std::string& key);
  double number(const std::string& key, double fallback);
  // A float option, rounded to the nearest float (exact for what config() wrote); throws for a
  // finite value beyond the float range.
  float real(const std::string& key);
  float real(const std::string& key, float fallback);
  bool boolean(const std::string& key, bool fallback);
  std::string string(const std::string& key);
  std::string string(const std::string& key, const std::string& fallback);
  // An int or [a, b], each in [lo, hi] (Keras accepts both for kernel_size, strides...).
  std::array<int64_t, 2> pair(const std::string& key, std::array<int64_t, 2> fallback, int64_t lo, int64_t hi);

  // Throws when the config holds a key no getter read.
  void finish() const;
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;

 private:
  const Json& config_;
  std::string owner_;
  std::set<std::string> read_;
};

// Largest size, stride or count a config may give: far beyond any real layer, small enough that
// the product of two fits int64.
constexpr int64_t kMaxConfigSize = int64_t{1} << 31;

}  // namespace kiln::base
