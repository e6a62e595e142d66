#pragma once
#include <cstdint>
#include <cstring>

namespace kiln {

// Brain float16: the upper 16 bits of an IEEE float32. Conversion from float rounds to
// nearest, ties to even; NaN stays a (quiet) NaN instead of rounding into infinity.
struct bf16 {
  uint16_t bits = 0;

  bf16() = default;
  explicit bf16(float f) : bits(round_from_float(f)) {}
  operator float() const { return to_float(bits); }

  static uint16_t round_from_float(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) {
      return static_cast<uint16_t>((u >> 16) | 0x0040u);
    }
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb;
    return static_cast<uint16_t>(u >> 16);
  }
  static float to_float(uint16_t b) {
    uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
};
static_assert(sizeof(bf16) == 2);

}  // namespace kiln
