#pragma once
#include <string>
#include <string_view>

#include "graph/graph.h"

namespace kiln::graph {

// Kiln graph file, version 1 (integers little-endian; strings are u32 length + bytes):
//   "KILNGRPH", u32 version
//   u32 value count, per value: name, u8 dtype, u8 rank, i64 dims (-1: the batch)
//   u32 input count, u32 value index each; u32 output count, u32 value index each
//   u32 constant count, per constant: u32 value, u8 is_variable, u64 byte count, data
//   u32 node count, per node: op name, u32 attr count, per attr: name, u8 tag
//     (0 int: i64; 1 float: f64; 2 string; 3 ints: u32 n, i64 each; 4 floats: u32 n, f64 each),
//     u32 input count, u32 each, u32 output count, u32 each
//   u32 zlib CRC-32 of everything before it
// Constants carry their values, so a loaded graph runs on its own; variables keep their names.
// Written atomically; loading validates every count against the bytes present, every index,
// every op kind, and the graph's structure (Graph::validate) before returning.
void save_graph(const Graph& graph, const std::string& path);
Graph load_graph(const std::string& path);
// The same over bytes already in memory; `source` names them in errors.
Graph parse_graph(std::string_view bytes, const std::string& source);
std::string serialize_graph(const Graph& graph);

}  // namespace kiln::graph
