# Two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint fmt bench bench-runner bench-swap clean example

$(STAMP): requirements.txt requirements-dev.txt runner_image/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt --config-settings editable_mode=compat -e './runner_image[all]'
	touch $(STAMP)

venv: $(STAMP)

# Until the portal lands, `make run` serves the example model with the runner on :3330.
run: $(STAMP) example
	RUNNER_ADMIN_TOKEN=$${RUNNER_ADMIN_TOKEN:-dev-admin-token} $(PY) -m runner_image serve build/example-iris --port 3330

example: $(STAMP)
	$(PY) examples/iris/make_bundle.py build/example-iris

test: $(STAMP) lint
	$(PY) -m pytest runner_image/tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .

bench: bench-runner bench-swap

bench-runner: $(STAMP)
	$(PY) bench/runner_vs_mlflow.py

bench-swap: $(STAMP)
	$(PY) bench/swap_under_load.py

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
