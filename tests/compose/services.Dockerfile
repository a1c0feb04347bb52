# TEST-ONLY: one image for the stand-ins of postgres:15, redis:7, registry:2 and MinIO
# (tests/compose/docker-compose.offline.yml gives each service its command): Debian's postgresql-15,
# redis-server and docker-registry, and moto_server as the S3-compatible store (from the wheelhouse).
ARG BASE
FROM ${BASE}
RUN pip install --quiet moto[server] && mkdir -p /var/lib/registry
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
# The registry's own configuration: Debian's default one has htpasswd authentication.
COPY registry.yml /etc/docker/registry/config.yml
