#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::fuzz {

// xorshift64: tiny, and the same sequence on every machine, so a failing case number is
// enough to reproduce it.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed ? seed : 0x9e3779b97f4a7c15ull) {}
  uint64_t next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_;
  }
  size_t below(size_t n) { return n ? next() % n : 0; }
  bool chance(int percent) { return below(100) < static_cast<size_t>(percent); }

 private:
  uint64_t s_;
};

// An integer field of a seed, so that integer overwrites hit sizes and counts, not just bytes.
struct Field {
  size_t offset;
  int width;
  bool big_endian;
};

uint64_t interesting_int(Rng& r);
uint32_t crc32_of(std::string_view bytes);
std::string gzip(std::string_view bytes, int level);
bool gunzip(std::string_view bytes, std::string& out);
bool is_gzip(std::string_view bytes);

// One to three byte-level mutations: bit flips, interesting bytes, insert/delete/duplicate
// ranges, truncation, splices with `pool`, integer overwrites (at `fields` mostly) and
// `dictionary` tokens.
void mutate_bytes(std::string& b, Rng& r, const std::vector<Field>& fields, const std::vector<std::string>& dictionary,
                  const std::vector<std::string>& pool);

// Structure-aware mutations: decode a valid seed, change counts, dims, dtypes, names or header
// text, and encode it again with consistent framing (lengths, CRC, padding) so that the parser's
// deeper checks are reached. Each returns false when the seed is not one it understands.
std::vector<Field> checkpoint_fields(const std::string& b);
bool mutate_checkpoint(const std::string& seed, Rng& r, std::string& out);
void fix_checkpoint_crc(std::string& b);
std::vector<Field> npy_fields(const std::string& b);
bool mutate_npy(const std::string& seed, Rng& r, std::string& out);
std::vector<Field> idx_fields(const std::string& payload);
bool mutate_idx_payload(const std::string& payload, Rng& r, std::string& out);
std::string generate_csv(Rng& r);

// The seeds a mutation driver starts from: `generated` (also written to $KILN_FUZZ_WRITE_CORPUS
// as <name>-<i>.<extension> when that is set, to refresh the checked-in corpus), then every
// file under tests/fuzz/corpus/<format> in name order. The checked-in part is returned in
// *checked_in too, so a test can insist that it is not empty.
std::vector<std::string> driver_seeds(std::vector<std::string> generated, const std::string& format,
                                      const std::string& name, const std::string& extension,
                                      size_t* checked_in);

}  // namespace kiln::fuzz
