#pragma once
// Every Kiln op in one include.
#include "tensor/ops/binary.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/eltwise.h"
#include "tensor/ops/fused.h"
#include "tensor/ops/index.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/norm.h"
#include "tensor/ops/pool.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/shape_ops.h"
#include "tensor/ops/softmax.h"
