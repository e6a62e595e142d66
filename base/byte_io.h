#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace kiln::base {

// zlib's CRC-32 of every byte (inputs over 4 GiB included).
uint32_t crc32_of(std::string_view bytes);

// Writes Kiln's binary files (checkpoint, graph file, saved model): integers and floating
// numbers little-endian whatever the machine, strings as a u32 length and their bytes.
class ByteWriter {
 public:
  template <typename T>
  void put(T v) {
    static_assert(std::is_arithmetic_v<T>, "put() writes numbers; use bytes() or str() for the rest");
    unsigned char le[sizeof(T)];
    store_little_endian(v, le);
    out_.append(reinterpret_cast<const char*>(le), sizeof le);
  }
  void bytes(const void* data, size_t n) { out_.append(static_cast<const char*>(data), n); }
  void bytes(std::string_view data) { out_.append(data); }
  void str(std::string_view s);
  size_t size() const { return out_.size(); }
  // Appends the CRC-32 of every byte written and hands the bytes over.
  std::string finish_with_crc();

  template <typename T>
  static void store_little_endian(T v, unsigned char* le) {
    using Bits = std::conditional_t<sizeof(T) == 1, uint8_t,
                                    std::conditional_t<sizeof(T) == 2, uint16_t,
                                                       std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;
    static_assert(sizeof(Bits) == sizeof(T));
    Bits bits;
    std::memcpy(&bits, &v, sizeof v);
    for (size_t i = 0; i < sizeof(T); ++i) le[i] = static_cast<unsigned char>(bits >> (8 * i));
  }

 private:
  std::string out_;
};

// Reads what ByteWriter writes, checking every read against the bytes present, so a size taken
// from a file is bounded before anything is allocated for it. Every error is a
// std::runtime_error "<source>: <what> (at byte N)": `source` names the format and the file
// ("checkpoint 'a.kckpt'"), N is the offset reached, and a read past the end names the field.
class ByteReader {
 public:
  ByteReader(std::string_view bytes, std::string source) : bytes_(bytes), source_(std::move(source)) {}
  // The reader keeps a view of the bytes: they must outlive it, so a temporary string will not do.
  ByteReader(std::string&& bytes, std::string source) = delete;

  template <typename T>
  T get(const char* field) {
    static_assert(std::is_arithmetic_v<T>);
    std::string_view le = take(sizeof(T), field);
    using Bits = std::conditional_t<sizeof(T) == 1, uint8_t,
                                    std::conditional_t<sizeof(T) == 2, uint16_t,
                                                       std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;
    Bits bits = 0;
    for (size_t i = 0; i < sizeof(T); ++i) bits |= static_cast<Bits>(static_cast<unsigned char>(le[i])) << (8 * i);
    T v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  std::string_view take(size_t n, const char* field);
  std::string str(const char* field);  // a u32 length, then that many bytes
  // A u32 count of items that each take at least min_bytes: it must fit in the bytes left.
  uint32_t count(const char* field, size_t min_bytes);
  // Throws "N trailing bytes after <what>" unless every byte was read.
  void expect_end(const std::string& what) const;

  size_t remaining() const { return bytes_.size() - pos_; }
  size_t position() const { return pos_; }
  const std::string& source() const { return source_; }
  [[noreturn]] void fail(const std::string& what) const;

 private:
  std::string_view bytes_;
  std::string source_;
  size_t pos_ = 0;
};

// The frame every Kiln binary file shares: an 8-byte magic, a u32 format version, the body,
// and a u32 CRC-32 of every byte before it.
struct FileFormat {
  const char* magic;  // 8 characters
  const char* name;   // "checkpoint": what errors call the file
  uint32_t version;
};

// A writer that has written the magic and the version.
ByteWriter start_file(const FileFormat& format);
// Checks the magic, the version and the CRC, in that order, and returns a reader over the body
// (positioned after the version; the CRC excluded). The body must hold at least a u32.
ByteReader open_file(std::string_view bytes, const FileFormat& format, const std::string& source);

}  // namespace kiln::base
