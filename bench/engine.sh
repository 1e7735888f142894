#!/usr/bin/env bash
# Timing of the reference engine's child (docs/reference-engine.md) on the tiny placement model:
# n_gpu_layers [-1, 0], 16 prompt tokens and 8 generated, one process start each, by hyperfine.
# Usage: bench/engine.sh [BINARY] [MODEL.gguf]. Without a model it takes the placement model
# the doctor caches in models/ of its cache folder (~/.cache/gpu-doctor/models by default, written by `check --profile full`).
# Prints one Markdown table row like bench/run.sh; hyperfine's JSON goes to target/bench/.
set -euo pipefail
BIN=$(realpath "${1:-target/release/gpu-doctor}")
MODEL=${2:-}
OUT=$(pwd)/target/bench
mkdir -p "$OUT"

if [ -z "$MODEL" ]; then
  CACHE=${GPU_DOCTOR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gpu-doctor}/models
  MODEL=$(ls "$CACHE"/llama-2L-256e-*.gguf 2>/dev/null | head -1 || true)
  if [ -z "$MODEL" ]; then
    "$BIN" check --profile full >/dev/null 2>&1 || true
    MODEL=$(ls "$CACHE"/llama-2L-256e-*.gguf 2>/dev/null | head -1 || true)
  fi
  [ -n "$MODEL" ] || { echo "bench/engine.sh: no placement model in $CACHE; pass one" >&2; exit 2; }
fi
MODEL=$(realpath "$MODEL")

export GPU_DOCTOR_ENGINE_REQUEST="{\"model\":\"$MODEL\",\"n_gpu_layers\":[-1,0],\"n_ctx\":2048,\"n_batch\":512,\"prompt_tokens\":16,\"gen_tokens\":8}"
# The request must work before it is timed: a failing child would be timed as fast.
"$BIN" __probe llama-engine | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert all(run["loaded"] and run["error"] is None for run in r["runs"]), r["runs"]'

hyperfine -N --warmup 3 --runs "${RUNS:-30}" --export-json "$OUT/engine.json" \
  "$BIN __probe llama-engine" >/dev/null 2>&1
python3 - "$OUT/engine.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
ms = lambda s: f"{s * 1000:.1f}"
print(f"| reference-engine | `__probe llama-engine` ([-1,0], 16+8 tokens) | {ms(r['median'])} | {ms(r['mean'])} ± {ms(r['stddev'] or 0)} | {ms(r['min'])} | {ms(r['max'])} |")
PY
