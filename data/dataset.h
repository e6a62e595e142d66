#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace kiln::data {

struct Batch {
  Tensor x;
  Tensor y;  // undefined for unlabeled data
};

class BatchIterator;

// An input pipeline over in-memory arrays, in the style of tf.data: element i is (x[i], y[i]).
// Stages are lazy and compose in order. Shuffling works on indices and rows are gathered
// only when a batch is produced, so a pass costs one copy of the data it yields.
class Dataset {
 public:
  static Dataset from_tensor_slices(const Tensor& x, const Tensor& y = Tensor());

  // tf.data shuffle: a buffer of buffer_size elements (>= the dataset size: a full shuffle).
  // The order depends only on (seed, epoch, repeat pass), so runs and resumed runs agree.
  Dataset shuffle(int64_t buffer_size, uint64_t seed = 0) const;
  Dataset batch(int64_t batch_size, bool drop_remainder = false) const;
  Dataset repeat(int64_t count = -1) const;  // -1: forever
  Dataset take(int64_t count) const;
  // Every num_shards-th element starting at index (before batch), for data parallelism.
  Dataset shard(int64_t num_shards, int64_t index) const;
  // Transforms each batch (after batch()); runs on the prefetch thread when there is one.
  Dataset map(std::function<Batch(Batch)> fn) const;
  // Produces up to buffer_size batches ahead on a background thread.
  Dataset prefetch(int64_t buffer_size = 2) const;

  // Items one pass yields (batches after batch(), elements before); -1 when infinite.
  int64_t cardinality() const;
  int64_t num_examples() const;
  bool batched() const;
  // The epoch the next iteration belongs to (the training loop sets it on its own copy);
  // shuffling uses it. Each Dataset object has its own: setting it changes no copy, and
  // datasets derived later start from the value it had then.
  void set_epoch(int64_t epoch) { epoch_ = epoch; }
  int64_t epoch() const { return epoch_; }

  BatchIterator begin_iteration() const;

 private:
  // One lazy pipeline step; only the fields of its kind are used.
  struct Stage {
    enum Kind { shuffle, batch, repeat, take, shard, map, prefetch } kind;
    int64_t buffer_size = 0;           // shuffle, prefetch
    int64_t batch_size = 0;            // batch
    bool drop_remainder = false;       // batch
    int64_t count = 0;                 // repeat (-1: forever), take
    int64_t num_shards = 1;            // shard
    int64_t shard_index = 0;           // shard
    uint64_t seed = 0;                 // shuffle
    std::function<Batch(Batch)> fn;    // map
  };

  Dataset with(Stage s) const;

  std::shared_ptr<const Batch> source_;  // immutable, so copies share it safely
  std::vector<Stage> stages_;
  int64_t epoch_ = 0;
};

// Yields the batches of one pass; not copyable (it may own a prefetch thread).
class BatchIterator {
 public:
  struct Impl;
  explicit BatchIterator(std::unique_ptr<Impl> impl);
  BatchIterator(BatchIterator&&) noexcept;
  ~BatchIterator();
  std::optional<Batch> next();

 private:
  std::unique_ptr<Impl> impl_;
};

// Gathers rows of t (first axis) into a new contiguous tensor.
Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& rows);

}  // namespace kiln::data
