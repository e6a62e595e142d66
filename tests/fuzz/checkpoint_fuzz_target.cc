#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <set>

#include "data/atomic_file.h"
#include "nn/checkpoint.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

const char* const kFormat = "checkpoint";

const std::string& scratch_path() {
  static const std::string path = [] {
    const char* dir = std::getenv("TEST_TMPDIR");
    if (!dir) dir = std::getenv("TMPDIR");
    return std::string(dir ? dir : "/tmp") + "/kiln-fuzz-" + std::to_string(getpid()) + ".ckpt";
  }();
  return path;
}

}  // namespace

int kiln_fuzz_checkpoint(const uint8_t* data, size_t size) {
  using namespace kiln;
  const std::string source = "fuzz-input.ckpt";
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  nn::NamedTensors entries;
  if (!fuzz::accepts(kFormat, source, [&] { entries = nn::parse_checkpoint(bytes, source); })) return 0;

  uint64_t total = 0;
  std::set<std::string> names;
  for (const auto& [name, t] : entries) {
    fuzz::check_tensor(kFormat, t);
    if (name.empty() || name.find('\0') != std::string::npos || !names.insert(name).second) {
      fuzz::bug(kFormat, "accepted an empty, NUL-holding or duplicate name '" + fuzz::describe_bytes(name) + "'");
    }
    if (t.ndim() > 8) fuzz::bug(kFormat, "accepted rank " + std::to_string(t.ndim()) + " (the format caps it at 8)");
    total += t.nbytes();
  }
  if (total > size) fuzz::bug(kFormat, "entries hold " + std::to_string(total) + " bytes, the file only " + std::to_string(size));

  // Version 1 has exactly one encoding for a list of entries, so writing the parsed entries back
  // must give the input byte for byte, and parsing that must give the same entries.
  const std::string& path = scratch_path();
  std::string written;
  nn::NamedTensors again;
  try {
    nn::write_checkpoint(path, entries);
    written = data::read_file(path);
    again = nn::parse_checkpoint(written, path);
  } catch (const std::exception& e) {
    std::remove(path.c_str());
    fuzz::bug(kFormat, std::string("re-serialising accepted entries failed: ") + e.what());
    return 1;
  }
  std::remove(path.c_str());
  if (written != bytes) {
    size_t at = 0;
    while (at < written.size() && at < bytes.size() && written[at] == bytes[at]) ++at;
    fuzz::bug(kFormat, "write_checkpoint(parse_checkpoint(x)) differs from x at byte " + std::to_string(at) + " (" +
                           std::to_string(written.size()) + " vs " + std::to_string(size) + " bytes)");
  }
  bool same = again.size() == entries.size();
  for (size_t i = 0; same && i < again.size(); ++i) {
    same = again[i].first == entries[i].first && fuzz::same_tensor(again[i].second, entries[i].second);
  }
  if (!same) fuzz::bug(kFormat, "entries change across a write/parse round trip");
  return 1;
}
