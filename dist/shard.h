#pragma once
#include "data/dataset.h"

namespace kiln::dist {

// This rank's share of every batch: of a batch of B examples, rank r of N takes rows
// [r*B/N, (r+1)*B/N). The dataset's batch size is the global batch (TensorFlow's
// MultiWorkerMirroredStrategy, Nano), so N ranks together compute exactly the batches one
// process would. fit applies it by itself; a custom loop writes
//   auto mine = dist::shard(train);
// A batch with fewer examples than ranks is an error (some rank would have none).
data::Dataset shard(const data::Dataset& batched, int rank, int world_size);
data::Dataset shard(const data::Dataset& batched);  // this process's rank and world

}  // namespace kiln::dist
