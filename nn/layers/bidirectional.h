#pragma once
#include <optional>
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

// keras.layers.Bidirectional: runs a recurrent layer (LSTM, GRU, SimpleRNN) forward and a copy
// of it backwards (go_backwards flipped), flips the backward sequence back to input order when
// returning sequences, and merges the two: "concat" (last axis), "sum", "mul" or "ave".
// merge_mode None (two outputs) is refused: a Kiln layer has one output. As Keras, the two
// layers are rebuilt from `layer`'s config under the names forward_<name> and
// backward_<name>, or backward_layer is used as given (its go_backwards must differ); both
// output zeros at masked steps when they return sequences. Weights: the forward layer's,
// then the backward layer's. The mask goes to both and passes on with return_sequences.
Layer Bidirectional(const Layer& layer, const std::string& merge_mode = "concat",
                    const std::optional<Layer>& backward_layer = std::nullopt, const std::string& name = "");

}  // namespace kiln::nn
