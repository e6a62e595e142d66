// base/byte_io: the little-endian reader and writer and the CRC-32 frame that Kiln's checkpoint,
// graph file and saved model share.
#include "base/byte_io.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <stdexcept>

namespace kiln::base {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ByteIo, WritesLittleEndianWhateverTheMachine) {
  ByteWriter w;
  w.put<uint8_t>(0xab);
  w.put<uint32_t>(0x01020304u);
  w.put<int64_t>(-2);
  w.put<double>(1.0);  // 0x3ff0000000000000
  w.str("hi");
  std::string want("\xab\x04\x03\x02\x01", 5);
  want += std::string("\xfe\xff\xff\xff\xff\xff\xff\xff", 8);
  want += std::string("\x00\x00\x00\x00\x00\x00\xf0\x3f", 8);
  want += std::string("\x02\x00\x00\x00hi", 6);
  std::string bytes = w.finish_with_crc();
  ASSERT_EQ(bytes.size(), want.size() + 4);
  EXPECT_EQ(bytes.substr(0, want.size()), want);
  uint32_t crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(want.data()), want.size()));
  ByteReader crc_reader(std::string_view(bytes).substr(want.size()), "crc");
  EXPECT_EQ(crc_reader.get<uint32_t>("crc"), crc);
  EXPECT_EQ(crc32_of(want), crc);

  ByteReader r(bytes, "test 'x'");
  EXPECT_EQ(r.get<uint8_t>("a"), 0xab);
  EXPECT_EQ(r.get<uint32_t>("b"), 0x01020304u);
  EXPECT_EQ(r.get<int64_t>("c"), -2);
  EXPECT_EQ(r.get<double>("d"), 1.0);
  EXPECT_EQ(r.str("e"), "hi");
  EXPECT_EQ(r.remaining(), 4u);
}

TEST(ByteIo, ErrorsNameTheSourceTheFieldAndTheOffset) {
  std::string bytes("\x05\x00\x00\x00" "abc", 7);
  ByteReader r(bytes, "graph 'g.kgraph'");
  EXPECT_EQ(error_of([&] { r.str("op name"); }), "graph 'g.kgraph': truncated while reading op name (at byte 4)");
  ByteReader counted(std::string_view("\xff\xff\xff\x7f" "abcdefgh", 12), "checkpoint 'c'");
  EXPECT_EQ(error_of([&] { counted.count("entries", 4); }),
            "checkpoint 'c': declares 2147483647 entries but only 8 bytes remain (at byte 4)");
  ByteReader trailing(std::string_view("\x01\x02\x03", 3), "saved model 'm'");
  trailing.get<uint8_t>("tag");
  EXPECT_EQ(error_of([&] { trailing.expect_end("the last section"); }),
            "saved model 'm': 2 trailing bytes after the last section (at byte 1)");
}

TEST(ByteIo, TheFrameChecksMagicVersionAndCrcInThatOrder) {
  constexpr FileFormat kFormat{"KILNTEST", "test file", 3};
  ByteWriter w = start_file(kFormat);
  w.put<uint32_t>(7);
  std::string good = w.finish_with_crc();
  ByteReader body = open_file(good, kFormat, "f");
  EXPECT_EQ(body.get<uint32_t>("value"), 7u);
  EXPECT_EQ(body.remaining(), 0u);

  EXPECT_EQ(error_of([&] { open_file("KILNTES", kFormat, "f"); }), "'f' is not a Kiln test file (bad magic)");
  EXPECT_EQ(error_of([&] { open_file(good.substr(0, 19), kFormat, "f"); }),
            "test file 'f' is truncated (19 bytes, the header and checksum alone need 20)");
  std::string other_version = good;
  other_version[8] = 4;  // also breaks the CRC: the version is reported first
  EXPECT_EQ(error_of([&] { open_file(other_version, kFormat, "f"); }),
            "test file 'f': format version 4; this Kiln reads version 3 (at byte 12)");
  std::string flipped = good;
  flipped[12] ^= 1;
  EXPECT_EQ(error_of([&] { open_file(flipped, kFormat, "f"); }), "test file 'f' is corrupt (checksum mismatch)");
}

}  // namespace
}  // namespace kiln::base
