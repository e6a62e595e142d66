#pragma once
#include <string>

namespace kiln::data {

// Writes bytes to path through a temporary file in the same directory, fsyncs it and renames
// it over path, so readers see the old file or the complete new one, never a partial write.
void write_file_atomically(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);

}  // namespace kiln::data
