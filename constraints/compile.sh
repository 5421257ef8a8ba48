#!/usr/bin/env bash
# Regenerate the fully pinned constraint files constraints/prefect.txt and constraints/airflow.txt from their
# *.in inputs. Prefect 3 and Airflow 3 cannot share one environment (fastapi/uvicorn ranges), so each side is
# resolved on its own. Run from anywhere; needs uv and, for torch's +cpu wheel, /opt/wheels.
#
# Usage: bash constraints/compile.sh [extra uv pip compile args, e.g. --upgrade]
set -euo pipefail
cd "$(dirname "$0")/.."

# Linux x86_64 / CPython 3.11 is the machine the tests and CI run on; name it so that a resolve started
# elsewhere gives the same pins.
common=(--python-version 3.11 --python-platform x86_64-manylinux_2_28)

compile_side() {
    local side=$1
    shift
    local cmd=(uv pip compile "${common[@]}" "$@" "constraints/${side}.in" -o "constraints/${side}.txt")
    echo "+ ${cmd[*]}" >&2
    # --custom-compile-command makes uv's own header name this script instead of a bare uv call.
    "${cmd[@]}" --quiet --custom-compile-command "bash constraints/compile.sh"
    local body
    body=$(cat "constraints/${side}.txt")
    {
        echo "# Fully pinned constraints for the ${side} side (.venvs/${side}); used with 'uv pip install -c'."
        echo "# Generated from constraints/${side}.in by constraints/compile.sh, which ran exactly:"
        echo "#    ${cmd[*]}"
        echo "# Do not edit by hand: change constraints/${side}.in and re-run 'bash constraints/compile.sh'."
        echo "$body"
    } > "constraints/${side}.txt"
}

# torch==2.13.0+cpu exists only as a local wheel in /opt/wheels (pip's find-links); uv needs to be told.
compile_side prefect --find-links /opt/wheels "$@"
compile_side airflow "$@"
