#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tensor/tensor.h"

// One entry point per loader. Each returns 1 when the loader accepted the input and 0 when it
// rejected it with a std::exception. Everything else (a non-std exception, std::bad_alloc, an
// allocation failure, a broken invariant or a disagreement with the reference checks) goes to
// kiln::fuzz::bug(). They are plain functions, not LLVMFuzzerTestOneInput, so that all four link
// into one GoogleTest binary; the *_libfuzzer.cc files wrap one each for libFuzzer.
int kiln_fuzz_checkpoint(const uint8_t* data, size_t size);
int kiln_fuzz_npy(const uint8_t* data, size_t size);
int kiln_fuzz_idx(const uint8_t* data, size_t size);
int kiln_fuzz_csv(const uint8_t* data, size_t size);

namespace kiln::fuzz {

// Without a handler bug() prints and aborts, which is what libFuzzer needs to keep the input.
// The mutation driver installs one that records a test failure and carries on.
using BugHandler = void (*)(const char* format, const std::string& what);
void set_bug_handler(BugHandler handler);
void bug(const char* format, const std::string& what);

// Runs parse(); true when it returned. A std::exception is a rejection, but its message must name
// `source` (the loaders promise errors that say which file). std::bad_alloc, kiln::AllocationError
// and std::length_error are bugs: inputs here are a few KiB, so a failed allocation means a size
// from the file reached an allocator before being bounded by the bytes present.
template <typename F>
bool accepts(const char* format, const std::string& source, F&& parse);

// Structural invariants every loaded tensor must meet; also reads every byte so that ASan sees
// the whole buffer.
void check_tensor(const char* format, const Tensor& t);
bool same_tensor(const Tensor& a, const Tensor& b);
std::string describe_bytes(std::string_view bytes, size_t max = 48);

void rejection_message(const char* format, const std::string& source, const char* what);

template <typename F>
bool accepts(const char* format, const std::string& source, F&& parse) {
  try {
    parse();
    return true;
  } catch (const std::bad_alloc& e) {
    bug(format, std::string("std::bad_alloc escaped the loader: ") + e.what());
  } catch (const AllocationError& e) {
    bug(format, std::string("allocation failed on a small input (a size from the file was not bounded by "
                            "the bytes present): ") + e.what());
  } catch (const std::length_error& e) {
    bug(format, std::string("std::length_error (an unbounded size reached a container): ") + e.what());
  } catch (const std::exception& e) {
    rejection_message(format, source, e.what());
  } catch (...) {
    bug(format, "an exception not derived from std::exception escaped the loader");
  }
  return false;
}

}  // namespace kiln::fuzz
