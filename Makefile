# Navarch: `make up` runs a single-node cluster (control plane + containerd node) in the
# foreground; `make test` runs every test.
SHELL := /bin/bash
DATA_DIR ?= /var/lib/navarch
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:/usr/local/bin:$(PATH)

# System packages the server and the tests need, installed only when missing.
RUN_DEPS := ca-certificates curl build-essential protobuf-compiler libprotobuf-dev pkg-config \
  containerd runc containernetworking-plugins nftables iproute2 busybox-static
TEST_DEPS := etcd-server etcd-client python3-venv bsdutils

# The official Python client, pinned to the Kubernetes minor the server speaks, in a venv under
# target/ (tests/e2e/tests/python_client.rs runs it).
PYTHON_CLIENT := kubernetes==33.1.0
PYENV := target/pyenv

.PHONY: up test deps test-deps python-deps test-image build release lint bench bench-store bench-api fmt

# Debian packages, then the Rust toolchain (rustup) if cargo is missing.
deps:
	@./scripts/ensure-packages.sh $(RUN_DEPS)
	@./scripts/ensure-toolchain.sh

# Also etcd, cargo-nextest and the real kubectl 1.33 the end-to-end tests drive.
test-deps:
	@./scripts/ensure-packages.sh $(RUN_DEPS) $(TEST_DEPS)
	@./scripts/ensure-toolchain.sh --nextest
	@./scripts/ensure-kubectl.sh

release: deps
	$(CARGO) build --release -p navarch

up: release
	./target/release/navarch up --data-dir $(DATA_DIR)

build:
	$(CARGO) build --workspace --all-targets

python-deps: test-deps
	@[ -x $(PYENV)/bin/pip ] || { rm -rf $(PYENV) && python3 -m venv $(PYENV); }
	@[ -f $(PYENV)/.installed-$(PYTHON_CLIENT) ] || { \
	  $(PYENV)/bin/pip install -q --disable-pip-version-check '$(PYTHON_CLIENT)' && \
	  touch $(PYENV)/.installed-$(PYTHON_CLIENT); }

# The busybox test image (navarch.local/busybox:1) as an OCI archive, built from Debian's
# busybox-static without a registry; `navarch images import` loads it.
test-image: target/images/busybox.tar

target/images/busybox.tar: scripts/build-test-image.sh
	./scripts/build-test-image.sh $@

test: test-deps python-deps test-image
	$(CARGO) build --workspace --all-targets
	$(CARGO) nextest run --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench: bench-store bench-api

bench-store: test-deps
	$(CARGO) bench -p navarch-store --bench store

# API latency over HTTPS, a 10,000-pod list and a 100-watcher fan-out; JSON to
# target/bench-results/api.json.
bench-api: deps
	$(CARGO) bench -p navarch-benches --bench api
