// Element-wise ops and fused epilogues as ONNX nodes (GELU written out: no ONNX op before
// opset 20).
#include <cmath>

#include "runtime_export/onnx/exporter.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/pool.h"

namespace kiln::runtime_export::onnx_io {

void Exporter::write_eltwise(EltwiseKind kind, float alpha, float beta, const std::string& x, const std::string& y) {
  switch (kind) {
    case EltwiseKind::relu:
      if (alpha == 0.f) {
        emit("Relu", {x}, {y});
      } else {
        set_attr(emit("LeakyRelu", {x}, {y}), "alpha", alpha);
      }
      return;
    case EltwiseKind::gelu_erf: {
      // x * 0.5 * (1 + erf(x / sqrt(2))), the order ONNX's own Gelu function uses.
      std::string a = tmp("gelu_div"), b = tmp("gelu_erf"), c = tmp("gelu_add"), d = tmp("gelu_mul");
      emit("Div", {x, scalar(static_cast<float>(M_SQRT2))}, {a});
      emit("Erf", {a}, {b});
      emit("Add", {b, scalar(1.f)}, {c});
      emit("Mul", {x, c}, {d});
      emit("Mul", {d, scalar(0.5f)}, {y});
      return;
    }
    case EltwiseKind::gelu_tanh: {
      // 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))
      std::string x2 = tmp("gelu_x2"), x3 = tmp("gelu_x3"), cx3 = tmp("gelu_cx3"), s = tmp("gelu_sum"),
                  in = tmp("gelu_in"), t = tmp("gelu_tanh"), t1 = tmp("gelu_t1"), hx = tmp("gelu_hx");
      emit("Mul", {x, x}, {x2});
      emit("Mul", {x2, x}, {x3});
      emit("Mul", {x3, scalar(0.044715f)}, {cx3});
      emit("Add", {x, cx3}, {s});
      emit("Mul", {s, scalar(static_cast<float>(std::sqrt(2.0 / M_PI)))}, {in});
      emit("Tanh", {in}, {t});
      emit("Add", {t, scalar(1.f)}, {t1});
      emit("Mul", {x, scalar(0.5f)}, {hx});
      emit("Mul", {hx, t1}, {y});
      return;
    }
    case EltwiseKind::sigmoid: emit("Sigmoid", {x}, {y}); return;
    case EltwiseKind::tanh: emit("Tanh", {x}, {y}); return;
    case EltwiseKind::exp: emit("Exp", {x}, {y}); return;
    case EltwiseKind::log: emit("Log", {x}, {y}); return;
    case EltwiseKind::sqrt: emit("Sqrt", {x}, {y}); return;
    case EltwiseKind::square: emit("Mul", {x, x}, {y}); return;
    case EltwiseKind::abs: emit("Abs", {x}, {y}); return;
    case EltwiseKind::elu: set_attr(emit("Elu", {x}, {y}), "alpha", alpha); return;
    case EltwiseKind::softplus: emit("Softplus", {x}, {y}); return;
    case EltwiseKind::swish: {
      std::string ax = tmp("swish_ax"), s = tmp("swish_sigmoid");
      emit("Mul", {x, scalar(alpha)}, {ax});
      emit("Sigmoid", {ax}, {s});
      emit("Mul", {x, s}, {y});
      return;
    }
    case EltwiseKind::affine: {
      std::string ax = tmp("affine_mul");
      emit("Mul", {x, scalar(alpha)}, {ax});
      emit("Add", {ax, scalar(beta)}, {y});
      return;
    }
    case EltwiseKind::clip: emit("Clip", {x, scalar(alpha), scalar(beta)}, {y}); return;
    case EltwiseKind::pow: {
      std::string p = tmp("pow");
      emit("Pow", {x, scalar(beta)}, {p});
      emit("Mul", {p, scalar(alpha)}, {y});
      return;
    }
    case EltwiseKind::relu6: emit("Clip", {x, scalar(0.f), scalar(6.f)}, {y}); return;
    case EltwiseKind::hard_sigmoid: {
      auto* node = emit("HardSigmoid", {x}, {y});
      set_attr(node, "alpha", 1.f / 6.f);
      set_attr(node, "beta", 0.5f);
      return;
    }
    case EltwiseKind::hard_swish: emit("HardSwish", {x}, {y}); return;  // opset 14
    case EltwiseKind::mish: {
      // Mish is an ONNX op only from opset 18: its definition, x * tanh(softplus(x)).
      std::string sp = tmp("mish_softplus"), t = tmp("mish_tanh");
      emit("Softplus", {x}, {sp});
      emit("Tanh", {sp}, {t});
      emit("Mul", {x, t}, {y});
      return;
    }
  }
  fail("eltwise kind has no ONNX form");
}

void Exporter::write_epilogue(Epilogue e, const std::string& x, const std::string& y) {
  if (e == Epilogue::none) {
    emit("Identity", {x}, {y});
  } else {
    write_eltwise(epilogue_eltwise(e), 0.f, 0.f, x, y);
  }
}

}  // namespace kiln::runtime_export::onnx_io
