#!/usr/bin/env bash
# A Docker engine and an image registry of the project's own, for image builds and their tests:
# installs docker.io, debootstrap and docker-registry if missing (Debian packages), starts dockerd
# on its own socket and data dir (no bridge, no iptables: containers use host networking), and a
# registry on 127.0.0.1:5000 with filesystem storage. Prints the DOCKER_HOST to use.
set -euo pipefail

ROOT="${ACUMOS_DOCKER_ROOT:-/var/lib/acumos-docker}"
SOCK="$ROOT/docker.sock"
REGISTRY="127.0.0.1:5000"
mkdir -p "$ROOT"

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v docker-registry >/dev/null || need+=(docker-registry)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}"
    apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
fi

if ! docker -H "unix://$SOCK" info >/dev/null 2>&1; then
    echo "starting dockerd ($ROOT)"
    nohup dockerd --data-root "$ROOT/data" --exec-root "$ROOT/exec" --pidfile "$ROOT/dockerd.pid" \
        -H "unix://$SOCK" --bridge=none --iptables=false --insecure-registry "$REGISTRY" \
        >"$ROOT/dockerd.log" 2>&1 &
    for _ in $(seq 60); do docker -H "unix://$SOCK" info >/dev/null 2>&1 && break; sleep 0.5; done
fi
docker -H "unix://$SOCK" info >/dev/null 2>&1 || { echo "dockerd did not start; see $ROOT/dockerd.log" >&2; exit 1; }

if ! curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1; then
    echo "starting the registry on $REGISTRY"
    cat >"$ROOT/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $ROOT/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
YAML
    nohup docker-registry serve "$ROOT/registry.yml" >"$ROOT/registry.log" 2>&1 &
    for _ in $(seq 60); do curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 && break; sleep 0.5; done
fi
curl -fsS "http://$REGISTRY/v2/" >/dev/null || { echo "the registry did not start; see $ROOT/registry.log" >&2; exit 1; }
echo "DOCKER_HOST=unix://$SOCK"
