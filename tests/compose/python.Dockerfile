# TEST-ONLY: the stand-in for python:3.11-slim-bookworm (tests/compose/offline-images.sh). Debian bookworm's
# python3 (3.11) with pip, and the wheels the portal's Dockerfile installs, built on the host.
ARG BASE
FROM ${BASE}
COPY wheels /wheels
# pip takes the wheelhouse only (no package index is reachable from a container here), and installs into
# Debian's python3, which PEP 668 would otherwise refuse outside a virtualenv (python:3.11-slim's does not).
ENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore \
    LANG=C.UTF-8
