#pragma once
// Every built-in Keras-style layer.
#include "nn/layers/activation.h"
#include "nn/layers/basic.h"
#include "nn/layers/batch_norm.h"
#include "nn/layers/conv2d.h"
#include "nn/layers/dense.h"
#include "nn/layers/embedding.h"
#include "nn/layers/layer_normalization.h"
#include "nn/layers/masking.h"
#include "nn/layers/pooling.h"
#include "nn/layers/pooling1d.h"
#include "nn/layers/zero_padding.h"
