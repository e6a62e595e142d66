#include "data/dataset.h"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "tensor/threading.h"
#include "tensor/random.h"

namespace kiln::data {
namespace {

template <typename T>
struct Stream {
  virtual ~Stream() = default;
  virtual std::optional<T> next() = 0;
};
using Indices = std::vector<int64_t>;
template <typename T>
using Factory = std::function<std::unique_ptr<Stream<T>>(uint64_t pass_seed)>;

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9e3779b97f4a7c15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

struct RangeStream : Stream<int64_t> {
  int64_t i = 0, n;
  explicit RangeStream(int64_t n) : n(n) {}
  std::optional<int64_t> next() override {
    if (i >= n) return std::nullopt;
    return i++;
  }
};

template <typename T>
struct ShuffleStream : Stream<T> {
  std::unique_ptr<Stream<T>> up;
  std::vector<T> buffer;
  int64_t capacity;
  RandomStream rng;
  bool exhausted = false;
  ShuffleStream(std::unique_ptr<Stream<T>> up, int64_t capacity, uint64_t seed)
      : up(std::move(up)), capacity(capacity), rng(seed) {}
  std::optional<T> next() override {
    while (!exhausted && static_cast<int64_t>(buffer.size()) < capacity) {
      auto v = up->next();
      if (!v) {
        exhausted = true;
        break;
      }
      buffer.push_back(std::move(*v));
    }
    if (buffer.empty()) return std::nullopt;
    size_t k = rng.below(buffer.size());
    std::swap(buffer[k], buffer.back());
    T out = std::move(buffer.back());
    buffer.pop_back();
    return out;
  }
};

template <typename T>
struct RepeatStream : Stream<T> {
  Factory<T> factory;
  int64_t count, pass = 0;
  uint64_t seed;
  std::unique_ptr<Stream<T>> cur;
  bool yielded_this_pass = false;
  RepeatStream(Factory<T> f, int64_t count, uint64_t seed) : factory(std::move(f)), count(count), seed(seed) {}
  std::optional<T> next() override {
    while (true) {
      if (!cur) {
        if (count >= 0 && pass >= count) return std::nullopt;
        cur = factory(mix(seed, pass++));
        yielded_this_pass = false;
      }
      auto v = cur->next();
      if (v) {
        yielded_this_pass = true;
        return v;
      }
      cur.reset();
      if (!yielded_this_pass) return std::nullopt;  // an empty pass would repeat forever
    }
  }
};

template <typename T>
struct TakeStream : Stream<T> {
  std::unique_ptr<Stream<T>> up;
  int64_t left;
  TakeStream(std::unique_ptr<Stream<T>> up, int64_t n) : up(std::move(up)), left(n) {}
  std::optional<T> next() override {
    if (left <= 0) return std::nullopt;
    --left;
    return up->next();
  }
};

struct ShardStream : Stream<int64_t> {
  std::unique_ptr<Stream<int64_t>> up;
  int64_t n, index, pos = 0;
  ShardStream(std::unique_ptr<Stream<int64_t>> up, int64_t n, int64_t index) : up(std::move(up)), n(n), index(index) {}
  std::optional<int64_t> next() override {
    while (auto v = up->next()) {
      if (pos++ % n == index) return v;
    }
    return std::nullopt;
  }
};

struct BatchStream : Stream<Indices> {
  std::unique_ptr<Stream<int64_t>> up;
  int64_t size;
  bool drop;
  BatchStream(std::unique_ptr<Stream<int64_t>> up, int64_t size, bool drop) : up(std::move(up)), size(size), drop(drop) {}
  std::optional<Indices> next() override {
    Indices b;
    while (static_cast<int64_t>(b.size()) < size) {
      auto v = up->next();
      if (!v) break;
      b.push_back(*v);
    }
    if (b.empty() || (drop && static_cast<int64_t>(b.size()) < size)) return std::nullopt;
    return b;
  }
};

}  // namespace

Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& rows) {
  Shape shape = t.shape();
  int64_t n = shape[0];
  shape[0] = static_cast<int64_t>(rows.size());
  Tensor src = t.is_contiguous() ? t : t.clone_detached();
  Tensor out = Tensor::empty(shape, t.dtype());
  size_t row_bytes = (n ? src.nbytes() / n : 0);
  const char* s = static_cast<const char*>(src.raw_data());
  char* d = static_cast<char*>(out.raw_data());
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= n) throw std::out_of_range("gather_rows: row " + std::to_string(rows[i]) + " of " + t.describe());
    std::memcpy(d + i * row_bytes, s + rows[i] * row_bytes, row_bytes);
  }
  return out;
}

Dataset Dataset::from_tensor_slices(const Tensor& x, const Tensor& y) {
  if (!x.defined()) throw std::invalid_argument("Dataset::from_tensor_slices: undefined features");
  if (x.ndim() == 0) throw std::invalid_argument("Dataset::from_tensor_slices: scalar features " + x.describe());
  if (y.defined() && (y.ndim() == 0 || y.shape()[0] != x.shape()[0])) {
    throw std::invalid_argument("Dataset::from_tensor_slices: features " + x.describe() + " and labels " +
                                y.describe() + " differ in their first dimension");
  }
  Dataset d;
  d.source_ = std::make_shared<const Batch>(Batch{x.is_contiguous() ? x : x.clone_detached(),
                                                  y.defined() && !y.is_contiguous() ? y.clone_detached() : y});
  return d;
}

Dataset Dataset::with(Stage s) const {
  Dataset d = *this;
  d.stages_.push_back(std::move(s));
  return d;
}

bool Dataset::batched() const {
  for (const Stage& s : stages_) {
    if (s.kind == Stage::batch) return true;
  }
  return false;
}

Dataset Dataset::shuffle(int64_t buffer_size, uint64_t seed) const {
  if (buffer_size <= 0) throw std::invalid_argument("Dataset::shuffle: buffer_size must be positive");
  return with(Stage{.kind = Stage::shuffle, .buffer_size = buffer_size, .seed = seed ? seed : next_global_seed()});
}

Dataset Dataset::batch(int64_t batch_size, bool drop_remainder) const {
  if (batch_size <= 0) throw std::invalid_argument("Dataset::batch: batch_size must be positive, got " + std::to_string(batch_size));
  if (batched()) throw std::invalid_argument("Dataset::batch: the dataset is already batched");
  return with(Stage{.kind = Stage::batch, .batch_size = batch_size, .drop_remainder = drop_remainder});
}

Dataset Dataset::repeat(int64_t count) const { return with(Stage{.kind = Stage::repeat, .count = count}); }

Dataset Dataset::take(int64_t count) const {
  if (count < 0) throw std::invalid_argument("Dataset::take: negative count");
  return with(Stage{.kind = Stage::take, .count = count});
}

Dataset Dataset::shard(int64_t num_shards, int64_t index) const {
  if (num_shards <= 0 || index < 0 || index >= num_shards) {
    throw std::invalid_argument("Dataset::shard: index " + std::to_string(index) + " is not in [0, " +
                                std::to_string(num_shards) + ")");
  }
  if (batched()) throw std::invalid_argument("Dataset::shard: shard before batch()");
  return with(Stage{.kind = Stage::shard, .num_shards = num_shards, .shard_index = index});
}

Dataset Dataset::map(std::function<Batch(Batch)> fn) const {
  if (!batched()) throw std::invalid_argument("Dataset::map: map() transforms batches; call batch() first");
  return with(Stage{.kind = Stage::map, .fn = std::move(fn)});
}

Dataset Dataset::prefetch(int64_t buffer_size) const {
  if (buffer_size <= 0) throw std::invalid_argument("Dataset::prefetch: buffer_size must be positive");
  return with(Stage{.kind = Stage::prefetch, .buffer_size = buffer_size});
}

int64_t Dataset::num_examples() const { return source_ ? source_->x.shape()[0] : 0; }

int64_t Dataset::cardinality() const {
  int64_t n = num_examples();
  for (const Stage& s : stages_) {
    switch (s.kind) {
      case Stage::repeat:
        if (n != 0) n = s.count < 0 || n < 0 ? -1 : n * s.count;
        break;
      case Stage::take: n = n < 0 ? s.count : std::min(n, s.count); break;
      case Stage::shard:
        if (n >= 0) n = n / s.num_shards + (s.shard_index < n % s.num_shards ? 1 : 0);
        break;
      case Stage::batch:
        if (n >= 0) n = s.drop_remainder ? n / s.batch_size : (n + s.batch_size - 1) / s.batch_size;
        break;
      default: break;
    }
  }
  return n;
}

struct BatchIterator::Impl {
  std::unique_ptr<Stream<Indices>> batches;
  std::unique_ptr<Stream<int64_t>> elements;  // unbatched datasets yield batches of one
  std::shared_ptr<const Batch> source;
  std::vector<std::function<Batch(Batch)>> maps;
  int64_t prefetch = 0;

  std::thread worker;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::optional<Batch>> queue;
  std::exception_ptr error;
  bool stop = false, started = false;

  std::optional<Batch> produce() {
    std::optional<Indices> idx;
    if (batches) {
      idx = batches->next();
    } else if (auto e = elements->next()) {
      idx = Indices{*e};
    }
    if (!idx) return std::nullopt;
    Batch b{gather_rows(source->x, *idx), source->y.defined() ? gather_rows(source->y, *idx) : Tensor()};
    if (!batches) {
      Shape xs(b.x.shape().begin() + 1, b.x.shape().end());
      b.x = b.x.alias(xs, contiguous_strides(xs), 0);
      if (b.y.defined()) {
        Shape ys(b.y.shape().begin() + 1, b.y.shape().end());
        b.y = b.y.alias(ys, contiguous_strides(ys), 0);
      }
    }
    for (auto& fn : maps) b = fn(std::move(b));
    return b;
  }

  void run() {
    cpu::unbind_current_thread();  // not on the core of the (bound) thread that created it
    try {
      while (true) {
        std::optional<Batch> b = produce();
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || static_cast<int64_t>(queue.size()) < prefetch; });
        if (stop) return;
        bool end = !b;
        queue.push_back(std::move(b));
        cv.notify_all();
        if (end) return;
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      error = std::current_exception();
      queue.push_back(std::nullopt);
      cv.notify_all();
    }
  }

  std::optional<Batch> next() {
    if (prefetch == 0) return produce();
    if (!started) {
      started = true;
      worker = std::thread([this] { run(); });
    }
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return !queue.empty(); });
    std::optional<Batch> b = std::move(queue.front());
    if (b) queue.pop_front();  // the end marker stays, so later calls also see the end
    cv.notify_all();
    if (!b && error) std::rethrow_exception(error);
    return b;
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    if (worker.joinable()) worker.join();
  }
};

BatchIterator::BatchIterator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BatchIterator::BatchIterator(BatchIterator&&) noexcept = default;
BatchIterator::~BatchIterator() = default;
std::optional<Batch> BatchIterator::next() { return impl_->next(); }

BatchIterator Dataset::begin_iteration() const {
  if (!source_) throw std::logic_error("Dataset: iterating an empty Dataset (use from_tensor_slices)");
  int64_t n = num_examples();
  uint64_t epoch_seed = mix(0x6b696c6eull, static_cast<uint64_t>(epoch_));
  // Build factories stage by stage so repeat() can restart everything upstream of it.
  Factory<int64_t> elements = [n](uint64_t) { return std::make_unique<RangeStream>(n); };
  Factory<Indices> batches;
  auto impl = std::make_unique<BatchIterator::Impl>();
  for (const Stage& s : stages_) {
    switch (s.kind) {
      case Stage::shuffle:
        if (batches) {
          batches = [up = batches, s](uint64_t seed) -> std::unique_ptr<Stream<Indices>> {
            return std::make_unique<ShuffleStream<Indices>>(up(seed), s.buffer_size, mix(s.seed, seed));
          };
        } else {
          elements = [up = elements, s](uint64_t seed) -> std::unique_ptr<Stream<int64_t>> {
            return std::make_unique<ShuffleStream<int64_t>>(up(seed), s.buffer_size, mix(s.seed, seed));
          };
        }
        break;
      case Stage::repeat:
        if (batches) {
          batches = [up = batches, s](uint64_t seed) -> std::unique_ptr<Stream<Indices>> {
            return std::make_unique<RepeatStream<Indices>>(up, s.count, seed);
          };
        } else {
          elements = [up = elements, s](uint64_t seed) -> std::unique_ptr<Stream<int64_t>> {
            return std::make_unique<RepeatStream<int64_t>>(up, s.count, seed);
          };
        }
        break;
      case Stage::take:
        if (batches) {
          batches = [up = batches, s](uint64_t seed) -> std::unique_ptr<Stream<Indices>> {
            return std::make_unique<TakeStream<Indices>>(up(seed), s.count);
          };
        } else {
          elements = [up = elements, s](uint64_t seed) -> std::unique_ptr<Stream<int64_t>> {
            return std::make_unique<TakeStream<int64_t>>(up(seed), s.count);
          };
        }
        break;
      case Stage::shard:
        elements = [up = elements, s](uint64_t seed) -> std::unique_ptr<Stream<int64_t>> {
          return std::make_unique<ShardStream>(up(seed), s.num_shards, s.shard_index);
        };
        break;
      case Stage::batch:
        batches = [up = elements, s](uint64_t seed) -> std::unique_ptr<Stream<Indices>> {
          return std::make_unique<BatchStream>(up(seed), s.batch_size, s.drop_remainder);
        };
        break;
      case Stage::map: impl->maps.push_back(s.fn); break;
      case Stage::prefetch: impl->prefetch = s.buffer_size; break;
    }
  }
  impl->source = source_;
  if (batches) {
    impl->batches = batches(epoch_seed);
  } else {
    impl->elements = elements(epoch_seed);
  }
  return BatchIterator(std::move(impl));
}

}  // namespace kiln::data
