#!/usr/bin/env bash
# Reference environment for the benchmark: the public NeMo Run 0.11.1 in .bench/nemo-run-venv, for
# bench/reference_nemo_run.py to measure. Idempotent: skips the install when the pinned versions are present.
#
# leptonai is pinned because nemo_run 0.11.1 imports it at import time and newer leptonai releases break
# that import.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.bench/nemo-run-venv
pins=(nemo-run==0.11.1 leptonai==0.26.7)

if command -v uv >/dev/null 2>&1; then
    uv=(uv)
else
    python3 -m pip install --quiet uv
    uv=(python3 -m uv)
fi

t=$(date +%s)
if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" - <<'PY' 2>/dev/null; then
import importlib.metadata as m
assert m.version("nemo-run") == "0.11.1" and m.version("leptonai") == "0.26.7"
PY
    echo "[setup_reference] $venv already has ${pins[*]}" >&2
    exit 0
fi
"${uv[@]}" venv --quiet --clear --seed --python 3.11 "$venv"
"${uv[@]}" pip install --quiet --compile-bytecode --python "$venv/bin/python" "${pins[@]}"
"$venv/bin/python" -c 'import nemo_run' # fail here, not in the benchmark, if the reference cannot import
echo "[setup_reference] $venv ready in $(($(date +%s) - t)) s" >&2
