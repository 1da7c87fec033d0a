# sensorsim — the documented entry points. Every target sets up what it needs.
# Tools are cached outside the repository in $(SENSORSIM_CACHE) (default ~/.cache/sensorsim).

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# scripts/ and bench/ import the test bed (testbed/) from the checkout
export PYTHONPATH := $(CURDIR)

.PHONY: help venv lock tools kafka-up kafka-down cluster-up cluster-down run test test-unit \
        test-kafka test-k8s check lint typecheck crd operator bench clean image release

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml requirements-dev.lock
	@command -v uv >/dev/null || python3 -m pip install --quiet uv
	uv venv --quiet --allow-existing -p python3.11 $(VENV)
	uv pip sync --quiet -p $(PY) requirements-dev.lock
	uv pip install --quiet -p $(PY) --no-deps -e .
	@touch $@

venv: $(VENV)/.installed ## create .venv with sensorsim and its dev tools

tools: venv ## build or reuse the pinned Kafka, Kubernetes, etcd, kwok, helm, Prometheus, OCI registry
	$(PY) -m testbed tools

kafka-up: venv ## start a local Kafka broker in the background (last line: KAFKA_BOOTSTRAP_SERVERS=)
	@$(PY) -m testbed kafka-up

kafka-down: venv ## stop the local broker and remove its data
	@$(PY) -m testbed kafka-down

cluster-up: venv ## start a local control plane in the background (last line: KUBECONFIG=)
	@$(PY) -m testbed cluster-up

cluster-down: venv ## stop the local control plane and remove its state
	@$(PY) -m testbed cluster-down

image: venv ## build the Dockerfile with podman (stand-in base, see README); last line IMAGE=
	@$(PY) -m testbed image

release: venv ## VERSION=x [REGISTRY=host:port]: wheel, sdist, image, chart of HEAD; push to REGISTRY
	@$(PY) scripts/release.py "$(VERSION)" $(if $(REGISTRY),--registry "$(REGISTRY)")

run: venv ## demo: start a broker, run a small fleet for a few seconds, summarise the topic, stop
	$(PY) scripts/demo.py

test: tools ## all checks and all tests (unit, real Kafka, real Kubernetes, the image in podman)
	$(MAKE) --no-print-directory check
	$(PY) -m pytest -p no:cacheprovider

test-unit: venv ## tests that run in the test process alone (no other program, tool or infrastructure)
	$(PY) -m pytest -m unit

test-kafka: tools ## tests against a real Kafka broker
	$(PY) -m pytest -m kafka

test-k8s: tools ## tests against a real Kubernetes control plane
	$(PY) -m pytest -m k8s

check: lint typecheck ## ruff, mypy --strict, import contracts, generated files up to date

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy

operator: venv ## run the operator in the foreground against $$KUBECONFIG (plain-text logs)
	OPERATOR_LOG_FORMAT=$${OPERATOR_LOG_FORMAT:-plain} $(PY) -m sensorsim_operator

bench: tools ## run the benchmarks (see docs/benchmarks.md)
	$(PY) bench/producer_bench.py
	$(PY) bench/operator_bench.py

lock: ## re-pin requirements.lock (image) and requirements-dev.lock (dev, CI) from pyproject.toml
	uv pip compile -q pyproject.toml --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock
	uv pip compile -q pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements-dev.lock

clean: ## remove local state (not the tool cache)
	-$(PY) -m testbed kafka-down
	-$(PY) -m testbed cluster-down
	rm -rf .infra .mypy_cache .ruff_cache .pytest_cache
