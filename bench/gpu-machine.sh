#!/usr/bin/env bash
# Run on the GPU machine (no cargo there): records facts and reports, and times the profiles.
# Usage: bench/gpu-machine.sh BINARY OUTDIR. Everything it writes goes to OUTDIR, which the
# developer copies into fixtures/ (facts) and docs/benchmarks.md (timings).
set -uo pipefail
B=$1
OUT=$2
mkdir -p "$OUT"
{
  echo "## $(date -u +%FT%TZ) $(uname -r) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1)"
  "$B" --version
  echo "### check --profile full -v"
  "$B" check --profile full -v --color never; echo "exit code: $?"
  echo "### check --profile quick"
  "$B" check --profile quick --color never; echo "exit code: $?"
  echo "### CUDA_VISIBLE_DEVICES= check"
  CUDA_VISIBLE_DEVICES= "$B" check --color never; echo "exit code: $?"
  echo "### CUDA_VISIBLE_DEVICES=1 check (no GPU 1 on this machine)"
  CUDA_VISIBLE_DEVICES=1 "$B" check --color never; echo "exit code: $?"
} > "$OUT/reports.txt" 2>&1

"$B" facts > "$OUT/h100.json"
"$B" facts --profile full > "$OUT/h100-full.json"
"$B" facts --profile quick > "$OUT/h100-quick.json"
CUDA_VISIBLE_DEVICES= "$B" facts > "$OUT/h100-cuda-visible-empty.json"
UUID=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | head -1)
CUDA_VISIBLE_DEVICES="${UUID:0:12}" "$B" facts > "$OUT/h100-cuda-visible-uuid.json"
"$B" check --profile full --format json > "$OUT/h100-check-full.json"

python3 - "$B" > "$OUT/timings.txt" <<'PY'
import subprocess, sys, time, statistics
b = sys.argv[1]
def runs(args, n):
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([b] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        xs.append((time.perf_counter() - t) * 1000)
    return xs
for args, n in ((["--version"], 30), (["check", "--profile", "quick"], 30),
                (["check", "--profile", "standard"], 15), (["check", "--profile", "full"], 10)):
    runs(args, 2)  # warm-up
    xs = runs(args, n)
    print(f"{' '.join(args):32s} n={n:3d} median {statistics.median(xs):8.2f} ms  min {min(xs):8.2f}  max {max(xs):8.2f}")
PY
echo done
