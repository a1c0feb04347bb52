#!/usr/bin/env bash
# Everything image builds and their tests need: the Docker engine and registry
# (scripts/ensure-docker.sh) and the offline runner base image, pushed to the registry
# (scripts/build-runner-base.sh, cached by input hash), and podman (scripts/ensure-podman.sh).
# Writes build/images.env for the tests.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
REGISTRY=127.0.0.1:5000
docker_host="$(bash "$REPO/scripts/ensure-docker.sh" | sed -n 's/^DOCKER_HOST=//p')"
base="$(DOCKER_HOST="$docker_host" bash "$REPO/scripts/build-runner-base.sh" --push "$REGISTRY")"
mkdir -p "$REPO/build"
cat >"$REPO/build/images.env" <<ENV
ACUMOS_TEST_DOCKER_HOST=$docker_host
ACUMOS_TEST_REGISTRY=$REGISTRY
ACUMOS_TEST_IMAGE_BASE=$base
ACUMOS_TEST_WHEELHOUSE=${ACUMOS_DOCKER_ROOT:-/var/lib/acumos-docker}/wheelhouse
ENV
# podman runs the generated Kubernetes manifests in the deployment tests (`podman kube play`).
bash "$REPO/scripts/ensure-podman.sh"
echo "images: engine $docker_host, registry $REGISTRY, base $base"
