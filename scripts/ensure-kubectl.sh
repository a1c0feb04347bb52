#!/usr/bin/env bash
# kubectl, for tests/deployment/test_manifests.py: `kubectl apply --dry-run=client` parses the generated
# Kubernetes YAML and maps every kind through API discovery (served by the tests' fake API server; no
# cluster is needed). Installs Debian's kubernetes-client if no kubectl runs here; a kubectl already on
# the PATH (some machine images ship Google Cloud SDK's) is kept. Quick when done already.
set -euo pipefail

if ! kubectl version --client >/dev/null 2>&1; then
    echo "installing kubernetes-client" >&2
    apt-get install -y --no-install-recommends kubernetes-client >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y --no-install-recommends kubernetes-client >/dev/null; }
fi
echo "kubectl: $(kubectl version --client 2>/dev/null | head -n 1)" >&2
