#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln {

enum class DType : uint8_t { f32, bf16, s8, u8, s32 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
bool is_floating(DType dtype);
// Parses "f32", "float32", "bf16", "bfloat16", "s8", "int8", "u8", "uint8", "s32", "int32".
DType dtype_from_name(const std::string& name);

}  // namespace kiln
