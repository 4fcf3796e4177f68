# Navarch: `make up` runs a single-node cluster in the foreground; `make test` runs every test.
SHELL := /bin/bash
DATA_DIR ?= /var/lib/navarch
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:/usr/local/bin:$(PATH)

# System packages the server and the tests need, installed only when missing.
RUN_DEPS := ca-certificates curl build-essential protobuf-compiler libprotobuf-dev pkg-config
TEST_DEPS := etcd-server etcd-client

.PHONY: up test deps test-deps build release lint bench fmt

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
	./target/release/navarch server --data-dir $(DATA_DIR)

build:
	$(CARGO) build --workspace --all-targets

test: test-deps
	$(CARGO) build --workspace --all-targets
	$(CARGO) nextest run --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench: test-deps
	$(CARGO) bench -p navarch-store --bench store
