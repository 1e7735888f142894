#!/usr/bin/env bash
# Makes, ONCE, a virtual environment with the real validators of the CI files `gpu-doctor init`
# writes (tests/exec_init.rs), and prints its folder:
#
#   check-jsonschema  validates a GitHub Actions workflow and GitLab CI files against the
#                     schemas it vendors (vendor.github-workflows, vendor.gitlab-ci: SchemaStore's)
#   pre-commit        `validate-config` for .pre-commit-config.yaml, and runs the hook
#
# All from PyPI, at the versions pinned below. Cache:
# ${GPU_DOCTOR_TEST_CACHE:-$HOME/.cache/gpu-doctor-tests}/ci-validators-<pins hash> (CI should
# cache it); a warm cache needs no network. Needs python3 with the venv module and PyPI on a
# cold cache.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
PINS="check-jsonschema==0.39.0 pre-commit==4.6.2"
HASH=$(printf '%s' "$PINS" | sha256sum | cut -c1-12)
CACHE="${GPU_DOCTOR_TEST_CACHE:-$HOME/.cache/gpu-doctor-tests}"
VENV="$CACHE/ci-validators-$HASH"

log() { printf 'ci-validators.sh: %s\n' "$*" >&2; }

mkdir -p "$CACHE"
# One preparer at a time: cargo runs tests in parallel.
exec 9>"$CACHE/.ci-validators.lock"
flock -w 900 9

ready() {
    [ -f "$VENV/.complete" ] && [ -x "$VENV/bin/check-jsonschema" ] && [ -x "$VENV/bin/pre-commit" ]
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
