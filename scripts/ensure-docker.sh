#!/usr/bin/env bash
# Make a Docker engine answer `docker info`. Does nothing where one already runs with compose;
# on Debian without one, installs docker.io (and docker-compose) and starts dockerd in the background.
set -euo pipefail

log() { echo "ensure-docker: $*" >&2; }

compose_present() { docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; }

# dockerd without the caller's open files: a lock held by the caller (`flock LOCK make test` passes its
# locked descriptor down) would otherwise live on in the daemon and never be released.
start_dockerd() {
    local fd
    for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
    exec $SUDO sh -c 'exec nohup setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null'
}

if docker info >/dev/null 2>&1 && compose_present; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"
    elif docker info >/dev/null 2>&1; then
        log "no docker compose here; compose.yaml needs it, the harness does not"; exit 0
    else
        log "Docker is not reachable and this user is not root: start Docker, or run as root"; exit 1
    fi
fi

if ! compose_present && command -v apt-get >/dev/null 2>&1; then
    log "installing docker-compose from Debian (compose.yaml)"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null \
        || { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; } \
        || log "docker-compose could not be installed; the harness does not need it"
fi

if docker info >/dev/null 2>&1; then
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        log "no dockerd and no apt-get: install Docker for this system by hand"; exit 1
    fi
    log "installing docker.io from Debian"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

# A service manager starts it where there is one; otherwise start dockerd by hand.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl start docker || true
fi
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (log: /var/log/dockerd.log)"
    ( start_dockerd ) &
fi

for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        log "Docker is up ($(docker version --format '{{.Server.Version}}'))"
        exit 0
    fi
    sleep 0.5
done
log "dockerd did not answer within 30 s; see /var/log/dockerd.log"
exit 1
