#!/usr/bin/env bash
# Makes, ONCE, a virtual environment holding Python tools from PyPI at pinned versions, and
# prints its folder. Usage: pinned-venv.sh NAME PIN... (e.g. pre-commit==4.6.2).
#
# Cache: ${GPU_DOCTOR_TEST_CACHE:-$HOME/.cache/gpu-doctor-tests}/NAME-<hash of the pins> (CI
# should cache it); a warm cache needs no network. Needs python3 with the venv module and PyPI
# on a cold cache. One preparer at a time per NAME: cargo runs tests in parallel.
set -euo pipefail

NAME=$1
shift
PINS="$*"
PYTHON="${PYTHON:-python3}"
HASH=$(printf '%s' "$PINS" | sha256sum | cut -c1-12)
CACHE="${GPU_DOCTOR_TEST_CACHE:-$HOME/.cache/gpu-doctor-tests}"
VENV="$CACHE/$NAME-$HASH"

mkdir -p "$CACHE"
exec 9>"$CACHE/.$NAME.lock"
flock -w 900 9

if [ ! -f "$VENV/.complete" ]; then
    printf '%s: creating %s (%s from PyPI)\n' "$NAME" "$VENV" "$PINS" >&2
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    # PIP_FIND_LINKS is emptied so that a local wheel folder never replaces what PyPI serves.
    PIP_FIND_LINKS= timeout 600 "$VENV/bin/python" -m pip install --quiet \
        --disable-pip-version-check $PINS >&2
    touch "$VENV/.complete"
fi

printf '%s\n' "$VENV"
