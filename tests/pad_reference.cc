#include "tests/pad_reference.h"

namespace kiln::ref {

RefTensor pad(const RefTensor& x, const PadAttrs& a) {
  const size_t r = x.shape.size();
  Shape out(r);
  for (size_t d = 0; d < r; ++d) out[d] = x.shape[d] + a.before[d] + a.after[d];
  RefTensor y{out, std::vector<double>(static_cast<size_t>(numel(out)))};
  for (int64_t flat = 0; flat < y.size(); ++flat) {
    int64_t rest = flat, src = 0, stride = 1;
    bool fill = false;
    for (int d = static_cast<int>(r) - 1; d >= 0; --d) {
      int64_t i = rest % out[d] - a.before[d];
      rest /= out[d];
      const int64_t n = x.shape[d];
      if (i < 0 || i >= n) {
        if (a.mode == PadMode::constant) {
          fill = true;
        } else if (a.mode == PadMode::edge) {
          i = i < 0 ? 0 : n - 1;
        } else if (n == 1) {
          i = 0;
        } else {
          while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
        }
      }
      src += i * stride;
      stride *= n;
    }
    y.data[flat] = fill ? a.value : x.data[src];
  }
  return y;
}

}  // namespace kiln::ref
