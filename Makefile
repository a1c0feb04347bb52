# Two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Two installs, each with its stamp: `make run` installs what the portal runs with; `make test` and the
# bench targets add the test and benchmark stack on top (README, "Performance": what each costs).
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
EDITABLE := --config-settings editable_mode=compat -e

.PHONY: venv run run-runner test services images compose browser kubectl sandbox nginx lint fmt bench bench-runner bench-swap bench-onboarding bench-images bench-deploy bench-sandbox bench-marketplace bench-federation bench-licensing bench-metering bench-peers bench-monitoring bench-discovery bench-batch clean example

# The portal's runtime (requirements.txt) and the runner with the one flavour the example uses.
$(RUN_STAMP): requirements.txt runner_image/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt $(EDITABLE) './runner_image[sklearn,card]'
	touch $@

# pytest, Playwright, moto, MLflow and every runner flavour (xgboost, lightgbm, onnx...): tests and benchmarks.
$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt $(EDITABLE) './runner_image[all]'
	touch $@

venv: $(RUN_STAMP)

# The portal on the embedded default: SQLite, local files, background jobs on threads, served by gunicorn
# (acumos_portal/gunicorn.conf.py: ACUMOS_WEB_BIND, default 127.0.0.1:8000) with static files by whitenoise.
run: $(RUN_STAMP) example sandbox nginx
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py bootstrap
	$(PY) manage.py reap_jobs
	$(PY) manage.py sweep_sandboxes
	@# Last before the server's own lines: the address and how to sign in, where the eye is.
	@$(PY) manage.py welcome
	@# The periodic jobs (deployment status checks, decommissioning, reapers) beside the server, and the
	@# federation TLS terminator (nginx, ACUMOS_FEDERATION_BIND) when this instance has an identity.
	@fed="$${ACUMOS_FEDERATION_DIR:-$${ACUMOS_DATA_DIR:-var}/federation}"; \
	$(PY) manage.py run_schedule & pids=$$!; \
	if [ -f "$$fed/instance.key" ] && [ -f "$$fed/instance.crt" ]; then \
		$(PY) manage.py federation_terminator --run & pids="$$pids $$!"; \
	else \
		echo "federation: off (no identity in $$fed; make one: $(PY) manage.py federation_identity --create --name <host name>)"; \
	fi; \
	trap 'kill $$pids 2>/dev/null' EXIT INT TERM; \
	$(PY) -m gunicorn -c acumos_portal/gunicorn.conf.py acumos_portal.wsgi

# The runner alone, serving the example model on :3330.
run-runner: $(RUN_STAMP) example
	@# The runner refuses a weak token (under 24 characters): without RUNNER_ADMIN_TOKEN, make a random one.
	@token=$${RUNNER_ADMIN_TOKEN:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(32))')}; \
	echo "runner admin token (for PUT /model and the other changes): $$token"; \
	RUNNER_ADMIN_TOKEN=$$token $(PY) -m runner_image serve build/example-iris --port 3330

example: $(RUN_STAMP)
	$(PY) examples/iris/make_bundle.py build/example-iris

services:
	bash scripts/ensure-services.sh

# The Docker engine, the registry on 127.0.0.1:5000 and the offline runner base image (cached).
images: $(RUN_STAMP)
	bash scripts/ensure-images.sh

# bubblewrap and pasta: every model process on this host runs in their sandbox (README, "Security").
sandbox:
	bash scripts/ensure-sandbox.sh

# Debian's docker-compose (v1) for the compose stack's test (tests/test_compose.py), on the engine of `images`.
compose: images
	bash scripts/ensure-compose.sh

# nginx, the federation TLS terminator (`manage.py federation_terminator`: Debian's binary, a configuration of its own).
nginx:
	bash scripts/ensure-nginx.sh

# Debian's Chromium for the end-to-end tests (Playwright drives it; no browser download).
browser:
	bash scripts/ensure-browser.sh

# kubectl, which validates the generated Kubernetes manifests (tests/deployment/test_manifests.py).
kubectl:
	bash scripts/ensure-kubectl.sh

test: $(DEV_STAMP) lint services sandbox nginx images browser compose kubectl
	$(PY) manage.py makemigrations --check --dry-run > /dev/null
	$(PY) -m pytest runner_image/tests
	$(PY) -m pytest tests

# ruff, and the house's import rules (pyproject.toml, [tool.importlinter]: layers, no circles).
lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

fmt: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix .

bench: bench-runner bench-swap bench-onboarding bench-images bench-deploy bench-sandbox bench-marketplace bench-federation \
	bench-licensing bench-metering bench-peers bench-monitoring bench-discovery bench-batch

bench-runner: $(DEV_STAMP)
	$(PY) bench/runner_vs_mlflow.py

bench-swap: $(DEV_STAMP)
	$(PY) bench/swap_under_load.py

bench-onboarding: $(DEV_STAMP)
	$(PY) bench/onboarding.py

bench-images: $(DEV_STAMP)
	$(PY) bench/image_build.py

bench-deploy: $(DEV_STAMP)
	$(PY) bench/reuse_vs_redeploy.py

bench-sandbox: $(DEV_STAMP) sandbox
	$(PY) bench/sandbox_overhead.py

# Seeds 100,000 solutions into a PostgreSQL database of its own; ARGS=--quick for 5,000.
bench-marketplace: $(DEV_STAMP) services
	$(PY) bench/marketplace_pages.py $(ARGS)

# Three real portals (PostgreSQL, registry, nginx each) and 1,000 models; ARGS=--quick for 100.
bench-federation: $(DEV_STAMP) services sandbox nginx images
	$(PY) bench/federation.py $(ARGS)

# A licence check on a download, a deploy and policy.decide: open against rtuRequired, in a PostgreSQL
# database of its own (10,000 agreements, 100,000 usage rows); ARGS=--quick for 300 calls per probe.
bench-licensing: $(DEV_STAMP) services
	$(PY) bench/licensing.py $(ARGS)

# The runner's meter: req/s with and without an entitlement (iris, 2 workers, wrk); ARGS=--paired on a busy machine.
bench-metering: $(DEV_STAMP)
	$(PY) bench/licensing_runner.py $(ARGS)

# Runner vs MLServer, BentoML and MLflow; swaps vs MLServer's reload; gRPC vs REST; statistics and shadow costs.
# The peers get venvs of their own under ~/.cache/acumos-bench (made on first run); ARGS="--rounds 1 --duration 5".
bench-peers: $(DEV_STAMP)
	$(PY) bench/runner_vs_peers.py $(ARGS)

# Monitoring: one collection round over 100 live deployments (recorded runner answers), target under 5 s;
# and the deployment page with a day of figures, target under 200 ms.
bench-monitoring: $(DEV_STAMP)
	$(PY) bench/monitoring_collect.py $(ARGS)
	$(PY) bench/monitoring_page.py $(ARGS)

# Batch inference: rows/s of a batch job against one HTTP request per row on the same runner (target at least
# 20x), and the job's peak RSS as its input grows (100,000 and 1,000,000 rows).
bench-batch: $(DEV_STAMP)
	$(PY) bench/batch_vs_per_row.py $(ARGS)

# Discovery by requirement over 100,000 models in PostgreSQL; ARGS=--quick for 5,000.
bench-discovery: $(DEV_STAMP) services
	$(PY) bench/discovery_bench.py $(ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
