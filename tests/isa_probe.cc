// Caps oneDNN's ISA, runs one bf16 and one f32 matmul and prints the implementations chosen:
//   isa_probe <cap>   ->   "effective=<isa> bf16=<impl> f32=<impl>"
// A separate process per cap, because oneDNN accepts a cap only before its first kernel.
#include <cstdio>
#include <exception>

#include "tensor/onednn/isa.h"
#include "tensor/ops/ops.h"
#include "tensor/random.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: isa_probe <avx2|avx512_core|avx512_core_bf16|amx|all>\n");
    return 2;
  }
  try {
    kiln::cpu::set_max_isa(kiln::cpu::isa_from_name(argv[1]));
    kiln::Tensor a = kiln::random_uniform({128, 128}, -1, 1, 1), b = kiln::random_uniform({128, 128}, -1, 1, 2);
    std::string bf16_impl;
    try {
      kiln::matmul(kiln::cast(a, kiln::DType::bf16), kiln::cast(b, kiln::DType::bf16));
      bf16_impl = kiln::cpu::last_impl("matmul");
    } catch (const std::runtime_error&) {
      bf16_impl = "unsupported";  // oneDNN 2.6 has no bf16 matmul below AVX-512
    }
    kiln::matmul(a, b);
    std::string f32_impl = kiln::cpu::last_impl("matmul");
    std::printf("effective=%s bf16=%s f32=%s\n", kiln::cpu::isa_name(kiln::cpu::effective_isa()), bf16_impl.c_str(),
                f32_impl.c_str());
    // A second cap after kernels exist must be refused with a clear error.
    try {
      kiln::cpu::set_max_isa(kiln::cpu::Isa::avx2);
      std::printf("late_cap=accepted\n");
    } catch (const std::runtime_error&) {
      std::printf("late_cap=refused\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "isa_probe: %s\n", e.what());
    return 1;
  }
  return 0;
}
