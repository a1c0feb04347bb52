#!/usr/bin/env bash
# The runner base image without any registry: a Debian bookworm rootfs from debootstrap (its
# python3 is 3.11), imported into Docker, then runner_image/Dockerfile on top with the runner's
# dependencies installed on this host. Both are cached by a hash of their inputs, so only a change
# to the runner or its pins rebuilds. Prints the image reference.
#   DOCKER_HOST must point at the engine (scripts/ensure-docker.sh prints it).
#   --push REGISTRY also pushes it there (the daemonless builder reads the base from a registry)
#   and prints the registry's reference instead.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="${ACUMOS_DOCKER_ROOT:-/var/lib/acumos-docker}"
PY="${PYTHON:-$REPO/.venv/bin/python}"
MIRROR="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
MIRROR="${ACUMOS_DEBIAN_MIRROR:-${MIRROR:-http://deb.debian.org/debian}}"
SUITE=bookworm
mkdir -p "$ROOT/cache"

# 1. The Python rootfs: depends only on the suite, the mirror and the package list.
os_hash=$(printf '%s|%s|python3,passwd' "$SUITE" "$MIRROR" | sha256sum | cut -c1-12)
os_image="acumos/python-offline:$os_hash"
if ! docker image inspect "$os_image" >/dev/null 2>&1; then
    rootfs="$ROOT/cache/rootfs-$os_hash"
    if [ ! -f "$rootfs.tar" ]; then
        echo "debootstrap $SUITE from $MIRROR (about a minute)" >&2
        rm -rf "$rootfs"
        debootstrap --variant=minbase --include=python3,passwd "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -cf "$rootfs.tar" .
        rm -rf "$rootfs"
    fi
    docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$rootfs.tar" "$os_image" >/dev/null
fi

# 2. The runner on top: depends on the OS image, the Dockerfile and the runner's sources and pins.
runner_hash=$( (echo "$os_image"; cat "$REPO/runner_image/Dockerfile" "$REPO/runner_image/pyproject.toml";
                find "$REPO/runner_image/runner_image" -name '*.py' -print0 | sort -z | xargs -0 cat) \
               | sha256sum | cut -c1-12)
image="acumos/runner-base:$runner_hash"
if ! docker image inspect "$image" >/dev/null 2>&1; then
    context="$(mktemp -d)"
    trap 'rm -rf "$context"' EXIT
    echo "installing the runner into the build context" >&2
    "$PY" -m pip install --quiet --no-compile --target "$context/lib" "$REPO/runner_image" >&2
    cp "$REPO/runner_image/Dockerfile" "$context/Dockerfile"
    docker build --quiet --build-arg BASE="$os_image" -t "$image" "$context" >/dev/null
fi
if [ "${1:-}" = "--push" ]; then
    pushed="$2/$image"
    docker tag "$image" "$pushed"
    docker push --quiet "$pushed" >/dev/null
    image="$pushed"
fi
echo "$image"
