#include "tests/json_tensor.h"

#include <functional>
#include <vector>

namespace kiln::testing {

Tensor tensor_of_json(const base::Json& j) {
  Shape shape;
  for (const base::Json* level = &j; level->is_list(); level = &(*level)[0]) {
    shape.push_back(static_cast<int64_t>(level->size()));
    if (level->size() == 0) break;
  }
  std::vector<float> values;
  std::function<void(const base::Json&)> walk = [&](const base::Json& x) {
    if (x.is_list()) {
      for (const base::Json& e : x.items()) walk(e);
    } else {
      values.push_back(static_cast<float>(x.as_number()));
    }
  };
  walk(j);
  return Tensor::from_vector(values, shape);
}

}  // namespace kiln::testing
