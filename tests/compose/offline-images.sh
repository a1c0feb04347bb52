#!/usr/bin/env bash
# TEST-ONLY (tests/test_compose.py): stand-ins for the images docker-compose.yml names that cannot be
# pulled on these machines, made from Debian packages (debootstrap) and wheels built on this host:
#   acumos/compose-python    for python:3.11-slim-bookworm (the portal's Dockerfile builds FROM it): Debian's
#                            python3 with pip pointed at a wheelhouse inside the image (no index is reached)
#   acumos/compose-services  for postgres:15, redis:7, registry:2, minio/minio and minio/mc: Debian's
#                            postgresql-15, redis-server and docker-registry, and moto_server as the S3 store
# Each is cached by a hash of its inputs (packages, mirror, pins, these files), so only a change rebuilds.
#   DOCKER_HOST must point at the project's engine (scripts/ensure-docker.sh prints it).
# Prints COMPOSE_TEST_PYTHON_IMAGE=... and COMPOSE_TEST_SERVICES_IMAGE=... for the override file.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ROOT="${ACUMOS_DOCKER_ROOT:-/var/lib/acumos-docker}"
PY="${PYTHON:-$REPO/.venv/bin/python}"
MIRROR="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
MIRROR="${ACUMOS_DEBIAN_MIRROR:-${MIRROR:-http://deb.debian.org/debian}}"
SUITE=bookworm
# python3 and what the portal's Dockerfile installs with apt (so it has nothing to fetch), and the services.
PACKAGES="python3,python3-pip,python-is-python3,passwd,ca-certificates,wget,libgomp1,bubblewrap,passt,libseccomp2"
PACKAGES="$PACKAGES,postgresql-15,redis-server,docker-registry"
MOTO="$(grep -E '^moto\[server\]==' "$REPO/requirements-dev.txt" | cut -d' ' -f1)"
mkdir -p "$ROOT/cache"
log() { echo "$*" >&2; }
hash_of() { sha256sum | cut -c1-12; }

# 1. The Debian rootfs: depends on the suite, the mirror and the package list.
base_hash=$(printf '%s|%s|%s' "$SUITE" "$MIRROR" "$PACKAGES" | hash_of)
base="acumos/compose-base:$base_hash"
if ! docker image inspect "$base" >/dev/null 2>&1; then
    rootfs="$ROOT/cache/compose-rootfs-$base_hash"
    if [ ! -f "$rootfs.tar" ]; then
        log "debootstrap $SUITE with $PACKAGES (a few minutes)"
        rm -rf "$rootfs"
        debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -cf "$rootfs.tar.part" . && mv "$rootfs.tar.part" "$rootfs.tar"
        rm -rf "$rootfs"
    fi
    docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$rootfs.tar" "$base" >/dev/null
fi

# 2. The wheelhouse: what the portal's Dockerfile and moto_server install, built here (cp311, glibc 2.36).
# Plus what this host's newer Python 3.11 skips: redis wants async-timeout below 3.11.3 (Debian has 3.11.2),
# and setuptools and wheel to build the runner from its source.
# (Comments in requirements.txt change nothing here.)
wheels_hash=$( (sed 's/ *#.*//' "$REPO/requirements.txt"; cat "$REPO/runner_image/pyproject.toml"; echo "$MOTO async-timeout") \
              | hash_of)
wheels="$ROOT/cache/compose-wheels-$wheels_hash/wheels"  # "wheels": its name in the build context
if [ ! -f "$wheels/.complete" ]; then
    log "building the wheelhouse ($wheels)"
    rm -rf "$wheels"
    "$PY" -m pip wheel --quiet --wheel-dir "$wheels" -r "$REPO/requirements.txt" \
        "$REPO/runner_image[sklearn]" "$MOTO" "setuptools>=68" wheel async-timeout >&2
    touch "$wheels/.complete"
fi

# 3. The python:3.11-slim-bookworm stand-in, and 4. the services on top of it.
build() {  # build IMAGE DOCKERFILE [FILE...]: a context of the Dockerfile and the files named
    local image="$1" dockerfile="$2" context
    shift 2
    context="$(mktemp -d)"
    cp "$dockerfile" "$context/Dockerfile"
    for file in "$@"; do cp -r "$file" "$context/"; done
    docker build --quiet --build-arg BASE="$BASE_IMAGE" -t "$image" "$context" >/dev/null
    rm -rf "$context"
}
python_hash=$( (echo "$base|$wheels_hash"; cat "$HERE/python.Dockerfile") | hash_of)
python_image="acumos/compose-python:$python_hash"
if ! docker image inspect "$python_image" >/dev/null 2>&1; then
    log "building $python_image"
    BASE_IMAGE="$base" build "$python_image" "$HERE/python.Dockerfile" "$wheels"
fi
services_hash=$( (echo "$python_image"; cat "$HERE/services.Dockerfile" "$HERE/postgres-entrypoint.sh" \
                  "$HERE/registry.yml") | hash_of)
services_image="acumos/compose-services:$services_hash"
if ! docker image inspect "$services_image" >/dev/null 2>&1; then
    log "building $services_image"
    BASE_IMAGE="$python_image" build "$services_image" "$HERE/services.Dockerfile" \
        "$HERE/postgres-entrypoint.sh" "$HERE/registry.yml"
fi
# What earlier inputs made is garbage now: other wheelhouses, and other tags of these images.
find "$ROOT/cache" -maxdepth 1 -name 'compose-wheels-*' ! -name "compose-wheels-$wheels_hash" -exec rm -rf {} +
for current in "$base" "$python_image" "$services_image"; do
    docker images --format '{{.Repository}}:{{.Tag}}' "${current%%:*}" | grep -vxF "$current" \
        | xargs -r docker rmi >/dev/null 2>&1 || true
done
echo "COMPOSE_TEST_PYTHON_IMAGE=$python_image"
echo "COMPOSE_TEST_SERVICES_IMAGE=$services_image"
