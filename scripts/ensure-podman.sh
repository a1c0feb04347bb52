#!/usr/bin/env bash
# podman, for proving that the generated Kubernetes manifests run (`podman kube play`, since no
# Kubernetes API server can run here). Installs podman and catatonit (the pause process podman
# builds its pod infra image from, as no registry can be pulled from) if missing, then writes two
# drop-ins: runtime runc with capped ulimits (rootful podman otherwise fails with `setrlimit ...
# Operation not permitted` here), and the project's plain-HTTP registry. Quick when done already.
set -euo pipefail

REGISTRY="127.0.0.1:5000"
CONF_DIR=/etc/containers/containers.conf.d
REGISTRIES_DIR=/etc/containers/registries.conf.d

need=()
command -v podman >/dev/null || need+=(podman)
command -v catatonit >/dev/null || [ -x /usr/libexec/podman/catatonit ] || need+=(catatonit)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}" >&2
    apt-get install -y "${need[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
fi

# Drop-ins, not /etc/containers/containers.conf itself: the packaged defaults stay as they are.
write_if_changed() {  # path, content: rewrite only when different, so a second run touches nothing
    local path="$1" content="$2"
    mkdir -p "$(dirname "$path")"
    if [ ! -f "$path" ] || [ "$(cat "$path")" != "$content" ]; then
        printf '%s\n' "$content" >"$path"
        echo "wrote $path" >&2
    fi
}

write_if_changed "$CONF_DIR/50-acumos.conf" '# Written by scripts/ensure-podman.sh (the Acumos portal tests).
[containers]
default_ulimits = ["nofile=10000:10000", "nproc=4096:4096"]

[engine]
runtime = "runc"'

write_if_changed "$REGISTRIES_DIR/50-acumos.conf" "# Written by scripts/ensure-podman.sh: the project's test registry speaks plain HTTP.
[[registry]]
location = \"$REGISTRY\"
insecure = true"

podman info --format '{{.Host.OCIRuntime.Name}}' | grep -qx runc \
    || { echo "podman does not use runc: see $CONF_DIR/50-acumos.conf" >&2; exit 1; }
echo "podman $(podman version --format '{{.Client.Version}}'): runtime runc, insecure registry $REGISTRY" >&2
