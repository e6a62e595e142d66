#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace kiln::nn {

// Kiln checkpoint file, version 1 (all integers little-endian):
//   "KILNCKPT"               8-byte magic
//   u32 version              = 1
//   u32 entry_count
//   entry_count times:
//     u32 name_length, name bytes (UTF-8, unique)
//     u8  dtype              0 f32, 1 bf16, 2 s8, 3 u8, 4 s32
//     u8  ndim, i64 dims[ndim]
//     u64 nbytes             = product(dims) * dtype size
//     nbytes of row-major data
//   u32 crc32                zlib CRC-32 of every byte before it
// Files are written atomically (temporary file, fsync, rename) and fully validated on load.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

void write_checkpoint(const std::string& path, const NamedTensors& entries);
// The bytes write_checkpoint writes (a saved model embeds them as sections).
std::string serialize_checkpoint(const NamedTensors& entries);
NamedTensors read_checkpoint(const std::string& path);
// The same validation over bytes already in memory; `source` names them in errors (a path).
NamedTensors parse_checkpoint(std::string_view bytes, const std::string& source);

}  // namespace kiln::nn
