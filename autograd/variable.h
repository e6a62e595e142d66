#pragma once
#include <memory>
#include <string>

#include "tensor/tensor.h"

namespace kiln {

// Trainable (or not) state that persists across steps, as tf.Variable. Its value tensor
// keeps one identity for the variable's lifetime; assignments write in place, so tapes,
// optimizers and checkpoints all refer to the same storage.
class Variable {
 public:
  Variable() = default;
  explicit Variable(const Tensor& initial_value, std::string name = "", bool trainable = true);

  bool defined() const { return state_ != nullptr; }
  const Tensor& value() const;
  operator const Tensor&() const { return value(); }
  const std::string& name() const;
  bool trainable() const;
  const Shape& shape() const { return value().shape(); }
  DType dtype() const { return value().dtype(); }

  // In-place updates; the new value must have the variable's shape (any float dtype).
  void assign(const Tensor& new_value) const;
  void assign_add(const Tensor& delta) const;
  void assign_sub(const Tensor& delta) const;

  bool same_as(const Variable& other) const { return state_ == other.state_; }

 private:
  struct State {
    Tensor value;
    std::string name;
    bool trainable;
  };
  std::shared_ptr<State> state_;
};

}  // namespace kiln
