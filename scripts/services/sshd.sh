#!/usr/bin/env bash
# A private OpenSSH server for the SSH tunnel and Slurm tests (Debian 12, root, no systemd).
#
#   bash scripts/services/sshd.sh start     install if missing, (re)write keys and config, start, check a login
#   bash scripts/services/sshd.sh stop      stop the listener
#   bash scripts/services/sshd.sh restart   stop + start: for tests of reconnecting clients. Only the listener is
#                                           stopped: open sessions and what they started keep running.
#   bash scripts/services/sshd.sh status    exit 0 if the listener is up
#   bash scripts/services/sshd.sh env       `export` lines for the tests: eval "$(bash scripts/services/sshd.sh env)"
#
# sshd listens on 127.0.0.1:${NEMORUN_SSHD_PORT:-2222} only, with its own host key and key-only auth, for the
# unprivileged user nemorun-ci. State under ${NEMORUN_SERVICES_DIR:-/tmp/nemorun-services}/sshd:
#   id_ed25519             client key, authorized for nemorun-ci (private key: root only, mode 600)
#   id_ed25519_refused     a second client key that is NOT authorized ("refused key" tests)
#   known_hosts            the real host key for [127.0.0.1]:PORT and [localhost]:PORT (strict checking)
#   known_hosts_wrong      another key for the same names ("host key changed" tests)
# Idempotent: keys are made once; the config is rewritten and sshd restarted only when something changed.
set -euo pipefail
SERVICE=sshd
# shellcheck source=scripts/services/lib.sh
source "$(dirname "$0")/lib.sh"

PORT=${NEMORUN_SSHD_PORT:-2222}
DIR=$NEMORUN_SERVICES_DIR/sshd
PIDFILE=$DIR/sshd.pid

listening() { (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; }

stop() { stop_pid "$PIDFILE"; }

start() {
    local t0 t
    t0=$(now)
    # openssh-client is there on most images; ssh-keygen comes with it.
    t=$(now)
    apt_install openssh-server openssh-client
    log "packages ready in $(elapsed "$t") s"

    mkdir -p "$DIR" /run/sshd
    chmod 755 "$NEMORUN_SERVICES_DIR"
    chmod 700 "$DIR"
    chmod 755 /run/sshd # sshd's privilege-separation directory must exist and be root-owned, not group/world-writable
    ensure_ci_user

    # Keys are made once and kept: a stable host key keeps known_hosts valid across restarts of sshd.
    local k
    for k in ssh_host_ed25519_key host_key_wrong id_ed25519 id_ed25519_refused; do
        [[ -s "$DIR/$k" ]] || ssh-keygen -q -t ed25519 -N '' -C "nemorun-ci-$k" -f "$DIR/$k"
    done
    chmod 600 "$DIR"/ssh_host_ed25519_key "$DIR"/host_key_wrong "$DIR"/id_ed25519 "$DIR"/id_ed25519_refused
    local host_pub wrong_pub
    host_pub=$(cut -d' ' -f1,2 "$DIR/ssh_host_ed25519_key.pub")
    wrong_pub=$(cut -d' ' -f1,2 "$DIR/host_key_wrong.pub")
    printf '[127.0.0.1]:%s %s\n[localhost]:%s %s\n' "$PORT" "$host_pub" "$PORT" "$host_pub" >"$DIR/known_hosts"
    printf '[127.0.0.1]:%s %s\n[localhost]:%s %s\n' "$PORT" "$wrong_pub" "$PORT" "$wrong_pub" >"$DIR/known_hosts_wrong"

    # Only the first client key is authorized; the user's own file, as on any real login node.
    local home
    home=$(ci_home)
    install -d -m 700 -o "$CI_USER" -g "$CI_USER" "$home/.ssh"
    install -m 600 -o "$CI_USER" -g "$CI_USER" "$DIR/id_ed25519.pub" "$home/.ssh/authorized_keys"

    cat >"$DIR/sshd_config.new" <<EOF
# Written by scripts/services/sshd.sh; changes are overwritten.
Port $PORT
# loopback only: test traffic never leaves the machine
ListenAddress 127.0.0.1
HostKey $DIR/ssh_host_ed25519_key
PidFile $DIR/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
# no PAM stack here; this is why the user's password field must be '*' rather than the locked '!'
UsePAM no
PermitRootLogin no
AllowUsers $CI_USER
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
UseDNS no
# clients under test open many connections and channels at once (parallel status polls, SFTP, forwards)
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel VERBOSE
EOF
    /usr/sbin/sshd -t -f "$DIR/sshd_config.new" || die "sshd rejected its generated config ($DIR/sshd_config.new)"
    if ! cmp -s "$DIR/sshd_config.new" "$DIR/sshd_config"; then
        mv "$DIR/sshd_config.new" "$DIR/sshd_config"
        stop # a changed port cannot be picked up by SIGHUP's re-exec cleanly everywhere: restart the listener
    else
        rm -f "$DIR/sshd_config.new"
    fi

    t=$(now)
    if ! alive "$PIDFILE"; then
        listening && die "127.0.0.1:$PORT is taken by another process: set NEMORUN_SSHD_PORT"
        # -D: stay in the foreground (spawn detaches it); -E: log to a file, there is no syslog here.
        spawn "$PIDFILE" "$DIR/sshd.out" /usr/sbin/sshd -D -f "$DIR/sshd_config" -E "$DIR/sshd.log"
    fi
    wait_until 10 listening || die "sshd did not listen on 127.0.0.1:$PORT; see $DIR/sshd.log"
    # A real login with the real options the tests use: a broken key, user or known_hosts fails here, not in pytest.
    ssh -F /dev/null -p "$PORT" -i "$DIR/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$DIR/known_hosts" \
        "$CI_USER@127.0.0.1" true </dev/null ||
        die "key login as $CI_USER failed; see $DIR/sshd.log"

    {
        printf 'export NEMORUN_TEST_SSH_HOST=127.0.0.1\n'
        printf 'export NEMORUN_TEST_SSH_PORT=%q\n' "$PORT"
        printf 'export NEMORUN_TEST_SSH_USER=%q\n' "$CI_USER"
        printf 'export NEMORUN_TEST_SSH_KEY=%q\n' "$DIR/id_ed25519"
        printf 'export NEMORUN_TEST_SSH_BAD_KEY=%q\n' "$DIR/id_ed25519_refused"
        printf 'export NEMORUN_TEST_SSH_KNOWN_HOSTS=%q\n' "$DIR/known_hosts"
        printf 'export NEMORUN_TEST_SSH_WRONG_KNOWN_HOSTS=%q\n' "$DIR/known_hosts_wrong"
    } >"$DIR/env"
    log "ready on 127.0.0.1:$PORT as $CI_USER in $(elapsed "$t0") s (start-up $(elapsed "$t") s)"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    restart)
        stop
        start
        ;;
    status) alive "$PIDFILE" ;;
    env) print_env "$DIR/env" ;;
    *) die "usage: $0 [start|stop|restart|status|env]" ;;
esac
