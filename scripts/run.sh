#!/usr/bin/env bash
# Runs the server on the embedded defaults (SQLite under instance/, in-process bus and
# counters), with demo users, and prints the URL to open. First run: creates .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -qq --upgrade pip
  .venv/bin/python -m pip install -qq -r requirements.txt
  echo "$want" > "$stamp"
fi
exec .venv/bin/python -m chat.devserver
