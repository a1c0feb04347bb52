#!/usr/bin/env bash
# nginx, the federation's TLS terminator (federation/terminator.py, `manage.py federation_terminator`):
# it verifies peers' client certificates and forwards them to the portal. Installed from Debian when
# missing and this runs as root; otherwise it says what to install. Only the binary is used: the
# terminator runs nginx with a configuration of its own (`nginx -c FILE`), never the system's.
set -uo pipefail

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing nginx (the federation TLS terminator)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y \
                 --no-install-recommends nginx >/dev/null; }
        # Debian's package starts its own site on port 80 where systemd runs: nobody asked for that one.
        if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled nginx >/dev/null 2>&1; then
            systemctl disable --now nginx >/dev/null 2>&1 || true
        fi
    else
        echo "the federation TLS terminator needs nginx: install it as root (apt-get install -y nginx)" >&2
        exit 1
    fi
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
"$NGINX" -V 2>&1 | grep -q -- '--with-http_ssl_module' \
    || { echo "$NGINX has no TLS (http_ssl_module): install Debian's nginx" >&2; exit 1; }
echo "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') is ready"
