#!/usr/bin/env bash
# The end-to-end tests drive Debian's Chromium through Playwright (Playwright's own browser download
# does not work on these machines). Install it if it is missing, or stop with a message.
set -uo pipefail

CHROMIUM="${ACUMOS_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    echo "installing Chromium (Debian package chromium)"
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
    else
        sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || true
    fi
fi
[ -x "$CHROMIUM" ] || { echo "Chromium is not installed at $CHROMIUM (apt-get install chromium)" >&2; exit 1; }
echo "browser: $("$CHROMIUM" --version 2>/dev/null | head -1)"
