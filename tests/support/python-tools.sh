#!/usr/bin/env bash
# Makes, ONCE, a virtual environment with the Python-side consumers of gpu-doctor that
# tests/precommit.rs, tests/packaging.rs and `make test-precommit` / `make test-pip` drive, and
# prints its folder:
#
#   pre-commit   runs .pre-commit-hooks.yaml (validate-manifest, run, try-repo)
#   maturin      builds the gpu-doctor wheel (pyproject.toml, bindings = "bin")
#   uv           `uvx --from <wheel> gpu-doctor`
#   pipx         `pipx run --spec <wheel> gpu-doctor`
#
# All from PyPI, at the versions pinned below. Cache:
# ${GPU_DOCTOR_TEST_CACHE:-$HOME/.cache/gpu-doctor-tests}/python-tools-<pins hash> (CI should cache
# it); a warm cache needs no network. Needs python3 with the venv module and PyPI on a cold cache.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
PINS="pre-commit==4.6.2 maturin==1.16.0 uv==0.13.9 pipx==1.18.4"
HASH=$(printf '%s' "$PINS" | sha256sum | cut -c1-12)
CACHE="${GPU_DOCTOR_TEST_CACHE:-$HOME/.cache/gpu-doctor-tests}"
VENV="$CACHE/python-tools-$HASH"

log() { printf 'python-tools.sh: %s\n' "$*" >&2; }

mkdir -p "$CACHE"
# One preparer at a time: cargo runs tests in parallel.
exec 9>"$CACHE/.python-tools.lock"
flock -w 900 9

ready() {
    [ -f "$VENV/.complete" ] && [ -x "$VENV/bin/pre-commit" ] && [ -x "$VENV/bin/maturin" ] &&
        [ -x "$VENV/bin/uv" ] && [ -x "$VENV/bin/pipx" ]
}

if ! ready; then
    log "creating $VENV ($PINS from PyPI)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    # PIP_FIND_LINKS is emptied so that a local wheel folder never replaces what PyPI serves.
    PIP_FIND_LINKS= timeout 600 "$VENV/bin/python" -m pip install --quiet \
        --disable-pip-version-check $PINS >&2
    touch "$VENV/.complete"
fi

printf '%s\n' "$VENV"
