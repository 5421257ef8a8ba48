#!/usr/bin/env bash
# THE test command (CI runs it through .ci/run).
#
#   1. scripts/setup_envs.sh brings .venvs/prefect and .venvs/airflow up to date (fast when they already are);
#   2. the services that integration tests talk to are started (see the marked section below);
#   3. pytest runs twice, because Prefect 3 and Airflow 3 cannot share one environment:
#        prefect side: tests/unit tests/integration tests/contract tests/ray tests/prefect with .venvs/prefect/bin/python
#        airflow side: tests/airflow                                 with .venvs/airflow/bin/python
#
# Extra arguments go to both pytest runs (e.g. `-x`, `-k name`, `-m "not slurm"`). To run one side only:
#   NEMORUN_TEST_SIDES=prefect bash scripts/test.sh tests/unit/test_foo.py
# Exit status: 0 only if every side that ran passed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

sides=${NEMORUN_TEST_SIDES:-prefect airflow}

bash scripts/setup_envs.sh

# Every run gets a fresh, throw-away state directory: tests never read or write the user's ~/.nemorun.
# Set NEMORUN_KEEP_TEST_HOME=1 to keep it for post-mortem.
test_home=$(mktemp -d "${TMPDIR:-/tmp}/nemorun-test.XXXXXX")
started_services=() # the services this run started, stopped again by cleanup()
now() { date +%s; }
# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
    local rc=$?
    # >>> services: stop what start_services started, before removing the state dir. Services that were already
    # up when this run began (started by hand, or by a concurrent run) are left running.
    local svc
    for svc in "${started_services[@]}"; do
        bash "scripts/services/$svc.sh" stop || echo "[test.sh] stopping $svc failed" >&2
    done
    if [[ "${NEMORUN_KEEP_TEST_HOME:-0}" == 1 ]]; then
        echo "[test.sh] test state kept in $test_home" >&2
    else
        rm -rf "$test_home"
    fi
    exit "$rc"
}
trap cleanup EXIT

# ============================================================================================================
# >>> services: start-up of the real services the integration tests use.
#     scripts/services/sshd.sh (OpenSSH on 127.0.0.1:${NEMORUN_SSHD_PORT:-2222}), scripts/services/slurm.sh
#     (two-node Slurm + slurmdbd, reached over that sshd as the user nemorun-ci) and scripts/services/docker.sh
#     (dockerd on its own socket, --bridge=none, images built locally), scripts/services/ray.sh (a Ray head in a
#     loopback-only network namespace, its Jobs API bridged to host 127.0.0.1), scripts/services/browser.sh (Debian's
#     chromium for the UI form checks, tests/*/test_ui_forms.py). Each script is idempotent (`start` on a
#     running service only checks it), prints the NEMORUN_TEST_* variables the tests read with `env`
#     (tests/integration/services.py), and is stopped in cleanup() above.
#     State: ${NEMORUN_SERVICES_DIR:-/tmp/nemorun-services}.
#     CI must FAIL, not skip, when a service cannot start: do not swallow their exit status.
start_services() {
    local svc env_lines t
    for svc in sshd slurm docker ray browser; do
        bash "scripts/services/$svc.sh" status || started_services+=("$svc")
        t=$(now)
        # Not `|| true`, and not inside `if`: a service that cannot start fails the run (set -e) with its message.
        bash "scripts/services/$svc.sh" start
        # The assignment carries env's exit status (eval "$(...)" would hide it).
        env_lines=$(bash "scripts/services/$svc.sh" env)
        eval "$env_lines"
        echo "[test.sh] $svc ready in $(($(now) - t)) s" >&2
    done
}
start_services
# <<< services
# ============================================================================================================

summary=()
failed=0

# run_side NAME PYTHON PATH...: run pytest for one side; record its outcome in summary/failed.
run_side() {
    local name=$1 python=$2
    shift 2
    local paths=() p
    # Test folders appear as issues land; pytest errors on a path that does not exist, so pass only real ones.
    for p in "$@"; do
        [[ -e "$p" ]] && paths+=("$p")
    done
    if [[ ${#paths[@]} -eq 0 ]]; then
        summary+=("$name: no test folders")
        return 0
    fi
    local home="$test_home/$name" t rc=0
    mkdir -p "$home"
    t=$(now)
    echo "[test.sh] $name side: $python -m pytest ${paths[*]} ${extra_args[*]}" >&2
    NEMORUN_HOME="$home/nemorun" "$python" -m pytest "${paths[@]}" "${extra_args[@]}" || rc=$?
    # pytest exit 5 = nothing collected: fine when the caller narrowed the run with arguments (the tests it
    # picked may all live on the other side), a failure for the full suite.
    if [[ $rc -eq 5 && ${#extra_args[@]} -gt 0 ]]; then
        summary+=("$name: nothing selected ($(($(now) - t)) s)")
        return 0
    fi
    if [[ $rc -eq 0 ]]; then
        summary+=("$name: passed ($(($(now) - t)) s)")
    else
        summary+=("$name: FAILED rc=$rc ($(($(now) - t)) s)")
        failed=1
    fi
}

extra_args=("$@")
t_all=$(now)
for side in $sides; do
    case "$side" in
        prefect) run_side prefect "$root/.venvs/prefect/bin/python" tests/unit tests/integration tests/contract tests/ray tests/prefect ;;
        airflow) run_side airflow "$root/.venvs/airflow/bin/python" tests/airflow ;;
        *)
            echo "test.sh: unknown side '$side' in NEMORUN_TEST_SIDES (expected prefect and/or airflow)" >&2
            exit 2
            ;;
    esac
done

status=PASSED
[[ $failed -eq 0 ]] || status=FAILED
# One line, easy to grep in CI logs.
printf -v joined '%s; ' "${summary[@]}"
echo "[test.sh] $status in $(($(now) - t_all)) s: ${joined%; }"
exit "$failed"
