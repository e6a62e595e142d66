#pragma once

// Kiln compiles for baseline x86-64, so its own loops (optimizer updates, NaN-keeping
// kernels, reductions) would run SSE2 code on any CPU. Loops marked KILN_ISA_CLONES are also
// built for x86-64-v4 (AVX-512) and x86-64-v3 (AVX2, FMA), and GCC's load-time resolver
// picks the best the CPU has, so one binary stays portable and still uses AVX-512 where it
// exists. Not under sanitizers: the resolvers (ifuncs) run before TSan is initialised.
//
// Eigen was not used for this: its packet width is fixed at compile time by -m flags, so a
// runtime choice would need one translation unit per ISA, and the linker may merge their
// shared inline Eigen templates across ISAs (an AVX-512 copy running on an AVX2 CPU).
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(KILN_SANITIZER)
#define KILN_ISA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KILN_ISA_CLONES
#endif
