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
# All from PyPI, at the versions pinned below, by tests/support/pinned-venv.sh. Cache:
# ${GPU_DOCTOR_TEST_CACHE:-$HOME/.cache/gpu-doctor-tests}/python-tools-<pins hash> (CI should cache
# it); a warm cache needs no network. Needs python3 with the venv module and PyPI on a cold cache.
set -euo pipefail
exec "$(dirname "$0")/pinned-venv.sh" python-tools pre-commit==4.6.2 maturin==1.16.0 uv==0.13.9 pipx==1.18.4
