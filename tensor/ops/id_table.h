#pragma once
// Flat containers keyed by tensor id for the tape. A training step records and differentiates
// tens to hundreds of ops; std::unordered_set/map allocate a node per insert, these allocate
// only when they grow (and a tape's are sized from the previous tape's on the same thread).
#include <cstdint>
#include <utility>
#include <vector>

namespace kiln::autograd {

// Up to kInline ids in place (most ops have at most three inputs and one output).
class IdList {
 public:
  static constexpr size_t kInline = 4;
  void push_back(uint64_t id) {
    if (size_ < kInline) {
      inline_[size_] = id;
    } else {
      if (size_ == kInline) heap_.assign(inline_, inline_ + kInline);
      heap_.push_back(id);
    }
    ++size_;
  }
  size_t size() const { return size_; }
  const uint64_t* begin() const { return size_ <= kInline ? inline_ : heap_.data(); }
  const uint64_t* end() const { return begin() + size_; }
  uint64_t operator[](size_t i) const { return begin()[i]; }

 private:
  uint64_t inline_[kInline] = {};
  std::vector<uint64_t> heap_;
  size_t size_ = 0;
};

// Open addressing with linear probing; id 0 (an undefined tensor) marks an empty slot and
// cannot be stored. Erase shifts the probe run back, so no tombstones build up.
template <typename V>
class IdMap {
 public:
  explicit IdMap(size_t expected = 0) { reserve(expected); }

  void reserve(size_t n) {
    size_t want = 16;
    while (want < 2 * n) want <<= 1;
    if (want > slots_.size()) rehash(want);
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() {
    for (auto& s : slots_) s = {0, V{}};
    size_ = 0;
  }
  V* find(uint64_t id) {
    if (slots_.empty()) return nullptr;
    for (size_t i = slot(id);; i = (i + 1) & mask()) {
      if (slots_[i].first == id) return &slots_[i].second;
      if (slots_[i].first == 0) return nullptr;
    }
  }
  const V* find(uint64_t id) const { return const_cast<IdMap*>(this)->find(id); }
  bool contains(uint64_t id) const { return find(id) != nullptr; }
  // Inserts (id, value) unless id is present; returns the stored value and whether it is new.
  std::pair<V*, bool> try_emplace(uint64_t id, V value = V{}) {
    if (V* v = find(id)) return {v, false};
    if (2 * (size_ + 1) > slots_.size()) rehash(slots_.empty() ? 16 : 2 * slots_.size());
    size_t i = slot(id);
    while (slots_[i].first != 0) i = (i + 1) & mask();
    slots_[i] = {id, std::move(value)};
    ++size_;
    return {&slots_[i].second, true};
  }
  bool erase(uint64_t id) {
    if (slots_.empty()) return false;
    size_t i = slot(id);
    while (slots_[i].first != id) {
      if (slots_[i].first == 0) return false;
      i = (i + 1) & mask();
    }
    // Backward-shift deletion: pull later members of the probe run into the hole.
    for (size_t j = (i + 1) & mask(); slots_[j].first != 0; j = (j + 1) & mask()) {
      size_t home = slot(slots_[j].first);
      bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
      if (movable) {
        slots_[i] = std::move(slots_[j]);
        i = j;
      }
    }
    slots_[i] = {0, V{}};
    --size_;
    return true;
  }
  void swap(IdMap& other) {
    slots_.swap(other.slots_);
    std::swap(size_, other.size_);
  }
  template <typename F>
  void for_each(F&& f) {
    for (auto& s : slots_) {
      if (s.first != 0) f(s.first, s.second);
    }
  }
  size_t capacity() const { return slots_.size(); }

 private:
  size_t mask() const { return slots_.size() - 1; }
  size_t slot(uint64_t id) const {
    uint64_t h = id * 0x9E3779B97F4A7C15ull;  // ids are sequential: spread them over the table
    return static_cast<size_t>(h ^ (h >> 32)) & mask();
  }
  void rehash(size_t n) {
    std::vector<std::pair<uint64_t, V>> old(n);
    old.swap(slots_);
    size_ = 0;
    for (auto& s : old) {
      if (s.first != 0) try_emplace(s.first, std::move(s.second));
    }
  }
  std::vector<std::pair<uint64_t, V>> slots_;
  size_t size_ = 0;
};

// A set of ids: an IdMap with nothing mapped.
class IdSet {
 public:
  explicit IdSet(size_t expected = 0) : map_(expected) {}
  void reserve(size_t n) { map_.reserve(n); }
  bool insert(uint64_t id) { return map_.try_emplace(id).second; }
  bool count(uint64_t id) const { return map_.contains(id); }
  bool erase(uint64_t id) { return map_.erase(id); }
  void clear() { map_.clear(); }
  size_t size() const { return map_.size(); }
  size_t capacity() const { return map_.capacity(); }
  void swap(IdSet& other) { map_.swap(other.map_); }

 private:
  struct Empty {};
  IdMap<Empty> map_;
};

}  // namespace kiln::autograd
