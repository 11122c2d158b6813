#!/usr/bin/env bash
# Runs the test suite in the project's venv (made by scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "test: run scripts/setup.sh first" >&2; exit 1; }
exec .venv/bin/python -m pytest -q "$@"
