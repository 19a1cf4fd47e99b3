#!/usr/bin/env bash
# Create an environment, install semguard with its test, export and tensorboard extras, run the default tests.
# Usage: bash scripts/test.sh [pytest args...]   (VENV=path to choose the environment)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install --quiet -e '.[test,export,tensorboard]'
exec "$VENV/bin/python" -m pytest "$@"
