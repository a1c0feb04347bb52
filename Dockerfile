# The portal's image, for docker-compose.yml's web, worker, beat and migrate services (and any other
# orchestrator): the whole project (minus .dockerignore), its runtime requirements, the model runner with
# the flavours the worker smoke-tests, and the static files collected into the image for whitenoise.
#
#   docker build -t acumos-portal .                                 every flavour (RUNNER_EXTRAS=all)
#   docker build --build-arg RUNNER_EXTRAS=sklearn -t acumos-portal .   a lighter image: sklearn models only
#
# PYTHON_IMAGE is any Debian bookworm image with Python 3.11 and pip (the tests build from an offline one).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# libgomp1: the OpenMP runtime the xgboost and lightgbm wheels link against; bubblewrap, passt and
# libseccomp2: the sandbox model code runs in on this host (README, "Production": the worker needs more
# privileges than a default container has for it). Only what the base lacks is fetched.
ARG DEBIAN_PACKAGES="libgomp1 bubblewrap passt libseccomp2"
RUN missing=""; for package in $DEBIAN_PACKAGES; do \
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing="$missing $package"; \
    done; \
    if [ -n "$missing" ]; then \
        apt-get update && apt-get install -y --no-install-recommends $missing && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /app
# Dependencies first, so that a change to the code alone reuses this layer.
COPY requirements.txt ./
COPY runner_image ./runner_image
ARG RUNNER_EXTRAS=all
RUN pip install -r requirements.txt "./runner_image[${RUNNER_EXTRAS}]"

COPY . .
# Static files live in the image (not the data volume), collected once here; whitenoise serves them.
ENV ACUMOS_STATIC_ROOT=/app/staticfiles ACUMOS_DATA_DIR=/data
RUN ACUMOS_DATA_DIR=/tmp/collect DJANGO_SECRET_KEY=collectstatic-only \
        python manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf /tmp/collect \
    && useradd --create-home --uid 10001 acumos && mkdir -p /data && chown acumos /data
USER acumos
EXPOSE 8000
# The web server; the compose file gives the worker, beat and migrate services their own commands.
ENV ACUMOS_WEB_BIND=0.0.0.0:8000
CMD ["python", "-m", "gunicorn", "-c", "acumos_portal/gunicorn.conf.py", "acumos_portal.wsgi"]
