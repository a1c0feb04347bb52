# Two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run run-runner test services images browser sandbox lint fmt bench bench-runner bench-swap bench-onboarding bench-images bench-deploy bench-sandbox bench-marketplace clean example

$(STAMP): requirements.txt requirements-dev.txt runner_image/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt --config-settings editable_mode=compat -e './runner_image[all]'
	touch $(STAMP)

venv: $(STAMP)

# The portal on the embedded default: SQLite, local files, background jobs on threads.
run: $(STAMP) example sandbox
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap
	$(PY) manage.py reap_jobs
	$(PY) manage.py sweep_sandboxes
	@echo "portal: http://127.0.0.1:8000  (upload build/example-iris: metadata.json, model.proto, modelpackage.zip)"
	@# The periodic jobs (deployment status checks, decommissioning, reapers) beside the server.
	$(PY) manage.py run_schedule & trap 'kill $$!' EXIT INT TERM; \
	$(PY) manage.py runserver 127.0.0.1:8000 --noreload --insecure

# The runner alone, serving the example model on :3330.
run-runner: $(STAMP) example
	RUNNER_ADMIN_TOKEN=$${RUNNER_ADMIN_TOKEN:-dev-admin-token} $(PY) -m runner_image serve build/example-iris --port 3330

example: $(STAMP)
	$(PY) examples/iris/make_bundle.py build/example-iris

services:
	bash scripts/ensure-services.sh

# The Docker engine, the registry on 127.0.0.1:5000 and the offline runner base image (cached).
images: $(STAMP)
	bash scripts/ensure-images.sh

# bubblewrap and pasta: every model process on this host runs in their sandbox (README, "Security").
sandbox:
	bash scripts/ensure-sandbox.sh

# Debian's Chromium for the end-to-end tests (Playwright drives it; no browser download).
browser:
	bash scripts/ensure-browser.sh

test: $(STAMP) lint services sandbox images browser
	$(PY) manage.py makemigrations --check --dry-run > /dev/null
	$(PY) -m pytest runner_image/tests
	$(PY) -m pytest tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .

bench: bench-runner bench-swap bench-onboarding bench-images bench-deploy bench-sandbox bench-marketplace

bench-runner: $(STAMP)
	$(PY) bench/runner_vs_mlflow.py

bench-swap: $(STAMP)
	$(PY) bench/swap_under_load.py

bench-onboarding: $(STAMP)
	$(PY) bench/onboarding.py

bench-images: $(STAMP)
	$(PY) bench/image_build.py

bench-deploy: $(STAMP)
	$(PY) bench/reuse_vs_redeploy.py

bench-sandbox: $(STAMP) sandbox
	$(PY) bench/sandbox_overhead.py

# Seeds 100,000 solutions into a PostgreSQL database of its own; ARGS=--quick for 5,000.
bench-marketplace: $(STAMP) services
	$(PY) bench/marketplace_pages.py $(ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
