#pragma once
#include <cstdint>
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

// A learned position embedding added to a sequence of tokens, as a ViT adds one to its patch
// tokens: [batch, steps, features] -> the same shape, tokens + embeddings[:steps].
// The weight `embeddings` is [sequence_length, features] (keras_hub.layers.PositionEmbedding's
// name, layout and default initializer). keras_hub's layer returns the embeddings broadcast to
// the input's shape for the caller to add; this one adds them itself, so a traced graph holds
// one broadcasting add of a constant and keeps its batch dimension free (a broadcast to the
// batch would fix it to the sample's). Inputs may be shorter than sequence_length (the first
// rows are used), as keras_hub allows. Passes masks on.
Layer AddPositionEmbedding(int64_t sequence_length, const std::string& initializer = "glorot_uniform",
                           const std::string& name = "");

}  // namespace kiln::nn
