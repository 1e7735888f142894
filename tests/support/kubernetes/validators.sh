#!/usr/bin/env bash
# Makes, ONCE, the venv that tests/kubernetes.rs validates docs/examples' Kubernetes manifests
# with, and prints its folder:
#
#   venv/   python3 venv with kubernetes-validate (PyPI; it bundles the Kubernetes OpenAPI
#           schemas of each release, so validating needs no cluster and no network) and its
#           dependency PyYAML, the YAML parser the test reads the manifests with.
#
# Cache: ${GPU_DOCTOR_TEST_CACHE:-$HOME/.cache/gpu-doctor-tests}/kubernetes; a warm cache needs
# no network. Needs: python3 with venv, pip access to PyPI on a cold cache.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
KUBERNETES_VALIDATE_VERSION=1.37.0
CACHE="${GPU_DOCTOR_TEST_CACHE:-$HOME/.cache/gpu-doctor-tests}/kubernetes"

mkdir -p "$CACHE"
# One preparer at a time: cargo runs tests in parallel.
exec 9>"$CACHE/.lock"
flock -w 600 9

venv="$CACHE/venv"
if ! "$venv/bin/python" -c 'import kubernetes_validate, yaml, sys
from importlib.metadata import version
sys.exit(version("kubernetes-validate") != sys.argv[1])' "$KUBERNETES_VALIDATE_VERSION" 2>/dev/null; then
    printf 'kubernetes/validators.sh: creating %s (kubernetes-validate %s from PyPI)\n' \
        "$venv" "$KUBERNETES_VALIDATE_VERSION" >&2
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    timeout 300 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2
fi

printf '%s\n' "$CACHE"
