#!/usr/bin/env bash
# Runs the whole test suite. On a fresh machine it first creates .venv and installs
# requirements-dev.txt. MariaDB, Redis and Chromium are used when present (see README);
# with CI=true they are required and a missing one fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements-dev.sha256
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -qq --upgrade pip
  .venv/bin/python -m pip install -qq -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
exec .venv/bin/python -m pytest "$@"
