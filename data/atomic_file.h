#pragma once
#include "base/files.h"

namespace kiln::data {

// Kept under data:: for code written before files moved to base/.
using base::read_file;
using base::write_file_atomically;

}  // namespace kiln::data
