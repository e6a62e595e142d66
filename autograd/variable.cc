#include "autograd/variable.h"

#include <stdexcept>

#include "tensor/ops/binary.h"
#include "tensor/ops/cast.h"
#include "tensor/ops/shape_ops.h"

namespace kiln {

Variable::Variable(const Tensor& initial_value, std::string name, bool trainable) {
  if (!initial_value.defined()) throw std::invalid_argument("Variable '" + name + "': undefined initial value");
  state_ = std::make_shared<State>();
  state_->value = initial_value.clone_detached();
  state_->value.set_trainable_variable(trainable && is_floating(initial_value.dtype()));
  state_->name = std::move(name);
  state_->trainable = trainable;
}

const Tensor& Variable::value() const {
  if (!state_) throw std::logic_error("use of an undefined Variable");
  return state_->value;
}

const std::string& Variable::name() const {
  if (!state_) throw std::logic_error("use of an undefined Variable");
  return state_->name;
}

bool Variable::trainable() const { return state_ && state_->trainable; }

void Variable::assign(const Tensor& new_value) const {
  const Tensor& v = value();
  if (new_value.shape() != v.shape()) {
    throw std::invalid_argument("Variable '" + name() + "' of shape " + shape_str(v.shape()) +
                                " cannot be assigned a value of shape " + shape_str(new_value.shape()));
  }
  v.copy_from(cast(stop_gradient(new_value), v.dtype()));
}

void Variable::assign_add(const Tensor& delta) const {
  assign(stop_gradient(value()) + cast(stop_gradient(delta), value().dtype()));
}

void Variable::assign_sub(const Tensor& delta) const {
  assign(stop_gradient(value()) - cast(stop_gradient(delta), value().dtype()));
}

}  // namespace kiln
