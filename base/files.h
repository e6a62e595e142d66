#pragma once
#include <string>

namespace kiln::base {

// Writes bytes to path through a temporary file in the same directory, fsyncs it and renames
// it over path, so readers see the old file or the complete new one, never a partial write.
void write_file_atomically(const std::string& path, const std::string& bytes);
// The whole file; throws std::runtime_error naming the path when it cannot be opened.
std::string read_file(const std::string& path);
// The file's first line without its newline, or "" when it cannot be read (sysfs and cgroup
// files, which may be absent).
std::string read_first_line(const std::string& path);

}  // namespace kiln::base
