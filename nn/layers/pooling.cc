#include "nn/layers/pooling.h"

#include "tensor/ops/ops.h"

namespace kiln::nn {
namespace {

class Pool2DImpl : public LayerImpl {
 public:
  Pool2DImpl(bool is_max, std::array<int64_t, 2> pool, std::array<int64_t, 2> strides, const std::string& padding,
             const std::string& name)
      : LayerImpl(is_max ? "max_pooling2d" : "average_pooling2d", name), is_max_(is_max) {
    opt_.pool_size = pool;
    opt_.strides = strides;
    opt_.padding = padding_from_name(padding);
  }
  Tensor call(const std::vector<Tensor>& in, bool) override {
    expect_rank(in[0], 4, 4);
    return is_max_ ? max_pool2d(in[0], opt_) : avg_pool2d(in[0], opt_);
  }

 private:
  bool is_max_;
  Pool2dOptions opt_;
};

class GlobalAvgPoolImpl : public LayerImpl {
 public:
  GlobalAvgPoolImpl(bool keepdims, const std::string& name)
      : LayerImpl("global_average_pooling2d", name), keepdims_(keepdims) {}
  Tensor call(const std::vector<Tensor>& in, bool) override {
    expect_rank(in[0], 4, 4);
    return global_avg_pool2d(in[0], keepdims_);
  }

 private:
  bool keepdims_;
};

}  // namespace

Layer MaxPooling2D(std::array<int64_t, 2> pool, std::array<int64_t, 2> strides, const std::string& padding,
                   const std::string& name) {
  return Layer(std::make_shared<Pool2DImpl>(true, pool, strides, padding, name));
}

Layer AveragePooling2D(std::array<int64_t, 2> pool, std::array<int64_t, 2> strides, const std::string& padding,
                       const std::string& name) {
  return Layer(std::make_shared<Pool2DImpl>(false, pool, strides, padding, name));
}

Layer GlobalAveragePooling2D(bool keepdims, const std::string& name) {
  return Layer(std::make_shared<GlobalAvgPoolImpl>(keepdims, name));
}

}  // namespace kiln::nn
