#pragma once
#include <cstdint>
#include <string>

#include "nn/layer.h"

namespace kiln::nn {

struct EmbeddingOptions {
  std::string embeddings_initializer = "uniform";  // Keras's RandomUniform(-0.05, 0.05)
  // True: index 0 is padding; the output carries a mask (nn/mask.h) that is 0 where the
  // input is 0, for the layers after it (pooling, attention, RNNs).
  bool mask_zero = false;
};

// keras.layers.Embedding: integer indices [batch, ...] in [0, input_dim) -> rows of the
// weight `embeddings` [input_dim, output_dim], shaped [batch, ..., output_dim]. Float inputs
// are cast to s32 first, as Keras does; an index outside [0, input_dim) throws naming it.
// The gradient is a scatter-add into the rows the batch used (tensor/ops/gather.h), row-sparse
// (tensor/row_sparse.h): the optimizers apply it from those rows.
Layer Embedding(int64_t input_dim, int64_t output_dim, const EmbeddingOptions& options = {},
                const std::string& name = "");

}  // namespace kiln::nn
