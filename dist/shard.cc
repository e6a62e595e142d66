#include "dist/shard.h"

#include <numeric>
#include <stdexcept>
#include <string>

#include "dist/world.h"

namespace kiln::dist {

data::Dataset shard(const data::Dataset& batched, int rank, int world_size) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    throw std::invalid_argument("dist::shard: rank " + std::to_string(rank) + " is not in a world of " +
                                std::to_string(world_size));
  }
  if (!batched.batched()) throw std::invalid_argument("dist::shard: the dataset must be batched (call batch() first)");
  if (world_size == 1) return batched;
  return batched.map([rank, world_size](data::Batch b) {
    const int64_t n = b.x.shape()[0];
    const int64_t begin = rank * n / world_size, end = (rank + 1) * n / world_size;
    if (begin == end) {
      throw std::invalid_argument("dist::shard: a batch of " + std::to_string(n) + " examples cannot be split over " +
                                  std::to_string(world_size) +
                                  " ranks (each needs one); use a larger batch or batch(size, /*drop_remainder=*/true)");
    }
    std::vector<int64_t> rows(end - begin);
    std::iota(rows.begin(), rows.end(), begin);
    data::Batch out{data::gather_rows(b.x, rows), b.y.defined() ? data::gather_rows(b.y, rows) : b.y};
    return out;
  });
}

data::Dataset shard(const data::Dataset& batched) { return shard(batched, rank(), world_size()); }

}  // namespace kiln::dist
