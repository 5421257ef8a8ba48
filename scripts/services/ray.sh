#!/usr/bin/env bash
# A Ray head for the Ray tests, shared by the whole test run (Debian 12, root, no systemd).
#
#   bash scripts/services/ray.sh start     create the namespace, start the head and the bridge, wait for the Jobs API
#   bash scripts/services/ray.sh stop      stop every process of the namespace (by pid), the bridge, the namespace
#   bash scripts/services/ray.sh status    exit 0 if the head and the bridge run and the Jobs API answers
#   bash scripts/services/ray.sh env       `export` lines for the tests: eval "$(bash scripts/services/ray.sh env)"
#
# Ray binds the machine's routable address even when asked for 127.0.0.1, so the head runs in a network namespace
# of its own that has only loopback (`ip netns add nemorun-ray`, entered with `nsenter --net=`). The host reaches its
# dashboard (the Jobs API, 127.0.0.1:8265 in the namespace) through scripts/services/unix_bridge.py: a listener on
# host 127.0.0.1:${NEMORUN_RAY_PORT:-28265} -> a socket file -> 127.0.0.1:8265 in the namespace.
#
# Never `ray stop`: it stops every Ray process on the machine, in every namespace. Stopping here kills the
# namespace's processes by pid (`ip netns pids`), which are only ours. State under
# ${NEMORUN_SERVICES_DIR:-/tmp/nemorun-services}/ray (Ray's --temp-dir, logs, pid files, the socket).
# Start budget: ~20 s idle, 45 s or more on two loaded cores; readiness waits up to NEMORUN_RAY_START_S (300 s).
set -euo pipefail
SERVICE=ray
# shellcheck source=scripts/services/lib.sh
source "$(dirname "$0")/lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
NETNS=${NEMORUN_RAY_NETNS:-nemorun-ray}
PORT=${NEMORUN_RAY_PORT:-28265}
# The environment that has ray[default] and nemorun (scripts/setup_envs.sh): jobs run `python` from its PATH.
VENV=${NEMORUN_RAY_VENV:-$root/.venvs/prefect}
START_S=${NEMORUN_RAY_START_S:-300}
DIR=$NEMORUN_SERVICES_DIR/ray
SOCK=$DIR/dashboard.sock
HEAD_PID=$DIR/head.pid
INNER_PID=$DIR/bridge-inner.pid
OUTER_PID=$DIR/bridge-outer.pid

in_ns() { nsenter --net="/run/netns/$NETNS" "$@"; }

answers() {
    "$VENV/bin/python" - "$PORT" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/version", timeout=5) as r:
    assert r.status == 200
EOF
}

# The Jobs API itself, through the bridge, with Ray's own client: what the tests use.
jobs_api_answers() {
    "$VENV/bin/python" -c "from ray.job_submission import JobSubmissionClient as C; C('http://127.0.0.1:$PORT').list_jobs()" \
        >/dev/null 2>&1
}

# The namespace's live processes (zombies left to a busy init are listed by `ip netns pids` too, and are no
# longer anything to stop).
ns_pids() {
    local p out=()
    for p in $(ip netns pids "$NETNS" 2>/dev/null || true); do
        running "$p" && out+=("$p")
    done
    echo "${out[*]}"
}

stop() {
    local pids p i
    if ip netns list | grep -qw "$NETNS"; then
        pids=$(ns_pids)
        if [[ -n "$pids" ]]; then
            # shellcheck disable=SC2086
            kill $pids 2>/dev/null || true
            for ((i = 0; i < 150; i++)); do
                pids=$(ns_pids)
                [[ -z "$pids" ]] && break
                # `ray start --block` stays after its processes ended on TERM: alone, it has nothing left to stop.
                [[ -s "$HEAD_PID" && "$pids" == "$(cat "$HEAD_PID")" ]] && break
                sleep 0.1
            done
            pids=$(ns_pids)
            if [[ -n "$pids" && "$pids" != "$(cat "$HEAD_PID" 2>/dev/null)" ]]; then
                log "namespace processes ignored TERM for 15 s: KILL $pids"
            fi
            if [[ -n "$pids" ]]; then
                # shellcheck disable=SC2086
                kill -9 $pids 2>/dev/null || true
                sleep 0.5
            fi
        fi
        ip netns del "$NETNS" 2>/dev/null || true
    fi
    rm -f "$HEAD_PID" "$INNER_PID"
    stop_pid "$OUTER_PID"
    rm -f "$SOCK"
}

start() {
    local t0
    t0=$(now)
    [[ -x "$VENV/bin/ray" ]] || die "no ray in $VENV: run \`bash scripts/setup_envs.sh\` (it installs the ray extra)"
    command -v nsenter >/dev/null || die "nsenter (util-linux) is missing"
    mkdir -p "$DIR"
    chmod 700 "$DIR"

    if ! ip netns list | grep -qw "$NETNS"; then
        ip netns add "$NETNS"
    fi
    ip -n "$NETNS" link set lo up

    if ! alive "$HEAD_PID"; then
        # A head that died leaves processes (raylet, workers) in the namespace: clear them before a new one.
        local left
        left=$(ns_pids)
        # shellcheck disable=SC2086
        [[ -z "$left" ]] || kill -9 $left 2>/dev/null || true
        rm -f "$INNER_PID"
        # --block keeps `ray start` in the foreground as the parent of the head's processes; nsenter execs it, so
        # the pid file holds ray start's own pid. PATH: jobs' entrypoints get the raylet's PATH (the venv's python).
        spawn "$HEAD_PID" "$DIR/head.out" nsenter --net="/run/netns/$NETNS" \
            env PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin" RAY_USAGE_STATS_ENABLED=0 \
            "$VENV/bin/ray" start --head --block --num-cpus=2 --disable-usage-stats \
            --node-ip-address=127.0.0.1 --dashboard-host=127.0.0.1 --dashboard-port=8265 \
            --temp-dir="$DIR/t"
    fi
    if ! alive "$INNER_PID"; then
        spawn "$INNER_PID" "$DIR/bridge-inner.out" nsenter --net="/run/netns/$NETNS" \
            "$VENV/bin/python" "$root/scripts/services/unix_bridge.py" unix-to-tcp --unix "$SOCK" \
            --connect 127.0.0.1:8265
    fi
    if ! alive "$OUTER_PID"; then
        (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && die "127.0.0.1:$PORT is taken by another process: set NEMORUN_RAY_PORT"
        spawn "$OUTER_PID" "$DIR/bridge-outer.out" "$VENV/bin/python" "$root/scripts/services/unix_bridge.py" \
            tcp-to-unix --listen "127.0.0.1:$PORT" --unix "$SOCK"
    fi

    local i ok=0
    for ((i = 0; i < START_S; i++)); do
        alive "$HEAD_PID" || die "the Ray head exited; see $DIR/head.out and $DIR/t/session_latest/logs"
        if answers && jobs_api_answers; then
            ok=1
            break
        fi
        sleep 1
    done
    [[ $ok == 1 ]] || die "the Ray Jobs API did not answer through 127.0.0.1:$PORT in $START_S s; see $DIR/head.out"
    {
        printf 'export NEMORUN_TEST_RAY_ADDRESS=%q\n' "http://127.0.0.1:$PORT"
        printf 'export NEMORUN_TEST_RAY_NETNS=%q\n' "$NETNS"
        printf 'export NEMORUN_TEST_RAY_PYTHON=%q\n' "$VENV/bin/python"
    } >"$DIR/env"
    log "ready: Jobs API on http://127.0.0.1:$PORT (head in namespace $NETNS) in $(elapsed "$t0") s"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) alive "$HEAD_PID" && alive "$INNER_PID" && alive "$OUTER_PID" && jobs_api_answers ;;
    env) print_env "$DIR/env" ;;
    *) die "usage: $0 [start|stop|status|env]" ;;
esac
