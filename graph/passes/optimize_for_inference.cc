#include "graph/passes/optimize_for_inference.h"

#include "graph/passes/dead_code.h"
#include "graph/passes/fold_batchnorm.h"
#include "graph/passes/fold_constants.h"
#include "graph/passes/fold_input_scale.h"
#include "graph/passes/fold_zero_padding.h"
#include "graph/passes/fuse_post_ops.h"
#include "graph/passes/graph_edit.h"
#include "graph/passes/remove_identities.h"

namespace kiln::graph::passes {

graph::Graph optimize_for_inference(const graph::Graph& g) {
  graph::Graph out = graph::eliminate_dead_code(g);
  out = remove_identities(out);
  out = fold_constants(out);
  out = fold_batchnorm(out);
  out = fuse_post_ops(out);
  out = fold_zero_padding(out);  // after fusion: a ReLU epilogue is what lets max pooling fold
  out = fold_input_scale(out);
  return validated_result("optimize_for_inference", graph::eliminate_dead_code(out));
}

}  // namespace kiln::graph::passes
