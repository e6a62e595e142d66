#include "tensor/ops/concat_kernel.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "tensor/onednn/profiler.h"

namespace kiln::detail {
namespace {

// Below this many output bytes one thread copies everything: a team costs more than it saves.
constexpr int64_t kParallelBytes = int64_t{1} << 17;

// The output is `outer` rows; row r holds input k's row r at bytes [starts[k], starts[k + 1]).
struct ConcatLayout {
  int64_t outer = 1;
  int64_t row_bytes = 0;
  std::vector<int64_t> starts;
  std::vector<const char*> sources;
};

// Copies output bytes [begin, end): finds the input holding `begin` once, then walks on.
void copy_range(const ConcatLayout& l, char* dst, int64_t begin, int64_t end) {
  int64_t row = begin / l.row_bytes;
  int64_t in_row = begin % l.row_bytes;
  size_t k = std::upper_bound(l.starts.begin(), l.starts.end(), in_row) - l.starts.begin() - 1;
  for (int64_t pos = begin; pos < end;) {
    const int64_t piece = l.starts[k + 1] - l.starts[k];
    const int64_t take = std::min(l.starts[k + 1] - in_row, end - pos);
    std::memcpy(dst + pos, l.sources[k] + row * piece + (in_row - l.starts[k]), take);
    pos += take;
    in_row += take;
    while (in_row >= l.starts[k + 1]) {  // on to the next non-empty piece, wrapping to the next row
      if (++k == l.sources.size()) {
        k = 0;
        in_row = 0;
        ++row;
        if (pos >= end) return;
      }
    }
  }
}

}  // namespace

void concat_into(const Tensor& out, const std::vector<Tensor>& inputs, int axis) {
  const int64_t elem = static_cast<int64_t>(dtype_size(out.dtype()));
  ConcatLayout l;
  int64_t inner = elem;
  for (int i = 0; i < out.ndim(); ++i) {
    if (i < axis) l.outer *= out.shape()[i];
    if (i > axis) inner *= out.shape()[i];
  }
  l.starts.reserve(inputs.size() + 1);
  l.sources.reserve(inputs.size());
  l.starts.push_back(0);
  for (const Tensor& t : inputs) {
    l.starts.push_back(l.starts.back() + t.shape()[axis] * inner);
    l.sources.push_back(static_cast<const char*>(t.raw_data()));
  }
  l.row_bytes = l.starts.back();
  const int64_t total = l.outer * l.row_bytes;
  if (total == 0) return;
  char* dst = static_cast<char*>(out.raw_data());
  onednn::profiler::KernelScope timed;
  if (total < kParallelBytes) {
    copy_range(l, dst, 0, total);
    return;
  }
#pragma omp parallel
  {
    // Even shares, cut at cache-line boundaries so no two threads write one line.
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t begin = t == 0 ? 0 : total * t / threads / 64 * 64;
    const int64_t end = t + 1 == threads ? total : total * (t + 1) / threads / 64 * 64;
    if (begin < end) copy_range(l, dst, begin, end);
  }
}

}  // namespace kiln::detail
