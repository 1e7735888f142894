#!/usr/bin/env bash
# Run on the GPU machine (H100): the llama.cpp offload proof (docs/offload.md) against three real
# llama-cpp-python builds in one project, and its timings.
#
#   bench/gpu-machine-offload.sh DIR OUT [timings]
#
# With `timings`, only the builds and the timings run (no recordings, no zero-weights check).
#
# DIR holds gpu-doctor (a release build from the development machine), the trimmed
# llama-cpp-python 0.3.36 sdist (llama_cpp_python-0.3.36-trim.tar.gz), the CPU wheel built on the
# Debian 12 development machine and the diskcache wheel. Everything recorded goes to OUT (one
# tarball, offload.tgz, plus the run's log). The project /tmp/proj gets:
#   .venv-cuda         a CUDA build made here (CMAKE_ARGS -DGGML_CUDA=on, the H100's arch 90)
#   .venv-cpu-carried  the CPU build made on the development machine (the seed's silent fallback)
#   .venv-cpu-here     a CPU build made here, which crashes with SIGSEGV while loading a model
# plus llama-bench built from the CUDA build's tree, and a gpu-doctor.toml naming it and a
# command (python serve.py) whose Llama(...) never sets n_gpu_layers.
set -uo pipefail
D=$(cd "$1" && pwd)
OUT=$2
ONLY_TIMINGS=${3:-}
R=$OUT/rec
mkdir -p "$R"
TORCH=/opt/torch/.venv
SPT=$TORCH/lib/python3.12/site-packages
P=/tmp/proj
rm -rf $P /tmp/src-cuda /tmp/src-cpu /tmp/skb-cuda
mkdir -p $P /tmp/src-cuda /tmp/src-cpu
now() { date +%s.%N; }
snap() { (cd "$OUT" && tar czf offload.tgz rec); }  # what is recorded so far comes back even after a kill
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f} s')" "$1" "$(now)"; }

venv() { # NAME: a venv whose site-packages sees the torch venv's (numpy, jinja2, build tools)
  python3 -m venv --without-pip "$P/$1"
  local sp; sp=$(echo "$P/$1"/lib/python3*/site-packages)
  echo "$SPT" > "$sp/torch-venv.pth"
  $TORCH/bin/python3 -m pip install -q --no-deps --no-index --target "$sp" "$D"/diskcache-*.whl
  echo "$sp"
}

echo "== builds"
tar xzf "$D"/llama_cpp_python-0.3.36-trim.tar.gz -C /tmp/src-cuda
tar xzf "$D"/llama_cpp_python-0.3.36-trim.tar.gz -C /tmp/src-cpu
SP_CUDA=$(venv .venv-cuda)
SP_HERE=$(venv .venv-cpu-here)
SP_CARRIED=$(venv .venv-cpu-carried)
$TORCH/bin/python3 -m pip install -q --no-deps --no-index --target "$SP_CARRIED" "$D"/llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl
t0=$(now)
( cd /tmp/src-cpu/llama_cpp_python-0.3.36 && CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL=4 \
    $TORCH/bin/python3 -m pip install -q --no-deps --no-build-isolation --no-index --target "$SP_HERE" . \
    > "$R/build-cpu-here.log" 2>&1; echo "cpu build (here) exit $? after $(since $t0)" ) &
( cd /tmp/src-cuda/llama_cpp_python-0.3.36 && CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL=16 \
    $TORCH/bin/python3 -m pip install -q --no-deps --no-build-isolation --no-index --config-settings=build-dir=/tmp/skb-cuda --target "$SP_CUDA" . \
    > "$R/build-cuda.log" 2>&1; echo "cuda build exit $? after $(since $t0)" )
wait
tail -3 "$R/build-cuda.log"
ls "$SP_CUDA/llama_cpp/lib" "$SP_HERE/llama_cpp/lib" 2>&1 | head -30
echo "== llama-bench from the CUDA build's tree"
t1=$(now)
( cmake -S /tmp/src-cuda/llama_cpp_python-0.3.36 -B /tmp/skb-cuda -DLLAMA_BUILD_TOOLS=ON > "$R/bench-configure.log" 2>&1 && \
  cmake --build /tmp/skb-cuda --target llama-bench -j16 > "$R/bench-build.log" 2>&1 ); echo "llama-bench build exit $? after $(since $t1)"
BENCH=$(find /tmp/skb-cuda -name llama-bench -type f -perm -u+x | head -1)
echo "llama-bench: ${BENCH:-none}"; tail -3 "$R/bench-build.log"

echo "== the project"
cd $P
cat > serve.py <<'PY'
from llama_cpp import Llama

llm = Llama(model_path="models/chat.gguf")
print(llm("Q: What is a GPU? A:", max_tokens=32)["choices"][0]["text"])
PY
{ echo "[llama]"; [ -n "$BENCH" ] && echo "binaries = [\"$BENCH\"]"; echo 'commands = ["python serve.py"]'; } > gpu-doctor.toml
cat gpu-doctor.toml
if [ -z "$ONLY_TIMINGS" ]; then
export GPU_DOCTOR_OFFLOAD_RECORD=$R
export XDG_CACHE_HOME=/tmp/cache-cold
rm -rf $XDG_CACHE_HOME
echo "== gpu-doctor facts --profile full (cold model cache)"
/usr/bin/time -f "%e s wall (cold)" "$D/gpu-doctor" facts --profile full > "$R/h100-offload.json" 2> "$R/facts-cold.stderr"; tail -2 "$R/facts-cold.stderr"
unset GPU_DOCTOR_OFFLOAD_RECORD
echo "== a project with only the CUDA build (the healthy base of the offload scenarios)"
P2=/tmp/proj-cuda; rm -rf $P2; mkdir -p $P2; cp -a $P/.venv-cuda $P2/.venv
( cd $P2 && "$D/gpu-doctor" facts --profile full > "$R/h100-offload-cuda.json" 2>/dev/null
  { echo "### cd $P2 && gpu-doctor check --profile full -v --color never"
    "$D/gpu-doctor" check --profile full -v --color never; echo "exit code: $?"; } > "$R/h100-offload-cuda-report.txt" 2>&1 )
tail -12 "$R/h100-offload-cuda-report.txt"
fi
echo "== gpu-doctor check --profile full -v"
{ echo "### cd $P && gpu-doctor check --profile full -v --color never"
  "$D/gpu-doctor" check --profile full -v --color never; echo "exit code: $?"; } > "$R/h100-offload-report.txt" 2>&1
[ -f "$R/h100-offload-report.txt" ] && cat "$R/h100-offload-report.txt"
snap

echo "== timings"
T=$R/h100-offload-timings.txt
tm() { local label=$1; shift; /usr/bin/time -a -o "$T" -f "$label: %e s" "$@" >/dev/null 2>&1; }
echo "# wall seconds on $(nvidia-smi --query-gpu=name --format=csv,noheader), project $P" > "$T"
for i in 1 2 3 4 5; do tm "python3 -I -c pass" $P/.venv-cuda/bin/python3 -I -c pass; done
for e in .venv-cuda .venv-cpu-carried .venv-cpu-here; do
  for i in 1 2 3; do tm "$e: python3 -I -c 'import llama_cpp'" $P/$e/bin/python3 -I -c "import llama_cpp"; done
done
N=${RUNS:-3}
for i in $(seq $N); do tm "gpu-doctor check --profile standard" "$D/gpu-doctor" check --profile standard; done
for i in $(seq $N); do tm "gpu-doctor check --profile full" "$D/gpu-doctor" check --profile full; done
for i in 1 2 3; do "$D/gpu-doctor" facts --profile full > /tmp/f$i.json 2>/dev/null; done
python3 - /tmp/f1.json /tmp/f2.json /tmp/f3.json $( [ -f "$R/h100-offload.json" ] && echo "$R/h100-offload.json" ) >> "$T" 2>&1 <<'PY'
import json, sys
for path in sys.argv[1:]:
    d = json.load(open(path))
    o = d["offload"]
    p = d["probes"].get("offload", {})
    models = [o.get("placement_model")] + o.get("speed_models", [])
    print(path, "offload probe:", p.get("status"), p.get("duration_ms"), "ms; python probe:", d["probes"]["python"]["duration_ms"], "ms; cuda probe:", d["probes"]["cuda"]["duration_ms"], "ms")
    print("  model writes (n_embd, n_layer, weights, ms, cached):", [(m["n_embd"], m["n_layer"], m["weights"], m["write_ms"], m["cached"]) for m in models if m])
    for s in o["stacks"]:
        pl = s.get("placement") or {}
        sp = s.get("speed") or {}
        print("  ", s["name"], s["status"], s.get("duration_ms"), "ms;", pl.get("layers_on_gpu"), "of", pl.get("layers_total"),
              "; speed:", sp.get("gpu_tokens_per_s"), "vs", sp.get("cpu_tokens_per_s"), "tok/s judged", sp.get("judged"), sp.get("not_judged"))
PY
cat "$T"
snap

echo "== zero weights against random weights (the speed model)"
SPEED=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1]))['offload']['speed_models']; print(m[0]['path'] if m else '')" /tmp/f1.json)
V=$R/zeros-vs-random.txt
cat > /tmp/randomize.py <<'PY'
import shutil, struct, sys, time
import numpy as np

zeros, rnd = sys.argv[1], sys.argv[2]
shutil.copyfile(zeros, rnd)

def tensors(path):
    """(name, ggml type, absolute offset, n_elements) of each tensor of a GGUF v3 file."""
    f = open(path, "rb")
    rd = lambda fmt: struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))[0]
    rs = lambda: f.read(rd("Q")).decode()
    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    def skip(t):
        if t == 8: rs()
        elif t == 9:
            et, n = rd("i"), rd("Q")
            for _ in range(n): skip(et)
        else: rd(sizes[t])
    assert f.read(4) == b"GGUF"
    rd("I"); nt, nkv = rd("q"), rd("q")
    align = 32
    for _ in range(nkv):
        k, t = rs(), rd("i")
        if k == "general.alignment": align = rd("I")
        else: skip(t)
    infos = []
    for _ in range(nt):
        name = rs(); nd = rd("I"); ne = [rd("q") for _ in range(nd)]; t = rd("i"); off = rd("Q")
        infos.append((name, t, off, int(np.prod(ne))))
    data = (f.tell() + align - 1) // align * align
    return [(n, t, data + off, ne) for n, t, off, ne in infos]

rng = np.random.default_rng(0)
t0 = time.time()
with open(rnd, "r+b") as f:
    for name, t, off, ne in tensors(rnd):
        if t == 1:
            f.seek(off)
            f.write((rng.standard_normal(ne, dtype=np.float32) * 0.02).astype(np.float16).tobytes())
print(f"random-weights copy of {zeros} written in {time.time() - t0:.1f} s", flush=True)
PY
cat > /tmp/pp.py <<'PY'
import sys, time
import llama_cpp

path, ngl, n, warm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
extra = {"op_offload": False} if ngl == 0 else {}
llm = llama_cpp.Llama(model_path=path, n_gpu_layers=ngl, n_ctx=1024, n_batch=512, verbose=True, **extra)
toks = [1] + [3 + i % 260 for i in range(n - 1)]
llm.eval(toks[:warm]); llm.reset()
times = []
for _ in range(3):
    llm.reset(); t = time.time(); llm.eval(toks); times.append(time.time() - t)
best = min(times)
where = "GPU" if ngl else "CPU"
print(f"{path.split('/')[-1]}: {where} pp{n} best of 3 {best * 1000:.1f} ms ({n / best:.0f} tok/s); all {[round(x * 1000, 1) for x in times]} ms", flush=True)
PY
if [ -n "$SPEED" ] && [ -z "$ONLY_TIMINGS" ]; then
  $P/.venv-cuda/bin/python3 /tmp/randomize.py "$SPEED" /tmp/speed-random.gguf >> "$V" 2>&1
  for m in "$SPEED" /tmp/speed-random.gguf; do
    $P/.venv-cuda/bin/python3 /tmp/pp.py "$m" -1 512 512 >> "$V" 2>>"$R/zeros-vs-random.stderr" || echo "GPU run of $m: exit $?" >> "$V"
    $P/.venv-cuda/bin/python3 /tmp/pp.py "$m" 0 128 16 >> "$V" 2>>"$R/zeros-vs-random.stderr" || echo "CPU run of $m: exit $?" >> "$V"
  done
fi
cat "$V"

snap; ls -la "$OUT"
