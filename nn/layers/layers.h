#pragma once
// Every built-in Keras-style layer.
#include "nn/layers/activation.h"
#include "nn/layers/basic.h"
#include "nn/layers/batch_norm.h"
#include "nn/layers/conv2d.h"
#include "nn/layers/conv2d_transpose.h"
#include "nn/layers/dense.h"
#include "nn/layers/embedding.h"
#include "nn/layers/layer_normalization.h"
#include "nn/layers/masking.h"
#include "nn/layers/merge.h"
#include "nn/layers/multi_head_attention.h"
#include "nn/layers/pooling.h"
#include "nn/layers/pooling1d.h"
#include "nn/layers/relu.h"
#include "nn/layers/reshape.h"
#include "nn/layers/resizing.h"
#include "nn/layers/zero_padding.h"
// Convolution family (issue 21).
#include "nn/layers/conv1d.h"
#include "nn/layers/depthwise_conv2d.h"
#include "nn/layers/separable_conv2d.h"
// Recurrent family (issue 22).
#include "nn/layers/bidirectional.h"
#include "nn/layers/recurrent.h"
// Vision transformer pieces (issue 22).
#include "nn/layers/position_embedding.h"
