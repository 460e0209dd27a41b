# Everything a newcomer runs installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TOOLS ?= .bench-tools

.PHONY: help demo test test-fast test-browser bench clean

## help: list the targets
help:
	@sed -n 's/^## //p' Makefile

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

## demo: run the main job on the built-in local target (local S3 server + examples/)
demo: $(VENV)/.installed
	$(PY) examples/demo.py

## test: lint, type-check, the whole test suite against real local servers, then the S3 end-to-end tests against moto's server
test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest
	$(PY) -m tests.servers moto -- $(PY) -m pytest -m "e2e and not identities" tests/s3/test_upload_aws.py

## test-fast: every test that needs no server (in-memory backend, plan, catalog, CLI): seconds
test-fast: $(VENV)/.installed
	$(PY) -m pytest -n 2 -m "not e2e"

## test-browser: the viewer check against a real browser (installs Debian's chromium with apt when missing: root)
test-browser: $(VENV)/.installed
	bash tests/browser/install.sh
	CI=true $(PY) -m pytest -p no:xdist tests/browser

## bench: time ours against aws cli, s5cmd and curl side by side (local servers; ~7 GiB of data in /tmp)
bench: $(VENV)/.installed $(TOOLS)/.installed
	$(PY) benchmarks/bench.py --tools $(TOOLS)/bin

# The anchors live apart from our venv: awscli pins its own botocore.
$(TOOLS)/.installed: benchmarks/requirements.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet -r benchmarks/requirements.txt
	touch $@

## clean: remove the virtualenvs and caches
clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
