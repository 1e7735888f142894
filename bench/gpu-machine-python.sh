#!/usr/bin/env bash
# Run on the GPU machine: the Python side of the doctor against /opt/torch/.venv (torch
# 2.11.0+cu130) and a project venv holding a CPU-only llama-cpp-python built on the Debian 12
# development machine (the seed's silent fallback). Usage: bench/gpu-machine-python.sh DIR OUT,
# where DIR holds gpu-doctor and the llama_cpp_python and diskcache wheels.
set -uo pipefail
D=$(cd "$1" && pwd)
OUT=$2
TORCH=/opt/torch/.venv
P=/tmp/proj
rm -rf $P && mkdir -p $P
python3 -m venv --without-pip $P/.venv
SP=$(echo $P/.venv/lib/python3*/site-packages)
# numpy and jinja2 come from the torch venv; llama-cpp-python itself is the carried CPU build.
echo $TORCH/lib/python3.12/site-packages > $SP/torch-venv.pth
$TORCH/bin/python3 -m pip install -q --no-deps --no-index --target $SP $D/llama_cpp_python-*.whl $D/diskcache-*.whl 2>&1 | tail -2
cd $P
{
  echo "### cd $P && gpu-doctor check --profile standard -v   (PATH starts with $TORCH/bin)"
  "$D/gpu-doctor" check --profile standard -v --color never; echo "exit code: $?"
} > "$OUT/h100-python-report.txt" 2>&1
"$D/gpu-doctor" facts --profile standard > "$OUT/h100-python.json"
"$D/gpu-doctor" facts --profile quick > "$OUT/h100-python-quick.json"
{
  echo "# wall seconds, 5 runs each, on $(nvidia-smi --query-gpu=name --format=csv,noheader)"
  for i in 1 2 3 4 5; do /usr/bin/time -f "import torch: %e" $TORCH/bin/python3 -c "import torch"; done
  for i in 1 2 3 4 5; do /usr/bin/time -f "import torch + cuda.is_available: %e" $TORCH/bin/python3 -c "import torch; torch.cuda.is_available()"; done
  # What the live probe is asked to prove, written by hand: CUDA usable and a tensor on the GPU.
  for i in 1 2 3 4 5; do /usr/bin/time -f "import torch + is_available + tensor op: %e" $TORCH/bin/python3 -c "import torch; torch.cuda.is_available(); assert (torch.arange(4, device='cuda') * 2).sum().item() == 12"; done
  for i in 1 2 3 4 5; do /usr/bin/time -f ".venv: import torch + tensor op + import llama_cpp: %e" $P/.venv/bin/python3 -c "import torch; torch.cuda.is_available(); assert (torch.arange(4, device='cuda') * 2).sum().item() == 12; import llama_cpp; llama_cpp.llama_supports_gpu_offload()"; done
  E=/tmp/torch-only; mkdir -p $E; cd $E
  for i in 1 2 3 4 5; do /usr/bin/time -f "gpu-doctor check --profile standard (torch venv only): %e" "$D/gpu-doctor" check --profile standard >/dev/null; done
  cd $P
  for i in 1 2 3 4 5; do /usr/bin/time -f "gpu-doctor check --profile standard (torch venv + .venv): %e" "$D/gpu-doctor" check --profile standard >/dev/null; done
  for i in 1 2 3 4 5; do /usr/bin/time -f "gpu-doctor check --profile quick (torch venv + .venv): %e" "$D/gpu-doctor" check --profile quick >/dev/null; done
} > "$OUT/h100-python-timings.txt" 2>&1
cat "$OUT/h100-python-report.txt" "$OUT/h100-python-timings.txt"
