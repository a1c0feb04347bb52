#!/usr/bin/env bash
# Debian's docker-compose (Compose v1, 1.29), which tests/test_compose.py drives against the project's
# Docker engine (scripts/ensure-images.sh starts it and writes build/images.env). Installs it if missing.
set -euo pipefail

if ! command -v docker-compose >/dev/null; then
    echo "installing docker-compose"
    apt-get install -y --no-install-recommends docker-compose >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y --no-install-recommends docker-compose >/dev/null; }
fi
echo "compose: $(docker-compose version --short)"
