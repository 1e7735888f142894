#!/usr/bin/env bash
# Builds a CPU-only llama-cpp-python wheel from its PyPI sdist ONCE, caches it, and installs it
# into fresh virtual environments for the live-probe tests (tests/python_live.rs).
#
#   tests/support/llama-cpp-python.sh wheel       build if needed; print the cached wheel's path
#   tests/support/llama-cpp-python.sh venv DIR    make a venv at DIR (python3 -m venv) with the
#                                                 wheel and its dependencies installed
#
# Cache: ${GPU_DOCTOR_TEST_CACHE:-$HOME/.cache/gpu-doctor-tests}/wheels. The llama-cpp-python
# wheel is tagged py3-none-linux_x86_64 (it loads its libraries through ctypes), so one build
# serves every Python version; its dependencies are cached per Python version beside it, so a
# warm cache needs no network at all. CI should cache that folder (key: this file's hash).
#
# Needs: python3 with the venv module (Debian/Ubuntu: python3-venv), a C/C++ compiler (g++),
# network to PyPI on a cold cache (cmake and ninja come from PyPI as build requirements when the
# system has none). The build takes about 6 minutes on 2 cores; a warm cache makes a venv in
# seconds, offline.
# Environment: PYTHON (default python3), LLAMA_CPP_PYTHON_VERSION (default below).
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
PYTHON="${PYTHON:-python3}"
CACHE="${GPU_DOCTOR_TEST_CACHE:-$HOME/.cache/gpu-doctor-tests}"
WHEELS="$CACHE/wheels"
# The build flavour is part of the folder name so that another configuration never reuses it.
WHEEL_DIR="$WHEELS/llama-cpp-python-$VERSION-cpu"
DEPS="numpy typing-extensions diskcache jinja2 MarkupSafe"

log() { printf 'llama-cpp-python.sh: %s\n' "$*" >&2; }

find_wheel() {
    compgen -G "$WHEEL_DIR/llama_cpp_python-$VERSION-*.whl" | head -n 1 || true
}

build_wheel() {
    local start
    mkdir -p "$WHEEL_DIR"
    # Global, for the EXIT trap: the build folder goes whatever happens.
    BUILD_DIR="$(mktemp -d "$WHEELS/.build.XXXXXX")"
    trap 'rm -rf "$BUILD_DIR"' EXIT
    local work="$BUILD_DIR"
    start=$(date +%s)
    log "building llama-cpp-python $VERSION (CPU only) from its sdist; this takes minutes"
    # No GGML_NATIVE: the wheel must not depend on this CPU's instruction set (a cache may be
    # restored on another runner). Tests, examples and llava are not needed.
    # pip runs from a throwaway venv: the system pip may be missing or refuse to run
    # (Debian's externally-managed Python), while venv always brings its own.
    "$PYTHON" -m venv "$work/venv"
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAVA_BUILD=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
    PIP_FIND_LINKS= \
        "$work/venv/bin/python" -m pip wheel --no-deps --no-binary llama-cpp-python --no-cache-dir \
        --wheel-dir "$work" "llama-cpp-python==$VERSION" >&2
    local built
    built="$(compgen -G "$work/llama_cpp_python-$VERSION-*.whl" | head -n 1 || true)"
    if [ -z "$built" ]; then
        log "the build produced no wheel"
        exit 1
    fi
    # Rename into place last so that an interrupted build leaves no half-written wheel.
    mv "$built" "$WHEEL_DIR/"
    log "built $(basename "$built") in $(( $(date +%s) - start )) s"
}

ensure_wheel() {
    mkdir -p "$WHEELS"
    # Two test processes may ask at once: one builds, the other waits for it.
    exec 9>"$WHEELS/.llama-cpp-python.lock"
    if command -v flock >/dev/null; then flock 9; fi
    if [ -z "$(find_wheel)" ]; then build_wheel; fi
    find_wheel
}

# Fills DEPS_DIR with the dependency wheels for one Python version, once: under a lock, and
# downloaded into a folder of its own whose files are then moved in (a rename each), so that a
# concurrent offline install never reads a half-downloaded wheel.
fill_deps() {
    local python="$1" deps_dir="$2" tmp
    exec 8>"$deps_dir.lock"
    if command -v flock >/dev/null; then flock 8; fi
    if "$python" -m pip download --quiet --no-index --find-links "$deps_dir" --dest "$deps_dir" \
            $DEPS >/dev/null 2>&1; then
        exec 8>&-
        return
    fi
    log "caching the dependencies for $(basename "$deps_dir") in $deps_dir"
    mkdir -p "$deps_dir"
    tmp="$(mktemp -d "$deps_dir.tmp.XXXXXX")"
    PIP_FIND_LINKS= "$python" -m pip download --quiet --dest "$tmp" $DEPS >&2
    mv -f "$tmp"/* "$deps_dir/"
    rmdir "$tmp"
    exec 8>&-
}

make_venv() {
    local dir="$1" wheel pytag deps_dir
    wheel="$(ensure_wheel)"
    "$PYTHON" -m venv "$dir"
    pytag="$("$dir/bin/python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
    deps_dir="$WHEELS/deps-$pytag"
    fill_deps "$dir/bin/python" "$deps_dir"
    "$dir/bin/python" -m pip install --quiet --no-index --find-links "$deps_dir" "$wheel" >&2
    echo "$dir"
}

case "${1:-}" in
    wheel) ensure_wheel ;;
    venv) [ -n "${2:-}" ] || { log "usage: $0 venv DIR"; exit 2; }; make_venv "$2" ;;
    *) log "usage: $0 wheel | venv DIR"; exit 2 ;;
esac
