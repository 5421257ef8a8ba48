#!/usr/bin/env bash
# Create (or bring up to date) the two test environments:
#   .venvs/prefect  nemorun[dev,prefect,ssh,docker,ray] + torch (CPU)   under constraints/prefect.txt
#   .venvs/airflow  nemorun[dev,airflow,ssh,docker,ray]                  under constraints/airflow.txt
# plus, in both, the test fixture tests/fixtures/nemorun_echo_backend (a third-party executor backend).
# Prefect 3 and Airflow 3 cannot share one environment (their fastapi/uvicorn ranges break each other at run
# time), so each side gets its own venv with fully pinned constraints.
#
# Idempotent: a second run re-checks both venvs with uv (about a second each) and skips torch when the right
# build is already there. Works from a fresh clone: the only thing it needs beforehand is python3 (3.11).
#
# Usage: bash scripts/setup_envs.sh [prefect|airflow ...]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

TORCH_VERSION=2.13.0
# The CPU torch wheel is shipped in /opt/wheels on this kind of machine; pip finds it there (uv does not read
# pip's find-links configuration, which is why torch goes through pip).
WHEELS_DIR=${NEMORUN_WHEELS_DIR:-/opt/wheels}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "[setup_envs] $*" >&2; }

t_all=$(now)

# uv: use the one on PATH, else install it into the user's python3 and call it as a module (a freshly
# pip-installed console script may not be on PATH yet, e.g. behind pyenv shims).
if command -v uv >/dev/null 2>&1; then
    uv=(uv)
else
    log "uv not found: installing it with python3 -m pip"
    python3 -m pip install --quiet uv
    uv=(python3 -m uv)
fi

# make_venv DIR: create a seeded (pip included, for torch) Python 3.11 venv unless a working one is there.
make_venv() {
    local dir=$1
    if [[ -x "$dir/bin/python" ]] && "$dir/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
        return 0
    fi
    log "creating $dir"
    # --clear: a half-built or wrong-python venv from an interrupted run is replaced, not reused.
    "${uv[@]}" venv --quiet --clear --seed --python 3.11 "$dir"
}

# A third-party executor backend (its own distribution, registered through the `nemorun.executors` entry point):
# the tests prove with it that a backend from another package works everywhere without any edit to nemorun.
ECHO_BACKEND=tests/fixtures/nemorun_echo_backend

# install_side SIDE EXTRAS: editable install of the project with EXTRAS, and of the echo backend, under the
# side's constraints.
install_side() {
    local side=$1 extras=$2
    local venv="$root/.venvs/$side" t
    t=$(now)
    make_venv "$venv"
    # uv only touches what is missing or differs from the pins, so this is the whole idempotency story.
    # --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set, nothing would ever be cached and every job
    # process would compile its imports from source (seconds for Fiddle's libcst).
    # The echo backend goes in the same resolution: its dependency on nemorun is the editable project itself,
    # and its build backend (hatchling) is the one the project already builds with, so no new download.
    "${uv[@]}" pip install --quiet --compile-bytecode --python "$venv/bin/python" \
        -c "constraints/$side.txt" -e ".[$extras]" -e "$ECHO_BACKEND"
    # Both are editable installs: compile them too, for the same reason as --compile-bytecode.
    "$venv/bin/python" -m compileall -q nemorun_core nemorun_prefect nemorun_airflow "$ECHO_BACKEND" >/dev/null
    log "$side: project + [$extras] ready in $(elapsed "$t") s"
}

install_torch() {
    local venv="$root/.venvs/prefect" t have
    t=$(now)
    # numpy rides along: without it torch warns "Failed to initialize NumPy" on every import.
    have=$("$venv/bin/python" -c 'import importlib.metadata as m; m.version("numpy"); print(m.version("torch"))' \
        2>/dev/null || true)
    if [[ "$have" == "$TORCH_VERSION" || "$have" == "$TORCH_VERSION+"* ]]; then
        log "prefect: torch $have already installed"
        return 0
    fi
    local find_links=()
    [[ -d "$WHEELS_DIR" ]] && find_links=(--find-links "$WHEELS_DIR")
    log "prefect: installing torch==$TORCH_VERSION with pip (CPU wheel from $WHEELS_DIR)"
    # The constraints pin torch==2.13.0+cpu and its dependencies (sympy, networkx, ...), so pip picks the
    # local CPU build and cannot move any package that the uv install above pinned.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${find_links[@]}" \
        -c constraints/prefect.txt "torch==$TORCH_VERSION" numpy
    log "prefect: torch installed in $(elapsed "$t") s"
}

sides=("$@")
[[ ${#sides[@]} -eq 0 ]] && sides=(prefect airflow)
for side in "${sides[@]}"; do
    case "$side" in
        prefect)
            install_side prefect dev,prefect,ssh,docker,ray
            install_torch
            ;;
        airflow)
            install_side airflow dev,airflow,ssh,docker,ray
            ;;
        *)
            echo "setup_envs.sh: unknown side '$side' (expected prefect or airflow)" >&2
            exit 2
            ;;
    esac
done

log "done in $(elapsed "$t_all") s"
