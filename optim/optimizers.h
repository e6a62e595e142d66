#pragma once
// All optimizers. Each follows Keras 3's update rules by default; `.pytorch_style = true`
// selects the torch.optim formulas instead (see each header).
#include "optim/adam.h"
#include "optim/optimizer.h"
#include "optim/rmsprop.h"
#include "optim/sgd.h"
