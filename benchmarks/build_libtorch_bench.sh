#!/usr/bin/env bash
# Builds the LibTorch C++ twin of kiln_train_bench (benchmarks/libtorch_train_bench.cc, which
# includes benchmarks/libtorch_mobilenet_v3.h from the workspace root) with g++
# against the torch wheel in .venv-peers (bash scripts/setup --peers): its headers, libtorch_cpu.so
# and libc10.so, with the wheel's C++ ABI. Not a Bazel target, so CI never needs the wheel;
# //benchmarks:compare runs this when the binary is missing or older than its source.
#   benchmarks/build_libtorch_bench.sh [OUTPUT]   (default: out/libtorch_train_bench)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/out/libtorch_train_bench}"
py="$repo/.venv-peers/bin/python"
if [[ ! -x "$py" ]]; then
  echo "build_libtorch_bench: $py missing: run \`bash scripts/setup --peers\` (it installs torch==2.8.0 there)" >&2
  exit 1
fi
read -r torch_dir abi < <("$py" -c 'import os, torch; print(os.path.dirname(torch.__file__), int(torch._C._GLIBCXX_USE_CXX11_ABI))' 2>/dev/null)
mkdir -p "$(dirname "$out")"
g++ -std=c++17 -O2 -DNDEBUG -D_GLIBCXX_USE_CXX11_ABI="$abi" \
  -I "$repo" -isystem "$torch_dir/include" -isystem "$torch_dir/include/torch/csrc/api/include" \
  "$repo/benchmarks/libtorch_train_bench.cc" -o "$out.tmp" \
  -L"$torch_dir/lib" -Wl,--no-as-needed -ltorch_cpu -lc10 -Wl,--as-needed -Wl,-rpath,"$torch_dir/lib"
mv "$out.tmp" "$out"
echo "built $out against $torch_dir (C++11 ABI $abi)"
