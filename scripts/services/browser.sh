#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the headless-browser checks of the orchestrator UIs
# (tests/prefect/test_ui_forms.py: the Prefect block forms; tests/airflow/test_ui_forms.py: the Airflow connection
# form). Not a daemon: each test starts its own headless browser; this script only makes sure one can start.
#
#   bash scripts/services/browser.sh start     install chromium + chromium-driver if missing, check both run
#   bash scripts/services/browser.sh stop      nothing to stop (kept for the common start/stop/status/env shape)
#   bash scripts/services/browser.sh status    exit 0 if both are installed and `start` checked them
#   bash scripts/services/browser.sh env       `export` lines for the tests: eval "$(bash scripts/services/browser.sh env)"
#
# The check renders a page headless with the flags the tests use: as root Chromium needs --no-sandbox, and on this
# machine's closed network it must not try its background connections (update, sync, safe browsing, QUIC), or they
# are refused many at a time and at every start. State: ${NEMORUN_SERVICES_DIR:-/tmp/nemorun-services}/browser.
# Idempotent: a second `start` costs two dpkg queries and one headless render.
set -euo pipefail
SERVICE=browser
# shellcheck source=scripts/services/lib.sh
source "$(dirname "$0")/lib.sh"

DIR=$NEMORUN_SERVICES_DIR/browser
CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

stop() { :; }

start() {
    local t0 t profile out
    t0=$(now)
    t=$(now)
    apt_install chromium chromium-driver
    log "packages ready in $(elapsed "$t") s"
    mkdir -p "$DIR"
    rm -f "$DIR/env"
    [[ -x "$CHROMIUM" ]] || die "$CHROMIUM is missing after installing the Debian package chromium"
    [[ -x "$CHROMEDRIVER" ]] || die "$CHROMEDRIVER is missing after installing the Debian package chromium-driver"
    "$CHROMIUM" --version >"$DIR/chromium.version" 2>&1 || die "$CHROMIUM --version failed: $(cat "$DIR/chromium.version")"
    "$CHROMEDRIVER" --version >"$DIR/chromedriver.version" 2>&1 ||
        die "$CHROMEDRIVER --version failed: $(cat "$DIR/chromedriver.version")"

    # A real headless render of a data: URL (no network, no server), in a new empty profile.
    profile=$(mktemp -d "$DIR/profile.XXXXXX")
    t=$(now)
    out=$(timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage \
        --user-data-dir="$profile" --dump-dom 'data:text/html,<title>t</title><p id="nr">nemorun-browser-ok</p>' \
        2>"$DIR/check.log") || true
    rm -rf "$profile"
    [[ "$out" == *nemorun-browser-ok* ]] || die "headless $CHROMIUM did not render a page; see $DIR/check.log"

    {
        printf 'export NEMORUN_CHROMIUM=%q\n' "$CHROMIUM"
        printf 'export NEMORUN_CHROMEDRIVER=%q\n' "$CHROMEDRIVER"
    } >"$DIR/env"
    # (Debian's launcher script may print a shell warning of its own before the version line: grep for it.)
    log "ready: $(grep -m1 '^Chromium' "$DIR/chromium.version"), $(grep -m1 -o '^ChromeDriver [0-9.]*' \
        "$DIR/chromedriver.version")" \
        "(render check $(elapsed "$t") s, total $(elapsed "$t0") s)"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    restart) start ;;
    status) [[ -s "$DIR/env" && -x "$CHROMIUM" && -x "$CHROMEDRIVER" ]] ;;
    env) print_env "$DIR/env" ;;
    *) die "usage: $0 [start|stop|restart|status|env]" ;;
esac
