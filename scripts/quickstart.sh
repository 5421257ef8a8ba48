#!/usr/bin/env bash
# THE main-job command: a plain user install of nemorun (no extras: no orchestrator, no backend SDK) in .venv,
# then examples/quickstart.py, which runs a small experiment on the LocalExecutor.
#
# Idempotent: a second run only re-checks .venv (about a second) before running the example.
# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set, an uncompiled venv would recompile Fiddle's imports in
# every job process (seconds each).
# Extra arguments go to examples/quickstart.py. NEMORUN_HOME is honoured (default ~/.nemorun).
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v uv >/dev/null 2>&1; then
    uv=(uv)
else
    # Same bootstrap as scripts/setup_envs.sh: a fresh machine has python3 and pip, nothing else.
    python3 -m pip install --quiet uv
    uv=(python3 -m uv)
fi

if ! [[ -x .venv/bin/python ]] || ! .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
    "${uv[@]}" venv --quiet --clear --seed --python 3.11 .venv
fi
# The Prefect-side constraints pin every core dependency too; using them keeps the user install on the same
# versions the test suite ran against (the constraints only apply to packages that actually get installed).
"${uv[@]}" pip install --quiet --compile-bytecode --python .venv/bin/python -c constraints/prefect.txt -e .

.venv/bin/python -m compileall -q nemorun_core >/dev/null
exec .venv/bin/python examples/quickstart.py "$@"
