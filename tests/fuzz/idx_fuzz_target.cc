#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "data/idx.h"
#include "tests/fuzz/fuzz_support.h"

// Every accepted file is checked against a reference reading: IDX is exact (magic 0 0, type,
// rank, big-endian u32 dims, then exactly the data), and gzip input must inflate completely
// with a matching CRC-32 and length in every member.
namespace {

const char* const kFormat = "idx";

enum class Verdict { kValid, kInvalid, kUnsure };

struct Reference {
  Verdict verdict = Verdict::kInvalid;
  std::string why;
  kiln::DType dtype = kiln::DType::u8;
  kiln::Shape shape;
  std::string data;  // big-endian, as in the file
};

// Inflates every gzip member. Trailing bytes that do not start another member are ignored by
// zlib's gzread (and gunzip), so they make the answer "unsure" rather than invalid.
Verdict gunzip(std::string_view in, std::string& out, std::string& why) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return why = "inflateInit2", Verdict::kUnsure;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[16384];
  Verdict v = Verdict::kValid;
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    int rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    if (out.size() > (size_t{64} << 20)) {
      why = "inflates past 64 MiB";
      v = Verdict::kUnsure;
      break;
    }
    if (rc == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      if (z.avail_in >= 2 && z.next_in[0] == 0x1f && z.next_in[1] == 0x8b) {
        inflateReset(&z);
        continue;
      }
      why = "bytes after the last gzip member";
      v = Verdict::kUnsure;
      break;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && z.avail_in == 0) {
      why = "truncated gzip stream";
    } else {
      why = std::string("corrupt gzip stream: ") + (z.msg ? z.msg : std::to_string(rc));
    }
    v = Verdict::kInvalid;
    break;
  }
  inflateEnd(&z);
  return v;
}

Reference reference(std::string_view b) {
  Reference r;
  std::string inflated;
  if (b.size() >= 2 && static_cast<unsigned char>(b[0]) == 0x1f && static_cast<unsigned char>(b[1]) == 0x8b) {
    r.verdict = gunzip(b, inflated, r.why);
    if (r.verdict == Verdict::kInvalid) return r;
    b = inflated;
  }
  Verdict ok = r.verdict == Verdict::kUnsure ? Verdict::kUnsure : Verdict::kValid;
  r.verdict = Verdict::kInvalid;
  auto u = [&](size_t i) { return static_cast<unsigned char>(b[i]); };
  if (b.size() < 4 || u(0) != 0 || u(1) != 0) return r.why = "bad magic", r;
  switch (u(2)) {
    case 0x08: r.dtype = kiln::DType::u8; break;
    case 0x09: r.dtype = kiln::DType::s8; break;
    case 0x0C: r.dtype = kiln::DType::s32; break;
    case 0x0D: r.dtype = kiln::DType::f32; break;
    default: return r.why = "element type not one idx.h reads", r;
  }
  size_t ndim = u(3);
  if (ndim == 0) return r.verdict = Verdict::kUnsure, r.why = "rank 0", r;
  if (b.size() < 4 + 4 * ndim) return r.why = "truncated dims", r;
  uint64_t n = kiln::dtype_size(r.dtype);
  for (size_t i = 0; i < ndim; ++i) {
    size_t p = 4 + 4 * i;
    uint32_t d = (uint32_t{u(p)} << 24) | (uint32_t{u(p + 1)} << 16) | (uint32_t{u(p + 2)} << 8) | u(p + 3);
    r.shape.push_back(d);
    if (__builtin_mul_overflow(n, uint64_t{d}, &n)) return r.why = "size overflows", r;
  }
  if (n != b.size() - 4 - 4 * ndim) return r.why = "data size does not match the dims", r;
  r.data = std::string(b.substr(4 + 4 * ndim));
  r.verdict = ok;
  return r;
}

}  // namespace

int kiln_fuzz_idx(const uint8_t* data, size_t size) {
  using namespace kiln;
  const std::string source = "fuzz-input.idx";
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Tensor t;
  bool ok = fuzz::accepts(kFormat, source, [&] { t = data::parse_idx(bytes, source); });
  Reference ref = reference(bytes);
  if (!ok) {
    bool plain = ref.shape.size() <= 8 && std::find(ref.shape.begin(), ref.shape.end(), 0) == ref.shape.end();
    if (ref.verdict == Verdict::kValid && plain) fuzz::bug(kFormat, "rejected a well-formed IDX file");
    return 0;
  }
  fuzz::check_tensor(kFormat, t);
  if (ref.verdict == Verdict::kInvalid) return fuzz::bug(kFormat, "silent accept: " + ref.why), 1;
  if (ref.verdict == Verdict::kUnsure) return 1;
  if (t.dtype() != ref.dtype || t.shape() != ref.shape) {
    fuzz::bug(kFormat, "accepted as " + t.describe() + ", the header says " + dtype_name(ref.dtype) + shape_str(ref.shape));
    return 1;
  }
  std::string le = ref.data;
  if (dtype_size(t.dtype()) == 4) {
    for (size_t i = 0; i + 3 < le.size(); i += 4) std::swap(le[i], le[i + 3]), std::swap(le[i + 1], le[i + 2]);
  }
  if (t.nbytes() != le.size() || (!le.empty() && std::memcmp(t.raw_data(), le.data(), le.size()) != 0)) {
    fuzz::bug(kFormat, "data differs from the file's (byte order?)");
  }
  return 1;
}
