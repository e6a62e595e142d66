#pragma once
#include <optional>
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

// keras.layers.Bidirectional: runs a recurrent layer (LSTM, GRU, SimpleRNN) forward and a copy
// of it backwards (go_backwards flipped), flips the backward sequence back to input order when
// returning sequences, and merges the two: "concat" (last axis), "sum", "mul" or "ave";
// merge_mode std::nullopt (Keras's None) returns both, [forward, backward]. With the wrapped
// layer's return_state the forward layer's final states, then the backward layer's, follow
// (call it with Layer::outputs()); Keras's initial_state is the same list as extra inputs
// after the sequence (the forward states, then the backward ones). As Keras, the two
// layers are rebuilt from `layer`'s config under the names forward_<name> and
// backward_<name>, or backward_layer is used as given (its go_backwards must differ); both
// output zeros at masked steps when they return sequences. Weights: the forward layer's,
// then the backward layer's. The mask goes to both and passes on with return_sequences.
Layer Bidirectional(const Layer& layer, const std::optional<std::string>& merge_mode = "concat",
                    const std::optional<Layer>& backward_layer = std::nullopt, const std::string& name = "");

}  // namespace kiln::nn
