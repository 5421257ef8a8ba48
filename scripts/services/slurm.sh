#!/usr/bin/env bash
# A real Slurm cluster on this machine for the Slurm executor tests (Debian 12 slurm-wlm 22.05, root, no systemd).
#
#   bash scripts/services/slurm.sh start    install if missing, write configs, start what is not running, wait
#                                           until both nodes are idle and sacct answers
#   bash scripts/services/slurm.sh stop     cancel leftover jobs, stop every daemon this script started
#   bash scripts/services/slurm.sh status   exit 0 if slurmctld is up
#   bash scripts/services/slurm.sh env      `export` lines for the tests: eval "$(bash scripts/services/slurm.sh env)"
#
# What it runs (all on loopback, state under ${NEMORUN_SERVICES_DIR:-/tmp/nemorun-services}/slurm):
#   munged                 authentication between Slurm commands and daemons
#   mariadbd               a private MariaDB on 127.0.0.1:${NEMORUN_SLURM_DB_PORT:-3307}, for slurmdbd only
#   slurmdbd               accounting on 127.0.0.1:6819, so `sacct` reports finished jobs like on a real cluster
#   slurmctld              the controller on 127.0.0.1:6817
#   slurmd x2              virtual nodes node1, node2 (ports 17001-17002) on this one host: multi-node srun and
#                          heterogeneous jobs need two nodes
# Tests reach the cluster the way users do: over SSH (scripts/services/sshd.sh) as the unprivileged user
# nemorun-ci, who has an accounting association (cluster ci, account nemorun) and a job directory in their home.
# Clients read the standard /etc/slurm/slurm.conf (an SSH session has no SLURM_CONF), so this script owns that file
# and the cluster is one per machine.
set -euo pipefail
SERVICE=slurm
# shellcheck source=scripts/services/lib.sh
source "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIR=$NEMORUN_SERVICES_DIR/slurm
DB_PORT=${NEMORUN_SLURM_DB_PORT:-3307}
CLUSTER=ci
ACCOUNT=nemorun
NODES=(node1 node2)
# The python that jobs run with: it must have the project installed and be runnable by the cluster user. The test
# venv is the simplest such python; its path depends on where the repo was cloned, hence computed, not fixed.
PYTHON=${NEMORUN_TEST_SLURM_PYTHON:-$ROOT/.venvs/prefect/bin/python}
JOB_DIR=/home/$CI_USER/nemorun-jobs

listening() { (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

# ---- stop ----------------------------------------------------------------------------------------------------
stop_slurm_daemons() { # slurmd(s) + slurmctld: what a slurm.conf change needs restarted
    local n
    for n in "${NODES[@]}"; do stop_pid "$DIR/slurmd-$n.pid"; done
    stop_pid "$DIR/slurmctld.pid"
}

stop() {
    if alive "$DIR/slurmctld.pid"; then
        # Jobs run under slurmstepd, which outlives slurmd: cancel them so nothing from a test run lingers.
        local ids
        ids=$(squeue -h -o %i 2>/dev/null || true)
        if [[ -n "$ids" ]]; then
            log "cancelling leftover jobs: $(echo "$ids" | tr '\n' ' ')"
            # shellcheck disable=SC2086  # one job id per word
            scancel $ids 2>/dev/null || true
            queue_empty() { [[ -z "$(squeue -h -o %i 2>/dev/null)" ]]; }
            wait_until 15 queue_empty || log "jobs still listed after 15 s"
        fi
    fi
    stop_slurm_daemons
    stop_pid "$DIR/slurmdbd.pid"
    stop_pid "$DIR/mysqld.pid" 60 # InnoDB flushes on shutdown: give it time rather than KILL
    stop_pid "$DIR/munged.pid"
}

# ---- start ---------------------------------------------------------------------------------------------------
start_munge() {
    # Debian's postinst creates the key; make one if an image stripped it.
    if [[ ! -s /etc/munge/munge.key ]]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
    chmod 0700 /etc/munge
    chmod 0400 /etc/munge/munge.key
    chmod 0755 /run/munge # users' commands (sbatch over SSH) talk to munged through the socket in here
    munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
    if ! munge_ok; then
        # -F: foreground (its daemon mode double-forks and leaves a zombie behind under this VM's init).
        spawn "$DIR/munged.pid" "$DIR/log/munged.out" setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F
        wait_until 10 munge_ok || die "munged did not start; see $DIR/log/munged.out"
    fi
}

sql() { mariadb --no-defaults -uroot --socket="$DIR/mysql-run/mysqld.sock" -e "$1"; }

start_mariadb() {
    local db=$DIR/mysql
    if [[ ! -d "$db/mysql" ]]; then
        mkdir -p "$db"
        chown mysql:mysql "$db"
        # root authenticates through the unix socket: no database password for root anywhere.
        mariadb-install-db --user=mysql --datadir="$db" --auth-root-authentication-method=socket --skip-test-db \
            >"$DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
    fi
    if ! alive "$DIR/mysqld.pid"; then
        listening "$DB_PORT" && die "127.0.0.1:$DB_PORT is taken by another process: set NEMORUN_SLURM_DB_PORT"
        mkdir -p "$DIR/mysql-run"
        chown mysql:mysql "$DIR/mysql-run"
        # --no-defaults: ignore /etc/mysql (a system MariaDB's settings, port and socket are not ours).
        spawn "$DIR/mysqld.pid" "$DIR/log/mariadb.out" /usr/sbin/mariadbd --no-defaults --user=mysql \
            --datadir="$db" --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
            --socket="$DIR/mysql-run/mysqld.sock" --pid-file="$DIR/mysql-run/mysqld.pid" \
            --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 --log-error="$DIR/log/mariadb.log"
    fi
    wait_until 60 sql 'SELECT 1' >/dev/null 2>&1 || die "MariaDB did not start; see $DIR/log/mariadb.log"
    # A throw-away password for a database that only listens on loopback; kept beside the data it protects.
    if [[ ! -s "$DIR/db-password" ]]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DIR/db-password")
    fi
    sql "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
         CREATE OR REPLACE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$DIR/db-password")';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

# write_if_changed FILE MODE: replace FILE by stdin when the content differs; exit 0 iff it changed.
write_if_changed() {
    local file=$1 mode=$2
    (umask 077 && cat >"$file.new")
    chmod "$mode" "$file.new"
    if cmp -s "$file.new" "$file"; then
        rm -f "$file.new"
        return 1
    fi
    mv "$file.new" "$file"
}

start_slurmdbd() {
    if write_if_changed /etc/slurm/slurmdbd.conf 600 <<EOF; then
# Written by scripts/services/slurm.sh; changes are overwritten.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$DIR/db-password")
StorageLoc=slurm_acct_db
EOF
        stop_pid "$DIR/slurmdbd.pid"
    fi
    if ! alive "$DIR/slurmdbd.pid"; then
        listening 6819 && die "127.0.0.1:6819 (slurmdbd) is taken by another process"
        spawn "$DIR/slurmdbd.pid" "$DIR/log/slurmdbd.out" slurmdbd -D
    fi
}

write_slurm_conf() {
    local cpus mem_mb
    cpus=$(nproc)
    # Two virtual nodes share this host's memory; declare half each, minus room for the daemons.
    mem_mb=$(($(free -m | awk '/^Mem:/ {print $2}') / ${#NODES[@]} - 512))
    write_if_changed /etc/slurm/slurm.conf 644 <<EOF
# Written by scripts/services/slurm.sh; changes are overwritten.
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
# %n: each virtual node's slurmd has its own spool, pid file and log
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups in this VM: plain /proc process tracking, no containment or affinity.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
MpiDefault=none
SwitchType=switch/none
# The virtual nodes declare nproc CPUs each, more than the host has in total.
SlurmdParameters=config_overrides
# Bind to the configured loopback addresses instead of 0.0.0.0: nothing here should be reachable from outside.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny

SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Backfill every second: heterogeneous jobs are only started by the backfill scheduler. sched_interval=2: the main
# loop also runs on every submit and job end; this bounds the wait when neither happens.
# kill_invalid_depend is deliberately NOT set: a job whose dependency can never be satisfied stays PENDING with
# reason DependencyNeverSatisfied, as on most production clusters, and the executor must detect and report it.
SchedulerParameters=bf_interval=1,sched_interval=2
# Reject at sbatch time, not hours later, a job its partition can never run (bad partition, time, node count).
EnforcePartLimits=ALL

# Accounting through slurmdbd: sacct answers for finished jobs. Associations are enforced, as on real clusters:
# a user can only submit under an account they belong to (nemorun-ci -> nemorun), so --account is really checked.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageEnforce=associations
JobCompType=jobcomp/none
# Finished jobs leave slurmctld's memory after 30 s: state of a finished job must come from sacct, as on a busy
# cluster, not from squeue/scontrol.
MinJobAge=30

ReturnToService=2
InactiveLimit=0
KillWait=5
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=30
MaxArraySize=1001
# no mail on this machine (quiets "Configured MailProg is invalid")
MailProg=/bin/true

NodeName=node[1-${#NODES[@]}] NodeHostname=localhost NodeAddr=127.0.0.1 Port=[17001-$((17000 + ${#NODES[@]}))] CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
# A second partition with a time limit: partition choice and EnforcePartLimits (--time over 1 h is refused).
PartitionName=batch Nodes=ALL MaxTime=01:00:00 State=UP
EOF
}

# ensure_associations: cluster, account and the user's association, once (sacctmgr add fails on duplicates).
ensure_associations() {
    local q=(sacctmgr -n -P)
    wait_until 60 "${q[@]}" list cluster format=cluster >/dev/null 2>&1 ||
        die "slurmdbd does not answer; see $DIR/log/slurmdbd.log"
    if ! "${q[@]}" list cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    if [[ -z "$("${q[@]}" list account "$ACCOUNT" format=account)" ]]; then
        sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=nemorun-tests organization=nemorun >/dev/null
    fi
    if [[ -z "$("${q[@]}" list assoc cluster="$CLUSTER" user="$CI_USER" account="$ACCOUNT" format=user)" ]]; then
        sacctmgr -i add user "$CI_USER" account="$ACCOUNT" defaultaccount="$ACCOUNT" cluster="$CLUSTER" >/dev/null
    fi
}

start_slurm_daemons() {
    if ! alive "$DIR/slurmctld.pid"; then
        listening 6817 && die "127.0.0.1:6817 (slurmctld) is taken by another process"
        spawn "$DIR/slurmctld.pid" "$DIR/log/slurmctld.out" slurmctld -D
    fi
    ping_ok() { timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'; }
    wait_until 30 ping_ok || die "slurmctld did not answer; see $DIR/log/slurmctld.log"
    local n
    for n in "${NODES[@]}"; do
        mkdir -p "$DIR/spool/$n"
        alive "$DIR/slurmd-$n.pid" || spawn "$DIR/slurmd-$n.pid" "$DIR/log/slurmd-$n.out" slurmd -D -N "$n"
    done
}

nodes_ready() {
    local up
    up=$(timeout 5 sinfo -h -N -p debug -o '%N %T' 2>/dev/null | grep -cE ' (idle|mixed|allocated|completing)$') || true
    [[ "${up:-0}" -ge ${#NODES[@]} ]]
}

wait_nodes() {
    local i
    for ((i = 0; i < 300; i++)); do
        nodes_ready && return 0
        # A node left DOWN by an earlier unclean stop stays down until resumed (ReturnToService covers most cases).
        if timeout 5 sinfo -h -N -o %T 2>/dev/null | grep -qE 'drain|down'; then
            scontrol update nodename=ALL state=resume 2>/dev/null || true
        fi
        sleep 0.1
    done
    sinfo -N >&2 || true
    die "nodes not idle after 30 s; see $DIR/log/slurmd-node*.log and $DIR/log/slurmctld.log"
}

# open_path PATH: give others traverse permission (o+x, not read) on every directory above PATH that lacks it, so
# the cluster user can reach it. Top-down, so only the directories that actually block are changed.
open_path() {
    local p=/ part rest=${1#/}
    while [[ "$rest" == */* ]]; do
        part=${rest%%/*}
        rest=${rest#*/}
        p=${p%/}/$part
        if [[ -d "$p" && -z "$(find "$p" -maxdepth 0 -perm -o+x)" ]]; then
            log "chmod o+x $p (so $CI_USER can reach $1)"
            chmod o+x "$p"
        fi
    done
}

# check_python: jobs run as the cluster user, so that user must be able to run the test python and import the
# project. The venv's python is a symlink into the base interpreter (often under /root/.pyenv, and /root is 700).
check_python() {
    [[ -x "$PYTHON" ]] ||
        die "no python at $PYTHON for jobs: run \`bash scripts/setup_envs.sh prefect\` first (or set NEMORUN_TEST_SLURM_PYTHON)"
    open_path "$PYTHON"
    open_path "$(readlink -f "$PYTHON")"
    open_path "$ROOT/pyproject.toml" # the editable install imports the project from the checkout
    local out
    out=$(cd / && as_ci_user "$PYTHON" -c 'import nemorun_core' 2>&1) ||
        die "$CI_USER cannot run '$PYTHON -c \"import nemorun_core\"': $out"
}

start() {
    local t0 t
    t0=$(now)
    apt_install slurm-wlm slurm-client munge slurmdbd mariadb-server
    log "packages ready in $(elapsed "$t0") s"
    t=$(now)

    mkdir -p "$DIR"/{state,spool,log,run} /etc/slurm
    chmod 755 "$NEMORUN_SERVICES_DIR" "$DIR" "$DIR/log"
    ensure_ci_user
    install -d -m 755 -o "$CI_USER" -g "$CI_USER" "$JOB_DIR"

    start_munge
    start_mariadb
    start_slurmdbd
    if write_slurm_conf; then
        # Node and port changes need a full restart (`scontrol reconfigure` kills slurmctld for those).
        stop_slurm_daemons
    fi
    ensure_associations
    start_slurm_daemons
    wait_nodes

    # What the tests rely on, checked as the cluster user: accounting answers, a job would be accepted under the
    # user's account, and jobs can run the project's python.
    local out
    out=$(as_ci_user sacct -n -X -S now-1minutes 2>&1) || die "sacct failed for $CI_USER: $out"
    out=$(cd / && as_ci_user sbatch --test-only -p debug -A "$ACCOUNT" -D "$JOB_DIR" --wrap true 2>&1) ||
        die "sbatch --test-only failed for $CI_USER: $out"
    check_python

    {
        printf 'export NEMORUN_TEST_SLURM_PARTITION=debug\n'
        printf 'export NEMORUN_TEST_SLURM_ACCOUNT=%q\n' "$ACCOUNT"
        printf 'export NEMORUN_TEST_SLURM_JOB_DIR=%q\n' "$JOB_DIR"
        printf 'export NEMORUN_TEST_SLURM_PYTHON=%q\n' "$PYTHON"
    } >"$DIR/env"
    log "ready: ${NODES[*]} idle, sacct answers; bring-up $(elapsed "$t") s, total $(elapsed "$t0") s"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) alive "$DIR/slurmctld.pid" ;;
    env) print_env "$DIR/env" ;;
    *) die "usage: $0 [start|stop|status|env]" ;;
esac
