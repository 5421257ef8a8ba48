# shellcheck shell=bash
# Helpers shared by scripts/services/*.sh (sourced, not run). Debian 12, run as root, no systemd: every daemon is
# started in the foreground under setsid (detached from the caller's session, so it outlives test.sh and its
# terminal) with a pid file we write ourselves, and stopped by that pid only.

# All service state (keys, configs, logs, pid files, databases) lives under one folder; nothing in the repo.
NEMORUN_SERVICES_DIR=${NEMORUN_SERVICES_DIR:-/tmp/nemorun-services}
# The unprivileged account tests log in as over SSH and run Slurm jobs as: the executor must work for a normal
# cluster user, not only for root.
CI_USER=nemorun-ci
export DEBIAN_FRONTEND=noninteractive

log() { echo "[${SERVICE:-services}] $*" >&2; }
die() {
    echo "[${SERVICE:-services}] ERROR: $*" >&2
    exit 1
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# running PID: the process exists and is not a zombie (a zombie keeps its pid until reaped, and daemons whose parent
# is this VM's init are not always reaped promptly).
running() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ -n "$st" && "${st:0:1}" != Z ]]
}
alive() { [[ -s "$1" ]] && running "$(cat "$1")"; }

# stop_pid PIDFILE [SECONDS]: TERM, wait (default 10 s), then KILL. Only the recorded pid: never by name, never a
# process group (sshd's per-connection children must survive a restart of the listener).
stop_pid() {
    local pidfile=$1 wait_s=${2:-10} p i
    if alive "$pidfile"; then
        p=$(cat "$pidfile")
        kill "$p" 2>/dev/null || true
        for ((i = 0; i < wait_s * 10; i++)); do
            running "$p" || break
            sleep 0.1
        done
        if running "$p"; then
            log "pid $p ($pidfile) ignored TERM for ${wait_s} s: KILL"
            kill -9 "$p" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

# spawn PIDFILE LOGFILE CMD...: start a foreground daemon detached from this shell, record its pid.
# setsid does not fork here (a background job is never a process-group leader), so $! is the daemon's own pid.
spawn() {
    local pidfile=$1 logfile=$2
    shift 2
    setsid "$@" </dev/null >>"$logfile" 2>&1 &
    echo $! >"$pidfile"
}

# wait_until SECONDS CMD...: poll CMD every 0.1 s; non-zero if it never succeeded.
wait_until() {
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# apt_install PKG...: install the packages that are missing (a no-op costing a dpkg-query when all are there).
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [[ ${#missing[@]} -gt 0 ]] || return 0
    log "installing ${missing[*]}"
    (
        # Without systemd, maintainer scripts would still start the system services through invoke-rc.d: sshd on
        # 0.0.0.0:22, MariaDB on :3306, munged. We run our own instances, on loopback only, so forbid that for
        # the length of the install (the standard policy-rc.d mechanism; left alone when the machine has one).
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        fi
        # Wait for dpkg's lock instead of failing when another script installs at the same time.
        local apt=(apt-get -q -y -o DPkg::Lock::Timeout=600 --no-install-recommends)
        # Try the existing package lists first: apt-get update costs seconds and is only needed when they are
        # missing or stale (then the install fails fast, with "Unable to locate package" or a 404).
        if ! "${apt[@]}" install "${missing[@]}" >/dev/null 2>&1; then
            "${apt[@]}" update >/dev/null
            "${apt[@]}" install "${missing[@]}" >/dev/null
        fi
    ) || die "apt-get install ${missing[*]} failed"
}

# ensure_ci_user: the unprivileged test account, with a home directory and bash.
ensure_ci_user() {
    if ! id "$CI_USER" >/dev/null 2>&1; then
        useradd --create-home --shell /bin/bash "$CI_USER"
    fi
    # useradd leaves the password field '!' (locked); with UsePAM no, sshd refuses every login of a locked account,
    # keys included. '*' means "no password can match" without locking the account.
    if [[ "$(getent shadow "$CI_USER" | cut -d: -f2)" != '*' ]]; then
        usermod -p '*' "$CI_USER"
    fi
}

ci_home() { getent passwd "$CI_USER" | cut -d: -f6; }

# as_ci_user CMD...: run CMD as the test account with its own login environment (HOME, USER, PATH).
as_ci_user() { runuser -u "$CI_USER" -- env -i HOME="$(ci_home)" USER="$CI_USER" PATH=/usr/local/bin:/usr/bin:/bin "$@"; }

# print_env FILE: the `env` subcommand: the export lines `start` wrote.
print_env() {
    [[ -s "$1" ]] || die "not started: run \`bash $0 start\` first"
    cat "$1"
}
