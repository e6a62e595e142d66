#include "runtime_export/passes/optimize_for_inference.h"

#include "graph/trace.h"
#include "runtime_export/passes/fold_batchnorm.h"
#include "runtime_export/passes/fold_constants.h"
#include "runtime_export/passes/fold_input_scale.h"
#include "runtime_export/passes/fuse_post_ops.h"
#include "runtime_export/passes/remove_identities.h"

namespace kiln::runtime_export::passes {

graph::Graph optimize_for_inference(const graph::Graph& g) {
  graph::Graph out = graph::eliminate_dead_code(g);
  out = remove_identities(out);
  out = fold_constants(out);
  out = fold_batchnorm(out);
  out = fuse_post_ops(out);
  out = fold_input_scale(out);
  out = graph::eliminate_dead_code(out);
  out.validate();
  return out;
}

}  // namespace kiln::runtime_export::passes
