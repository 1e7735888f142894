# gpu-doctor: the two set-up commands of the README are `make run` and `make test`.
# Each one installs what it needs on a fresh Debian or Ubuntu machine.

CARGO ?= cargo
BIN   := target/release/gpu-doctor
SUDO  := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test deps deps-test build lint fmt bench docs facts clean-bench

## Run the doctor on this machine (standard profile). Exit code: 0 ready, 1 not ready, 2 no verdict.
run: deps build
	$(BIN) check $(ARGS)

build:
	$(CARGO) build --release --locked

## Every test, plus formatting and lint checks.
test: deps deps-test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) test --locked

## A C compiler for the test fakes (Rust itself comes from rustup).
deps:
	@command -v $(CARGO) >/dev/null || { echo "gpu-doctor needs Rust 1.95 or newer (rustup); cargo was not found" >&2; exit 2; }
	@command -v cc >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq gcc; }

## Test needs: clippy/rustfmt, a C++ compiler and python3 with venv (a real llama-cpp-python is
## built from its PyPI sdist once and cached in $$HOME/.cache/gpu-doctor-tests).
deps-test:
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy rustfmt
	@command -v g++ >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null || { \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq g++ python3 python3-venv; }
	@# The real consumers of the prom format: promtool and node_exporter's textfile collector.
	@command -v promtool >/dev/null && command -v prometheus-node-exporter >/dev/null || { \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq prometheus prometheus-node-exporter; }

## Timings of `check` per profile and of `--version`, with hyperfine (see docs/benchmarks.md).
bench: deps build
	@command -v hyperfine >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq hyperfine; }
	bench/run.sh $(BIN)

## Regenerate docs/rules.md from rules/*.toml.
docs:
	UPDATE_DOCS=1 $(CARGO) test --locked --lib -- facts::tests::published_schema_is_current rules

fmt:
	$(CARGO) fmt --all
