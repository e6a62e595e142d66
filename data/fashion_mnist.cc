#include "data/fashion_mnist.h"

#include <cstdlib>
#include <stdexcept>

#include "data/idx.h"

namespace kiln::data {
namespace {

Tensor images(const std::string& path) {
  Tensor t = read_idx(path);
  if (t.dtype() != DType::u8 || t.ndim() != 3) {
    throw std::runtime_error("load_fashion_mnist: '" + path + "' should hold u8 images [N, 28, 28], got " + t.describe());
  }
  return t.alias({t.shape()[0], t.shape()[1], t.shape()[2], 1}, contiguous_strides({t.shape()[0], t.shape()[1], t.shape()[2], 1}), 0);
}

Tensor labels(const std::string& path, int64_t expected) {
  Tensor t = read_idx(path);
  if (t.dtype() != DType::u8 || t.ndim() != 1 || t.shape()[0] != expected) {
    throw std::runtime_error("load_fashion_mnist: '" + path + "' should hold " + std::to_string(expected) +
                             " u8 labels, got " + t.describe());
  }
  std::vector<int32_t> v = t.to_int32();
  for (int32_t l : v) {
    if (l < 0 || l > 9) throw std::runtime_error("load_fashion_mnist: '" + path + "' has label " + std::to_string(l));
  }
  return Tensor::from_int32(v, {expected});
}

}  // namespace

std::string default_fashion_mnist_dir() {
  if (const char* env = std::getenv("KILN_DATA_DIR")) return std::string(env) + "/fashion-mnist";
  return "/usr/share/datasets/fashion-mnist";
}

FashionMnist load_fashion_mnist(const std::string& dir_in) {
  std::string dir = dir_in.empty() ? default_fashion_mnist_dir() : dir_in;
  FashionMnist d;
  d.x_train = images(dir + "/train-images-idx3-ubyte.gz");
  d.y_train = labels(dir + "/train-labels-idx1-ubyte.gz", d.x_train.shape()[0]);
  d.x_test = images(dir + "/t10k-images-idx3-ubyte.gz");
  d.y_test = labels(dir + "/t10k-labels-idx1-ubyte.gz", d.x_test.shape()[0]);
  return d;
}

}  // namespace kiln::data
