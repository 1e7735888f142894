#!/usr/bin/env bash
# Package the `cuda` build of gpu-doctor (make build-cuda; docs/reference-engine.md) so it runs
# where it is unpacked: the binary finds libllama/libggml* through its RUNPATH ($ORIGIN) and the
# engine loads libggml-cpu.so and libggml-cuda.so from its own folder.
#
# Usage: tools/cuda-engine-bundle.sh RELEASE_DIR BUNDLE_DIR
#   RELEASE_DIR  the cargo output folder (target/cuda/release). The shared libraries and the
#                backend modules are copied beside its gpu-doctor too, so it runs in place.
#   BUNDLE_DIR   gets gpu-doctor-cuda.tar.xz (one folder, gpu-doctor-cuda/: the stripped binary,
#                its libraries and modules) and MANIFEST.txt (sizes, DT_NEEDED, sha256).
set -euo pipefail
REL=$(cd "$1" && pwd)
mkdir -p "$2"
DEST=$(cd "$2" && pwd)

# llama-cpp-sys-2's CMake install: lib/ (libllama, libggml, libggml-base) and bin/ (modules).
OUT=$(ls -td "$REL"/build/llama-cpp-sys-2-*/out 2>/dev/null | while read -r d; do
  [ -f "$d/bin/libggml-cuda.so" ] && echo "$d" && break; done || true)
[ -n "$OUT" ] || { echo "cuda-engine-bundle: no llama-cpp-sys-2 build with bin/libggml-cuda.so under $REL/build (built with GGML_BACKEND_DL=ON?)" >&2; exit 2; }
LIBDIR=$OUT/lib; [ -d "$LIBDIR" ] || LIBDIR=$OUT/lib64

# Beside the binary in RELEASE_DIR: the sonames it needs and the modules.
for soname in $(readelf -d "$REL/gpu-doctor" | sed -n 's/.*NEEDED.*\[\(lib\(llama\|ggml\)[^]]*\)\].*/\1/p'); do
  cp -fL "$LIBDIR/$soname" "$REL/$soname"
done
cp -f "$OUT"/bin/libggml-*.so "$REL/"

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
B=$STAGE/gpu-doctor-cuda
mkdir -p "$B"
strip -o "$B/gpu-doctor" "$REL/gpu-doctor"
for f in "$REL"/lib{llama,ggml}*.so*; do
  case $(basename "$f") in *.so.0|libggml-*.so) strip --strip-unneeded -o "$B/$(basename "$f")" "$f" ;; esac
done
# Only the sonames the binary needs and the modules (no unversioned link-time names).
rm -f "$B/libllama.so" "$B/libggml.so" "$B/libggml-base.so"

{
  echo "gpu-doctor cuda bundle, made $(date -u +%Y-%m-%dT%H:%M:%SZ) from $REL"
  echo "llama-cpp-sys-2 out: $OUT"
  echo
  echo "== sizes (bytes, stripped)"
  (cd "$B" && ls -l | awk 'NR>1 {print $5, $9}')
  echo
  echo "== DT_NEEDED / RUNPATH"
  for f in "$B"/*; do
    echo "-- $(basename "$f")"
    readelf -d "$f" | { grep -E 'NEEDED|RPATH|RUNPATH' || true; } | sed 's/^ *0x[0-9a-f]* *//'
  done
  echo
  echo "== sha256"
  (cd "$B" && sha256sum *)
} > "$DEST/MANIFEST.txt"

tar -C "$STAGE" -cf - gpu-doctor-cuda | xz -9 -T2 > "$DEST/gpu-doctor-cuda.tar.xz.new"
mv "$DEST/gpu-doctor-cuda.tar.xz.new" "$DEST/gpu-doctor-cuda.tar.xz"
echo "bundle: $DEST/gpu-doctor-cuda.tar.xz ($(du -h "$DEST/gpu-doctor-cuda.tar.xz" | cut -f1)); unpacked $(du -sh "$B" | cut -f1)"
