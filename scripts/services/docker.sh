#!/usr/bin/env bash
# A private Docker engine for the Docker executor tests (Debian 12 docker.io 20.10, root, no systemd, no registry).
#
#   bash scripts/services/docker.sh start    install if missing, start dockerd, wait until it answers, build the
#                                            test images that are missing, run one container as a check
#   bash scripts/services/docker.sh stop     stop dockerd (and the containerd it supervises), unmount leftovers
#   bash scripts/services/docker.sh status   exit 0 if dockerd is up and answers on its socket
#   bash scripts/services/docker.sh env      `export` lines for the tests: eval "$(bash scripts/services/docker.sh env)"
#
# NETWORK RULE: test traffic stays on loopback. dockerd runs with --bridge=none --iptables=false --ip6tables=false:
# there is no docker0 bridge and no "bridge" network, so containers get `--network none` (the default here too)
# or `--network host`; they can never get a 172.17.x.x address.
#
# State under ${NEMORUN_SERVICES_DIR:-/tmp/nemorun-services}/docker:
#   docker.sock            the engine's API (DOCKER_HOST=unix://...); the system's /var/run/docker.sock is untouched
#   data/ exec/            its own --data-root and --exec-root (images, containers, the supervised containerd)
#   dockerd.log            the daemon's output;  debootstrap.log: the python image's build log
# Images, built locally only when missing (no registry, no pull, ever):
#   nemorun-test/busybox:latest   static busybox (busybox-static) with its applet links: about 2 MB, under 1 s
#   nemorun-test/python:3.11      `debootstrap --variant=minbase --include=python3 bookworm` from the Debian mirror
#                                 apt uses: about 40 s and 160 MB the first time, then kept in data/
# Env: NEMORUN_DOCKER_STORAGE (storage driver, default: dockerd's choice, overlay2 on ext4),
#      NEMORUN_DOCKER_MIRROR (Debian mirror for debootstrap, default http://deb.debian.org/debian),
#      NEMORUN_DOCKER_IMAGES (which test images to build: "busybox python" by default; "busybox" alone for a
#      private engine that needs no network, such as the one the Docker fault tests start and stop with
#      NEMORUN_SERVICES_DIR pointing elsewhere).
set -euo pipefail
SERVICE=docker
# shellcheck source=scripts/services/lib.sh
source "$(dirname "$0")/lib.sh"

DIR=$NEMORUN_SERVICES_DIR/docker
SOCK=$DIR/docker.sock
PIDFILE=$DIR/dockerd.pid
BUSYBOX_IMAGE=nemorun-test/busybox:latest
PYTHON_IMAGE=nemorun-test/python:3.11
MIRROR=${NEMORUN_DOCKER_MIRROR:-http://deb.debian.org/debian}
export DOCKER_HOST=unix://$SOCK
# The client must not read a user's ~/.docker (contexts, credential helpers) or talk to another engine.
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
export DOCKER_CONFIG=$DIR/client-config

answers() { docker version >/dev/null 2>&1; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# unmount_under DIR: every mount point at or below DIR, deepest first (lazy: a busy mount must not block a stop).
unmount_under() {
    local m
    awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || log "could not unmount $m"
    done
}

# ---- stop ----------------------------------------------------------------------------------------------------
stop() {
    # dockerd stops its containers (10 s grace each, in parallel) and its containerd before it exits: give it time.
    stop_pid "$PIDFILE" 40
    # dockerd can leave mounts behind (exec/netns/default with --bridge=none, overlay mounts after a KILL), and a
    # failed debootstrap its /proc, /sys and /dev mounts.
    [[ -d "$DIR" ]] && unmount_under "$DIR"
    rm -f "$SOCK"
}

# ---- images --------------------------------------------------------------------------------------------------
# rm_tree DIR: remove a build root safely: unmount first (debootstrap binds the host's /dev in a container), and
# never cross into another file system.
rm_tree() {
    unmount_under "$1"
    rm -rf --one-file-system "$1"
}

build_busybox() {
    local root bb
    bb=$(dpkg -L busybox-static | grep -m1 -E '/bin/busybox$') || die "busybox-static has no /bin/busybox"
    root=$(mktemp -d "$DIR/build-busybox.XXXXXX")
    mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root}
    chmod 1777 "$root/tmp"
    cp "$bb" "$root/bin/busybox"
    local a
    for a in $("$root/bin/busybox" --list); do
        [[ "$a" == busybox ]] || ln -s busybox "$root/bin/$a"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    tar --numeric-owner -C "$root" -c . |
        docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' -m 'scripts/services/docker.sh: busybox-static' \
            - "$BUSYBOX_IMAGE" >/dev/null || die "docker import of $BUSYBOX_IMAGE failed"
    rm_tree "$root"
}

build_python() {
    local root t
    t=$(now)
    root=$(mktemp -d "$DIR/build-python.XXXXXX")
    log "building $PYTHON_IMAGE with debootstrap from $MIRROR (about 40 s; log: $DIR/debootstrap.log)"
    if ! debootstrap --variant=minbase --include=python3 bookworm "$root" "$MIRROR" >"$DIR/debootstrap.log" 2>&1; then
        rm_tree "$root"
        die "debootstrap failed; see $DIR/debootstrap.log"
    fi
    unmount_under "$root" # debootstrap unmounts what it mounted, but not always after an error in a hook
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
        "$root"/debootstrap
    tar --numeric-owner -C "$root" -c . |
        docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            -c 'ENV LANG=C.UTF-8' -c 'CMD ["/usr/bin/python3"]' \
            -m 'scripts/services/docker.sh: debootstrap --variant=minbase --include=python3 bookworm' \
            - "$PYTHON_IMAGE" >/dev/null || die "docker import of $PYTHON_IMAGE failed"
    rm_tree "$root"
    log "$PYTHON_IMAGE built in $(elapsed "$t") s"
}

# ---- start ---------------------------------------------------------------------------------------------------
start() {
    local t0 t
    t0=$(now)
    t=$(now)
    apt_install docker.io busybox-static debootstrap
    log "packages ready in $(elapsed "$t") s"
    command -v docker >/dev/null || die "no docker client on PATH"

    mkdir -p "$DIR"/{data,exec,run} "$DOCKER_CONFIG"
    chmod 711 "$DIR"
    # One start at a time (two test runs at once must not build the same image twice); fd 9 is closed for dockerd.
    exec 9>"$DIR/start.lock"
    flock -w 900 9 || die "another \`$0 start\` held $DIR/start.lock for 15 min"
    rm -f "$DIR/env" # written again at the end: a failed start leaves no stale variables behind
    t=$(now)
    if ! alive "$PIDFILE"; then
        # A stale socket or mounts from an unclean stop (KILL, reboot of the container) would break the start.
        unmount_under "$DIR/exec"
        rm -f "$SOCK"
        local storage=()
        [[ -n "${NEMORUN_DOCKER_STORAGE:-}" ]] && storage=(--storage-driver "$NEMORUN_DOCKER_STORAGE")
        # --pidfile: dockerd's own (it refuses to start when the default /var/run/docker.pid names a live process).
        # No --containerd: dockerd starts and supervises its own containerd under exec/ and data/.
        # 9>&-: nothing inherited from callers' lock files.
        spawn "$PIDFILE" "$DIR/dockerd.log" dockerd -H "$DOCKER_HOST" \
            --data-root "$DIR/data" --exec-root "$DIR/exec" --pidfile "$DIR/run/dockerd.pid" \
            --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
            "${storage[@]}" 9>&-
    fi
    if ! wait_until 60 answers; then
        if ! alive "$PIDFILE"; then
            grep -E 'level=(error|fatal)|failed to start' "$DIR/dockerd.log" | tail -n 5 >&2 || true
            die "dockerd exited at start-up; see $DIR/dockerd.log (its errors above)"
        fi
        die "dockerd did not answer on $SOCK within 60 s; see $DIR/dockerd.log"
    fi
    log "dockerd $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})') up in $(elapsed "$t") s"
    # The network rule, checked rather than assumed: an engine with a bridge network (a system dockerd on this
    # socket, or flags changed) would put containers on 172.17.x.x.
    if docker network ls --format '{{.Driver}}' | grep -qx bridge; then
        die "this engine has a bridge network (not allowed: containers must use host or none networking)"
    fi

    local images=" ${NEMORUN_DOCKER_IMAGES:-busybox python} "
    have_image "$BUSYBOX_IMAGE" || build_busybox
    if [[ "$images" == *" python "* ]]; then
        have_image "$PYTHON_IMAGE" || build_python
    fi
    docker run --rm --pull never --network none "$BUSYBOX_IMAGE" true ||
        die "a --network none container does not run; see $DIR/dockerd.log"

    {
        printf 'export NEMORUN_TEST_DOCKER_HOST=%q\n' "$DOCKER_HOST"
        printf 'export NEMORUN_TEST_DOCKER_BUSYBOX=%q\n' "$BUSYBOX_IMAGE"
        if have_image "$PYTHON_IMAGE"; then printf 'export NEMORUN_TEST_DOCKER_PYTHON=%q\n' "$PYTHON_IMAGE"; fi
    } >"$DIR/env"
    log "ready on $DOCKER_HOST in $(elapsed "$t0") s"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) alive "$PIDFILE" && answers ;;
    env) print_env "$DIR/env" ;;
    *) die "usage: $0 [start|stop|status|env]" ;;
esac
