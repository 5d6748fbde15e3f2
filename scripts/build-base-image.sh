#!/usr/bin/env bash
# Provide the Debian base image every engine image builds FROM.
#   BASE_IMAGE set and pullable (or already present): use it as is.
#   Otherwise: debootstrap a minimal bookworm from the host's Debian mirror and `docker import` it,
#   so the project builds where no container registry is reachable.
set -euo pipefail
IMAGE="${BASE_IMAGE:-whisper-bench-base:bookworm}"
SUITE="${BASE_SUITE:-bookworm}"
log() { echo "base-image: $*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE is present"; exit 0
fi
if [ "$IMAGE" != "whisper-bench-base:bookworm" ] && docker pull "$IMAGE" >/dev/null 2>&1; then
    log "pulled $IMAGE"; exit 0
fi
if docker pull "debian:$SUITE-slim" >/dev/null 2>&1; then
    docker tag "debian:$SUITE-slim" "$IMAGE"; log "pulled debian:$SUITE-slim as $IMAGE"; exit 0
fi

# The host's own Debian mirror: deb822 sources first, then the one-line format.
mirror=$(grep -hsE '^URIs:.*debian/?$' /etc/apt/sources.list.d/*.sources | head -n1 | awk '{print $2}')
[ -n "$mirror" ] || mirror=$(grep -hsE '^deb .*debian/? ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                             | head -n1 | awk '{print $2}')
mirror="${mirror:-http://deb.debian.org/debian}"

if ! command -v debootstrap >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then log "debootstrap is missing: apt-get install debootstrap"; exit 1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

rootfs=$(mktemp -d /tmp/whisper-bench-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
log "debootstrap $SUITE from $mirror (about a minute)"
debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >/tmp/whisper-bench-debootstrap.log 2>&1 \
    || { log "debootstrap failed; see /tmp/whisper-bench-debootstrap.log"; exit 1; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
log "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
