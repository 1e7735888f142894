#!/usr/bin/env bash
# Makes, ONCE, a virtual environment with the real validators of the CI files `gpu-doctor init`
# writes (tests/exec_init.rs), and prints its folder:
#
#   check-jsonschema  validates a GitHub Actions workflow and GitLab CI files against the
#                     schemas it vendors (vendor.github-workflows, vendor.gitlab-ci: SchemaStore's)
#   pre-commit        `validate-config` for .pre-commit-config.yaml, and runs the hook
#
# All from PyPI, at the versions pinned below, by tests/support/pinned-venv.sh. Cache:
# ${GPU_DOCTOR_TEST_CACHE:-$HOME/.cache/gpu-doctor-tests}/ci-validators-<pins hash> (CI should
# cache it); a warm cache needs no network. Needs python3 with the venv module and PyPI on a
# cold cache.
set -euo pipefail
exec "$(dirname "$0")/pinned-venv.sh" ci-validators check-jsonschema==0.39.0 pre-commit==4.6.2
