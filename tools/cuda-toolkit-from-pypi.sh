#!/usr/bin/env bash
# A CUDA 13.0 toolkit from PyPI wheels, for `make build-cuda` (docs/reference-engine.md) on a
# machine without NVIDIA's installer: nvcc and its helpers (cicc, ptxas, fatbinary, the crt
# headers), cudart, cuBLAS and CCCL, at the versions of the GPU test machine's /usr/local/cuda
# (nvcc 13.0.88, cudart 13.0.96, cuBLAS 13.1.0.3).
#
# Usage: tools/cuda-toolkit-from-pypi.sh [PREFIX]   (default /opt/cuda-pip)
#   PREFIX/       a venv holding the wheels (python3 -m venv; pip from PyPI)
#   PREFIX/toolkit  a toolkit root CMake's FindCUDAToolkit and enable_language(CUDA) accept:
#                 bin/nvcc, include/, lib/ and lib64 -> lib with unversioned .so links.
# The wheels' nvidia/cu13 folder is already laid out like a toolkit (nvcc.profile finds
# nvvm/bin/cicc and include/ relative to itself); the toolkit is a hard-linked copy of it, so
# the links added there do not touch the venv. No libcuda stub: build with GGML_CUDA_NO_VMM.
set -euo pipefail
PREFIX=${1:-/opt/cuda-pip}
PY=${PYTHON:-python3}

[ -x "$PREFIX/bin/pip" ] || "$PY" -m venv "$PREFIX"
"$PREFIX/bin/pip" install --quiet --disable-pip-version-check \
  nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
  nvidia-cuda-runtime==13.0.96 nvidia-cublas==13.1.0.3 nvidia-cuda-cccl==13.0.85

SITE=$("$PREFIX/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
WHEELS=$SITE/nvidia/cu13
for f in bin/nvcc bin/ptxas bin/fatbinary nvvm/bin/cicc include/crt/host_config.h \
         include/cuda_runtime.h include/cublas_v2.h include/cccl/cub/cub.cuh \
         lib/libcudart.so.13 lib/libcublas.so.13 lib/libcublasLt.so.13; do
  [ -e "$WHEELS/$f" ] || { echo "cuda-toolkit-from-pypi: $WHEELS/$f is missing" >&2; exit 1; }
done

TK=$PREFIX/toolkit
rm -rf "$TK.new"
cp -al "$WHEELS" "$TK.new"
ln -s lib "$TK.new/lib64"
( cd "$TK.new/lib" && for f in lib*.so.*; do ln -sf "$f" "${f%%.so.*}.so"; done )
rm -rf "$TK"
mv "$TK.new" "$TK"

"$TK/bin/nvcc" --version | tail -2
echo "CUDA toolkit root: $TK  (make build-cuda CUDA_ROOT=$TK)"
