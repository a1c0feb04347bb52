#!/usr/bin/env bash
# The sandbox every model process on this host runs in (acumos_portal/sandbox.py): bubblewrap, and
# pasta (Debian's passt) for a local runner's network. Installed from Debian when missing and this
# runs as root; otherwise it says what to install. Without them onboarding fails at the smoke test
# and the local target refuses to start, saying the same.
set -uo pipefail

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v pasta >/dev/null 2>&1 || missing+=(passt)
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || missing+=(libseccomp2)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${missing[*]} (the model sandbox)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y \
                 --no-install-recommends "${missing[@]}" >/dev/null; }
    else
        echo "model code runs only in a sandbox: install ${missing[*]} as root (apt-get install -y bubblewrap passt libseccomp2)" >&2
        exit 1
    fi
fi
# A quick proof that namespaces can be made here (a container without them would fail every model).
if ! bwrap --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
        --proc /proc --dev /dev --unshare-all --unshare-user --die-with-parent --clearenv /usr/bin/true 2>/tmp/acumos-bwrap-check.log; then
    echo "bubblewrap cannot make its namespaces on this host: $(cat /tmp/acumos-bwrap-check.log)" >&2
    exit 1
fi
echo "sandbox: bubblewrap $(bwrap --version | cut -d' ' -f2) and pasta are ready"
