#pragma once
// Every built-in Keras-style layer.
#include "nn/layers/activation.h"
#include "nn/layers/basic.h"
#include "nn/layers/batch_norm.h"
#include "nn/layers/conv2d.h"
#include "nn/layers/dense.h"
#include "nn/layers/multi_head_attention.h"
#include "nn/layers/pooling.h"
#include "nn/layers/zero_padding.h"
