#pragma once
// Ready-made architectures, as keras.applications: the models the examples, integration tests
// and benchmarks share, one file per family.
#include "nn/applications/char_transformer_lm.h"
#include "nn/applications/fashion_mnist.h"
#include "nn/applications/mobilenet_v2.h"
#include "nn/applications/mobilenet_v3.h"
#include "nn/applications/resnet.h"
#include "nn/applications/vision_transformer.h"
