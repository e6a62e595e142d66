#pragma once
#include "nn/layer_graph.h"

namespace kiln::nn {

// Graph pass: folds Activation("relu") into the layer that produces its input when that layer
// fuses_relu() (BatchNormalization, Conv2D and Add run normalization, convolution or the sum
// and the ReLU in one oneDNN primitive) and nothing else reads the producer's own output. The
// producer then runs call_with_relu() and the Activation node forwards its input. Results are
// those of the unfused graph (ReLU is exact), in fewer passes over memory.
FusedPlan fold_relu(const LayerGraph& graph);

}  // namespace kiln::nn
