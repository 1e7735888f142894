#!/usr/bin/env bash
# Fetches, ONCE, the real validators that tests/formats.rs checks gpu-doctor's CI formats with,
# and prints the folder that holds them:
#
#   venv/           python3 venv with jsonschema and xmlschema (PyPI)
#   junit-10.xsd    the Jenkins/Surefire JUnit schema (jenkinsci/xunit-plugin, MIT), as pytest
#                   ships it for its own junitxml tests: taken from the pytest sdist on PyPI
#                   (pytest-$PYTEST_VERSION/testing/example_scripts/junit-10.xsd)
#   sarif-2.1.0.json  the SARIF 2.1.0 JSON schema as Microsoft's SARIF SDK ships it: taken from
#                   the npm package @microsoft/sarif-multitool-linux@$SARIF_MULTITOOL_VERSION
#                   (package/sarif-2.1.0.json)
#
# Nothing is vendored: both schemas come from the registries and are checked against the
# sha256 recorded below, so a changed upstream file fails loudly instead of silently testing
# against something else. Cache: ${GPU_DOCTOR_TEST_CACHE:-$HOME/.cache/gpu-doctor-tests}/formats
# (CI should cache it); a warm cache needs no network.
# Needs: python3 with venv, pip access to PyPI, npm access to the npm registry on a cold cache.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
PYTEST_VERSION=8.3.5
SARIF_MULTITOOL_VERSION=5.7.0
XSD_SHA256=a1a816f58d1bf95ebabf371994df0b9246dee66ea9572fbec4f9296f1b2c0ff6
SARIF_SHA256=1c49a0f2b60444c71bb14878e21e0d882198eff4c539861b133093ad89ed798c
CACHE="${GPU_DOCTOR_TEST_CACHE:-$HOME/.cache/gpu-doctor-tests}/formats"

log() { printf 'format-validators.sh: %s\n' "$*" >&2; }

check_sum() { # FILE SHA256
    local got
    got=$(sha256sum "$1" | cut -d' ' -f1)
    if [ "$got" != "$2" ]; then
        log "$1 has sha256 $got, expected $2"
        rm -f "$1"
        exit 1
    fi
}

mkdir -p "$CACHE"
# One preparer at a time: cargo runs tests in parallel.
exec 9>"$CACHE/.lock"
flock -w 600 9

if [ ! -x "$CACHE/venv/bin/python" ] || ! "$CACHE/venv/bin/python" -c 'import jsonschema, xmlschema' 2>/dev/null; then
    log "creating $CACHE/venv (jsonschema, xmlschema from PyPI)"
    rm -rf "$CACHE/venv"
    "$PYTHON" -m venv "$CACHE/venv"
    timeout 300 "$CACHE/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        'jsonschema>=4.18,<5' 'xmlschema>=3,<5' >&2
fi

if [ ! -f "$CACHE/junit-10.xsd" ]; then
    log "fetching junit-10.xsd from the pytest $PYTEST_VERSION sdist (PyPI)"
    tmp=$(mktemp -d)
    timeout 300 "$CACHE/venv/bin/python" -m pip download --quiet --disable-pip-version-check \
        --no-deps --no-binary :all: "pytest==$PYTEST_VERSION" -d "$tmp" >&2
    tar xzf "$tmp/pytest-$PYTEST_VERSION.tar.gz" -C "$tmp" \
        "pytest-$PYTEST_VERSION/testing/example_scripts/junit-10.xsd"
    mv "$tmp/pytest-$PYTEST_VERSION/testing/example_scripts/junit-10.xsd" "$CACHE/junit-10.xsd.part"
    rm -rf "$tmp"
    check_sum "$CACHE/junit-10.xsd.part" "$XSD_SHA256"
    mv "$CACHE/junit-10.xsd.part" "$CACHE/junit-10.xsd"
fi

if [ ! -f "$CACHE/sarif-2.1.0.json" ]; then
    log "fetching sarif-2.1.0.json from @microsoft/sarif-multitool-linux@$SARIF_MULTITOOL_VERSION (npm, ~45 MB)"
    tmp=$(mktemp -d)
    (cd "$tmp" && timeout 600 npm pack --silent "@microsoft/sarif-multitool-linux@$SARIF_MULTITOOL_VERSION" >/dev/null)
    tar xzf "$tmp"/microsoft-sarif-multitool-linux-*.tgz -C "$tmp" package/sarif-2.1.0.json
    mv "$tmp/package/sarif-2.1.0.json" "$CACHE/sarif-2.1.0.json.part"
    rm -rf "$tmp"
    check_sum "$CACHE/sarif-2.1.0.json.part" "$SARIF_SHA256"
    mv "$CACHE/sarif-2.1.0.json.part" "$CACHE/sarif-2.1.0.json"
fi

printf '%s\n' "$CACHE"
