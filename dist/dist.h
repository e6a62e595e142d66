#pragma once
// Multi-process data-parallel training on Open MPI (see docs/distributed.md).
#include "dist/collectives.h"
#include "dist/distributed_tape.h"
#include "dist/error.h"
#include "dist/gradient_reducer.h"
#include "dist/launch.h"
#include "dist/mpi_strategy.h"
#include "dist/shard.h"
#include "dist/watchdog.h"
#include "dist/world.h"
