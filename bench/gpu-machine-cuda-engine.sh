#!/usr/bin/env bash
# Run on the GPU machine (H100): the `cuda` build of the reference engine (docs/reference-engine.md),
# carried as .dev/cuda-engine/gpu-doctor-cuda.tar.xz (made by `make build-cuda` on the development
# machine: the binary, libllama/libggml*, and the backend modules libggml-cpu.so and
# libggml-cuda.so). No network, no cargo needed there.
#
#   bench/gpu-machine-cuda-engine.sh [BUNDLE.tar.xz] [OUT]
#
# Defaults: .dev/cuda-engine/gpu-doctor-cuda.tar.xz and $OUT. Records under OUT/cuda-engine/:
#   env.txt              GPU, driver, LD_LIBRARY_PATH, which CUDA libraries resolve
#   ldd.txt              ldd and DT_NEEDED of the binary and each module, as the loader sees them here
#   facts-full.json      gpu-doctor facts --profile full (the offload proof runs the engine)
#   check-full.txt       gpu-doctor check --profile full -v, and its exit code
#   engine-<case>.json   the engine child's own report (__probe llama-engine), one per case:
#                          gpu         the machine as it is (every layer asked on the H100, then 0)
#                          no-driver   LD_LIBRARY_PATH without /usr/local/nvidia: libcuda.so.1 not found
#                          hidden      CUDA_VISIBLE_DEVICES= (the driver loads, no device is visible)
#                          no-cuda-libpath  only when libcudart/libcublas need /usr/local/cuda/lib64 in
#                                      LD_LIBRARY_PATH (then added for every other case): without it
#   engine-<case>.log    llama.cpp's log of that case as text, the stderr after it
#   timings.txt          wall times of facts/check and of the child (process start to exit)
# Everything is also packed as OUT/cuda-engine.tgz, refreshed after each step.
set -uo pipefail
BUNDLE=$(realpath "${1:-.dev/cuda-engine/gpu-doctor-cuda.tar.xz}")
OUT=${2:-${OUT:?give OUT as the second argument or in the environment}}
R=$OUT/cuda-engine
mkdir -p "$R"
W=/tmp/gd-cuda
rm -rf "$W"; mkdir -p "$W"
snap() { (cd "$OUT" && tar czf cuda-engine.tgz cuda-engine); }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$(now)"; }
T=$R/timings.txt
: > "$T"

t0=$(now)
tar -xJf "$BUNDLE" -C "$W" || { echo "cannot unpack $BUNDLE" >&2; exit 2; }
echo "unpack: $(since "$t0") s" >> "$T"
B=$W/gpu-doctor-cuda
GD=$B/gpu-doctor
DRIVER_LD=${LD_LIBRARY_PATH:-/usr/local/nvidia/lib64:/usr/local/nvidia/lib}
export LD_LIBRARY_PATH=$DRIVER_LD
# libggml-cuda.so needs libcudart.so.13 and libcublas.so.13 (/usr/local/cuda/lib64). When the
# loader cannot find them by itself, add that folder, and record the failure as its own case.
CUDA_LIBS_FOUND=yes
if ! LD_LIBRARY_PATH=$DRIVER_LD ldd "$B/libggml-cuda.so" | grep -q 'libcublas.so.13 => /'; then
  CUDA_LIBS_FOUND=no
  export LD_LIBRARY_PATH=$DRIVER_LD:/usr/local/cuda/lib64
fi
export XDG_CACHE_HOME=$W/cache

{
  echo "# $(date -u +%FT%TZ) $(uname -r)"
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader 2>&1
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH (the CUDA libraries resolve without /usr/local/cuda/lib64: $CUDA_LIBS_FOUND)"
  echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-<unset>}"
  echo "## ldconfig -p (CUDA runtime, cuBLAS, driver)"
  ldconfig -p | grep -E 'libcudart\.so|libcublas(Lt)?\.so|libcuda\.so' || echo "(none in the ldconfig cache)"
  echo "## bundle"
  ls -l "$B"
} > "$R/env.txt" 2>&1
cat "$R/env.txt"

{
  for f in "$GD" "$B"/lib*.so*; do
    echo "### $(basename "$f")"
    echo "# readelf -d (NEEDED, RUNPATH)"
    readelf -d "$f" | grep -E 'NEEDED|RPATH|RUNPATH'
    echo "# ldd"
    ldd "$f"
  done
  echo "### ldd libggml-cuda.so without /usr/local/nvidia in LD_LIBRARY_PATH"
  LD_LIBRARY_PATH= ldd "$B/libggml-cuda.so"
} > "$R/ldd.txt" 2>&1
grep -E '^###|not found' "$R/ldd.txt"
snap

echo "== gpu-doctor facts --profile full (writes the tiny model, runs the engine)"
t0=$(now)
"$GD" facts --profile full > "$R/facts-full.json" 2> "$R/facts-full.stderr"
echo "facts --profile full (cold model cache): exit $?, $(since "$t0") s" >> "$T"
tail -3 "$R/facts-full.stderr"
python3 - "$R/facts-full.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for s in d["offload"]["stacks"]:
    if s.get("kind") == "reference":
        pl = s.get("placement") or {}
        print("reference engine:", s["status"], s.get("build"), "devices", s.get("devices"),
              "| layers on GPU", pl.get("layers_on_gpu"), "of", pl.get("layers_total"),
              "| cuda_init_error", s.get("cuda_init_error"), "| load errors", s.get("backend_load_errors"),
              s.get("cuda_backend_load_error"))
PY
snap

echo "== gpu-doctor check --profile full -v"
t0=$(now)
{ echo "### gpu-doctor check --profile full -v --color never"
  "$GD" check --profile full -v --color never; echo "exit code: $?"; } > "$R/check-full.txt" 2>&1
echo "check --profile full (warm model cache): $(since "$t0") s" >> "$T"
tail -15 "$R/check-full.txt"
snap

MODEL=$(ls "$XDG_CACHE_HOME"/gpu-doctor/models/llama-2L-256e-*.gguf 2>/dev/null | head -1)
[ -n "$MODEL" ] || { echo "no placement model in $XDG_CACHE_HOME/gpu-doctor/models" >&2; ls -R "$XDG_CACHE_HOME" >&2; snap; exit 1; }
export GPU_DOCTOR_ENGINE_REQUEST="{\"model\":\"$MODEL\",\"n_gpu_layers\":[-1,0],\"n_ctx\":2048,\"n_batch\":512,\"prompt_tokens\":16,\"gen_tokens\":8}"
echo "request: $GPU_DOCTOR_ENGINE_REQUEST" >> "$T"

engine_case() { # NAME, then env assignments for `env`
  local name=$1; shift
  local t0; t0=$(now)
  env GGML_NO_BACKTRACE=1 "$@" "$GD" __probe llama-engine > "$R/engine-$name.json" 2> "$R/engine-$name.stderr"
  local rc=$?
  echo "engine $name: exit $rc, $(since "$t0") s" >> "$T"
  python3 - "$R/engine-$name.json" "$R/engine-$name.stderr" > "$R/engine-$name.log" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    print("no report:", e); print(open(sys.argv[2]).read()); sys.exit()
print("build", r["build"], "| supports_gpu_offload", r["supports_gpu_offload"], "| backends", r["backends"])
print("system_info:", r["system_info"])
for m in r.get("backend_modules", []):
    print("module", m)
for d in r["devices"]:
    print("device", d)
print("--- init log")
for l in r["init_log"]:
    print(l["level"], l["text"].rstrip())
for run in r["runs"]:
    print(f"--- run n_gpu_layers={run['n_gpu_layers']} loaded={run['loaded']} error={run['error']} "
          f"nodes={run['node_buffers']} load_ms={run.get('load_ms')} prompt_ms={run['prompt_ms']} gen_ms={run['gen_ms']} finite={run['logits_finite']}")
    for l in run["log"]:
        print(l["level"], l["text"].rstrip())
print("--- stderr"); print(open(sys.argv[2]).read())
PY
  grep -E '^(build|module|device|--- run)' "$R/engine-$name.log"
}

echo "== the engine child directly"
engine_case gpu
NO_DRIVER_LD=; [ "$CUDA_LIBS_FOUND" = yes ] || NO_DRIVER_LD=/usr/local/cuda/lib64
engine_case no-driver LD_LIBRARY_PATH="$NO_DRIVER_LD"
engine_case hidden CUDA_VISIBLE_DEVICES=
[ "$CUDA_LIBS_FOUND" = yes ] || engine_case no-cuda-libpath LD_LIBRARY_PATH="$DRIVER_LD"
snap

echo "== timings: 5 more child runs on the GPU"
cat > /tmp/gd-cuda-inside.py <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("; ".join("ngl %d: load %.1f ms, prompt %.2f ms, gen %.2f ms, nodes %s" % (
    x["n_gpu_layers"], x.get("load_ms") or 0, x["prompt_ms"] or 0, x["gen_ms"] or 0, x["node_buffers"])
    for x in r["runs"]))
PY
for i in 1 2 3 4 5; do
  t0=$(now)
  "$GD" __probe llama-engine > /tmp/gd-cuda-run.json 2>/dev/null
  echo "engine gpu, run $i: $(since "$t0") s; inside: $(python3 /tmp/gd-cuda-inside.py /tmp/gd-cuda-run.json 2>&1)" >> "$T"
done
cat "$T"
snap
echo "recorded in $R (and $OUT/cuda-engine.tgz)"
