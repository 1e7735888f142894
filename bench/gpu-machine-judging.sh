#!/usr/bin/env bash
# Run on the GPU machine (H200): what gpu-doctor judges in a project with the environments people
# really have (docs/facts.md, "Python environments: how they are found and read"), in all three profiles and with
# CUDA_VISIBLE_DEVICES / CUDA_PATH set the ways that hide a GPU or point at nothing.
#
#   bench/gpu-machine-judging.sh DIR OUT [nocuda]
#
# DIR holds gpu-doctor (a release build from the development machine), the trimmed
# llama-cpp-python 0.3.36 sdist (llama_cpp_python-0.3.36-trim.tar.gz), the CPU wheel built on the
# Debian 12 development machine (tests/support/llama-cpp-python.sh wheel) and the diskcache
# wheel. With `nocuda` the CUDA build is skipped (a quick rehearsal). Everything recorded goes to
# OUT/judging.tgz (snapshotted as it goes, so a run cut short still returns what it had).
#
# The project /tmp/proj gets:
#   .venv-cuda      llama-cpp-python built here with CUDA; torch reached through a `.pth` line
#                   naming /opt/torch/.venv's site-packages (the NGC / conda-base way)
#   .venv-cpu       the CPU-only build carried from the development machine, torch through the
#                   same `.pth` line: the seed's silent fallback
#   .venv-system    `python3 -m venv --system-site-packages` over /usr/bin/python3, whose own
#                   site-packages reach torch through a `.pth` line (a base with CUDA torch)
#   .venv-gone      a venv whose base interpreter was removed (its python symlink and pyvenv.cfg
#                   `home` name a folder that no longer exists)
#   .venv-upgraded  a venv made with Python 3.10 whose base python3 is now 3.12 (pyvenv.cfg says
#                   3.10.13; its packages sit in lib/python3.10, which 3.12 never reads)
set -uo pipefail
D=$(cd "$1" && pwd)
OUT=$2
MODE=${3:-}
# Recorded files stay outside OUT (only 8 files come back): OUT gets the tarball and the log.
W=/tmp/judging
R=$W/rec
rm -rf "$W" && mkdir -p "$R"
TORCH=/opt/torch/.venv
SPT=$TORCH/lib/python3.12/site-packages
P=/tmp/proj
GD="$D/gpu-doctor"
rm -rf $P /tmp/src-cuda
mkdir -p $P /tmp/src-cuda
now() { date +%s.%N; }
snap() { (cd "$W" && tar czf "$OUT/judging.tgz" rec); }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f} s')" "$1" "$(now)"; }

venv() { # NAME: a venv whose site-packages reach the torch venv's through a .pth line
  /usr/bin/python3 -m venv --without-pip "$P/$1"
  local sp; sp=$(echo "$P/$1"/lib/python3*/site-packages)
  echo "$SPT" > "$sp/torch-venv.pth"
  $TORCH/bin/python3 -m pip install -q --no-deps --no-index --target "$sp" "$D"/diskcache-*.whl
  echo "$sp"
}

echo "== environments"
SP_CUDA=$(venv .venv-cuda)
SP_CPU=$(venv .venv-cpu)
$TORCH/bin/python3 -m pip install -q --no-deps --no-index --target "$SP_CPU" \
  "$D"/llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl
# A base interpreter whose own site-packages hold CUDA torch (through a .pth line in the system
# site folder), and a venv over it that includes the system site-packages.
SYS_SITE=$(/usr/bin/python3 -c 'import site; print(site.getsitepackages()[0])')
mkdir -p "$SYS_SITE" && echo "$SPT" > "$SYS_SITE/torch-venv.pth"
/usr/bin/python3 -m venv --without-pip --system-site-packages $P/.venv-system
# A venv whose base interpreter is gone.
/usr/bin/python3 -m venv --without-pip $P/.venv-gone
ln -sfn /opt/python-3.12-removed/bin/python3.12 $P/.venv-gone/bin/python3.12
sed -i 's|^home = .*|home = /opt/python-3.12-removed/bin|' $P/.venv-gone/pyvenv.cfg
# A venv made with Python 3.10 whose base `python3` was since upgraded to 3.12 behind the same
# name: bin/python3 starts 3.12, which never looks in lib/python3.10/site-packages.
/usr/bin/python3 -m venv --without-pip $P/.venv-upgraded
mv $P/.venv-upgraded/lib/python3.12 $P/.venv-upgraded/lib/python3.10
echo "$SPT" > $P/.venv-upgraded/lib/python3.10/site-packages/torch-venv.pth
rm -f $P/.venv-upgraded/bin/python3.12 && ln -s /usr/bin/python3.10 $P/.venv-upgraded/bin/python3.10
sed -i -e 's|^version = .*|version = 3.10.13|' -e 's|^executable = .*|executable = /usr/bin/python3.10|' \
  $P/.venv-upgraded/pyvenv.cfg
{ echo "system site folder: $SYS_SITE"; for v in $P/.venv-*; do echo "--- $v"; cat "$v/pyvenv.cfg";
  ls -la "$v/bin" | head -8; ls "$v"/lib/python3*/site-packages; done; } > "$R/layout.txt" 2>&1

if [ "$MODE" != nocuda ]; then
  echo "== CUDA build of llama-cpp-python (sm_90, 16 jobs)"
  tar xzf "$D"/llama_cpp_python-0.3.36-trim.tar.gz -C /tmp/src-cuda
  t0=$(now)
  ( cd /tmp/src-cuda/llama_cpp_python-0.3.36 && \
    CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL=16 \
    $TORCH/bin/python3 -m pip install -q --no-deps --no-build-isolation --no-index --target "$SP_CUDA" . \
    > "$R/build-cuda.log" 2>&1 )
  echo "cuda build exit $? after $(since "$t0")" | tee -a "$R/build-cuda.log"
fi
snap

cd $P
record() { # NAME PROFILE [VAR=VALUE...]: facts, then the report judged live, with its exit code
  local name=$1 profile=$2; shift 2
  local t0; t0=$(now)
  env "$@" "$GD" facts --profile "$profile" > "$R/$name.json" 2> "$R/$name.facts-stderr.txt"
  echo "facts $name: exit $? in $(since "$t0")"
  { echo "### cd $P && $* gpu-doctor check --profile $profile -v --color never"
    env "$@" "$GD" check --profile "$profile" -v --color never; echo "exit code: $?"; } \
    > "$R/$name-report.txt" 2>&1
  env "$@" "$GD" check --profile "$profile" --format json > "$R/$name-check.json" 2>/dev/null
  echo "check $name: exit $?"
  snap
}
echo "== recordings"
record h200-judging-quick quick
record h200-judging standard
UUID=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | head -1)
record h200-judging-cuda-visible-empty standard CUDA_VISIBLE_DEVICES=
record h200-judging-cuda-visible-uuid standard "CUDA_VISIBLE_DEVICES=$UUID"
record h200-judging-cuda-path-missing standard CUDA_PATH=/usr/local/cuda-12.4
record h200-judging-full full
nvidia-smi > "$R/nvidia-smi.txt" 2>&1
snap
ls -la "$R"
