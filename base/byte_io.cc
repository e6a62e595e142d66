#include "base/byte_io.h"

#include <zlib.h>

#include <algorithm>
#include <stdexcept>

namespace kiln::base {

uint32_t crc32_of(std::string_view bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib's length is a uInt: feed it pieces below 4 GiB.
  constexpr size_t kPiece = size_t{1} << 30;
  for (size_t at = 0; at < bytes.size(); at += kPiece) {
    size_t n = std::min(kPiece, bytes.size() - at);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + at), static_cast<uInt>(n));
  }
  return static_cast<uint32_t>(crc);
}

void ByteWriter::str(std::string_view s) {
  put<uint32_t>(static_cast<uint32_t>(s.size()));
  out_.append(s);
}

std::string ByteWriter::finish_with_crc() {
  put<uint32_t>(crc32_of(out_));
  return std::move(out_);
}

std::string_view ByteReader::take(size_t n, const char* field) {
  if (n > remaining()) fail(std::string("truncated while reading ") + field);
  std::string_view out = bytes_.substr(pos_, n);
  pos_ += n;
  return out;
}

std::string ByteReader::str(const char* field) {
  uint32_t n = get<uint32_t>(field);
  return std::string(take(n, field));
}

uint32_t ByteReader::count(const char* field, size_t min_bytes) {
  uint32_t n = get<uint32_t>(field);
  if (min_bytes && n > remaining() / min_bytes) {
    fail("declares " + std::to_string(n) + " " + field + " but only " + std::to_string(remaining()) + " bytes remain");
  }
  return n;
}

void ByteReader::expect_end(const std::string& what) const {
  if (remaining() != 0) fail(std::to_string(remaining()) + " trailing bytes after " + what);
}

void ByteReader::fail(const std::string& what) const {
  throw std::runtime_error(source_ + ": " + what + " (at byte " + std::to_string(pos_) + ")");
}

ByteWriter start_file(const FileFormat& format) {
  ByteWriter w;
  w.bytes(format.magic, 8);
  w.put<uint32_t>(format.version);
  return w;
}

ByteReader open_file(std::string_view bytes, const FileFormat& format, const std::string& source) {
  constexpr size_t kMagic = 8, kVersion = 4, kCrc = 4, kLeast = kMagic + kVersion + 4 + kCrc;
  if (bytes.size() < kMagic || bytes.substr(0, kMagic) != std::string_view(format.magic, kMagic)) {
    throw std::runtime_error("'" + source + "' is not a Kiln " + format.name + " (bad magic)");
  }
  std::string named = std::string(format.name) + " '" + source + "'";
  if (bytes.size() < kLeast) {
    throw std::runtime_error(named + " is truncated (" + std::to_string(bytes.size()) +
                             " bytes, the header and checksum alone need " + std::to_string(kLeast) + ")");
  }
  std::string_view body = bytes.substr(0, bytes.size() - kCrc);
  ByteReader r(body, named);
  r.take(kMagic, "magic");
  uint32_t version = r.get<uint32_t>("version");
  if (version != format.version) {
    r.fail("format version " + std::to_string(version) + "; this Kiln reads version " + std::to_string(format.version));
  }
  uint32_t stored = ByteReader(bytes.substr(body.size()), named).get<uint32_t>("checksum");
  // Writers before base/ passed zlib the length cut to 32 bits, so a body of 4 GiB or more
  // carries the CRC of its first (length mod 2^32) bytes: such files still load.
  bool legacy = body.size() > UINT32_MAX && stored == crc32_of(body.substr(0, body.size() & UINT32_MAX));
  if (stored != crc32_of(body) && !legacy) throw std::runtime_error(named + " is corrupt (checksum mismatch)");
  return r;
}

}  // namespace kiln::base
