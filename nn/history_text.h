#pragma once
// History as text, exactly: one line per key, values printed with 17 significant digits (so
// they read back bit for bit, nan and inf included). Used to hand rank 0's History to fit's
// launcher and to keep it in a BackupAndRestore backup.
//   epochs 0 1 2
//   loss 0.69314718055994529 0.5 0.25
#include <string>

#include "nn/model.h"

namespace kiln::nn {

std::string history_to_text(const History& history);
// Throws std::runtime_error naming `source` and the line for text history_to_text cannot have
// written (a value that is not a number, a key with a different count of values than epochs).
History history_from_text(const std::string& text, const std::string& source);

}  // namespace kiln::nn
