# gpu-doctor: the two set-up commands of the README are `make run` and `make test`.
# Each one installs what it needs on a fresh Debian or Ubuntu machine.

CARGO ?= cargo
BIN   := target/release/gpu-doctor
SUDO  := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test deps deps-test build lint fmt bench docs facts clean-bench test-slurm \
	test-precommit test-pip fuzz fuzz-ci build-cuda cuda-toolkit

## Run the doctor on this machine (standard profile) and say plainly what its exit code means:
## 0 ready, 1 not ready, 2 no verdict. make itself exits 0 when the doctor did, else 2 (after
## its own "Error N" line, N being the doctor's code); the build's failure stops before the line.
run: deps build
	@$(BIN) check $(ARGS); code=$$?; \
	case $$code in \
	  0) what="ready";; \
	  1) what="not ready: the findings above say why, \`gpu-doctor fix\` shows the commands";; \
	  2) what="no verdict: bad arguments or input, or an internal error (the message above)";; \
	  130|143) what="interrupted, no verdict";; \
	  *) what="unexpected (docs/exit-codes.md)";; \
	esac; \
	echo "make run: gpu-doctor exited with code $$code: $$what$$( [ $$code = 0 ] || echo "; make reports it as \"Error $$code\" below: the build itself succeeded")" >&2; \
	exit $$code

build:
	$(CARGO) build --release --locked

## The reference engine with CUDA (docs/reference-engine.md): llama.cpp as shared libraries,
## CUDA as a module loaded at run time, in its own target folder (target/cuda), bundled with its
## libraries in .dev/cuda-engine. Needs a CUDA toolkit in CUDA_ROOT (`make cuda-toolkit`
## assembles one from PyPI). Tens of minutes on 2 cores; not part of CI.
CUDA_ROOT  ?= /opt/cuda-pip/toolkit
CUDA_ARCHS ?= 90
build-cuda: deps
	@[ -x "$(CUDA_ROOT)/bin/nvcc" ] || { echo "no nvcc in CUDA_ROOT=$(CUDA_ROOT); run make cuda-toolkit or set CUDA_ROOT" >&2; exit 2; }
	PATH="$(CUDA_ROOT)/bin:$$PATH" CUDACXX="$(CUDA_ROOT)/bin/nvcc" CUDAToolkit_ROOT="$(CUDA_ROOT)" \
	  GGML_BACKEND_DL=ON CMAKE_CUDA_ARCHITECTURES="$(CUDA_ARCHS)" \
	  RUSTFLAGS='-C link-arg=-Wl,-rpath,$$ORIGIN' \
	  $(CARGO) build --release --locked --features cuda --target-dir target/cuda
	tools/cuda-engine-bundle.sh target/cuda/release .dev/cuda-engine

## A CUDA 13.0 toolkit (nvcc, cudart, cuBLAS) from PyPI wheels in /opt/cuda-pip, for build-cuda.
cuda-toolkit:
	tools/cuda-toolkit-from-pypi.sh /opt/cuda-pip

## Every test, plus formatting and lint checks.
test: deps deps-test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	GPU_DOCTOR_REQUIRE_SLURM=1 $(CARGO) test --locked

## A C compiler for the test fakes; cmake, g++ and libclang for llama.cpp (Rust itself comes
## from rustup).
deps:
	@command -v $(CARGO) >/dev/null || { echo "gpu-doctor needs Rust 1.95 or newer (rustup); cargo was not found" >&2; exit 2; }
	@command -v cc >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq gcc; }
	@# The reference engine compiles llama.cpp: cmake, a C++ compiler, libclang for bindgen.
	@command -v cmake >/dev/null && command -v g++ >/dev/null && \
	  { [ -n "$$LIBCLANG_PATH" ] || ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1; } || { \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq cmake g++ libclang-dev; }

## Test needs: clippy/rustfmt, a C++ compiler and python3 with venv (a real llama-cpp-python is
## built from its PyPI sdist once and cached in $$HOME/.cache/gpu-doctor-tests).
deps-test:
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy rustfmt
	@command -v git >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq git; }
	@command -v g++ >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null || { \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq g++ python3 python3-venv; }
	@# The real consumers of the prom format: promtool and node_exporter's textfile collector.
	@command -v promtool >/dev/null && command -v prometheus-node-exporter >/dev/null || { \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq prometheus prometheus-node-exporter; }
	@# Slurm for tests/slurm.rs (a one-node cluster on 127.0.0.1, run as the current user) and
	@# systemd-analyze for the textfile timer of docs/prometheus.md.
	@[ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && [ -x /usr/sbin/munged ] && \
	  command -v scontrol >/dev/null && command -v systemd-analyze >/dev/null || { \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends \
	    slurmctld slurmd slurm-client munge systemd; }

## Only the Slurm test: drain and resume through a real one-node cluster (about 10 s).
test-slurm: deps deps-test
	GPU_DOCTOR_REQUIRE_SLURM=1 $(CARGO) test --locked --test slurm

## The pre-commit hook as users get it: pre-commit (PyPI) `try-repo` builds the `gpu-doctor`
## hook from a clone of this tree with `cargo install` (a release build: many minutes) and runs
## it on a sample repository with three venvs. `make test` runs the reduced form (the
## `gpu-doctor-system` hook, no build). See docs/pre-commit.md.
test-precommit: deps deps-test
	$(CARGO) test --locked --test precommit -- --include-ignored --nocapture

## The Python packaging: the release wheel and sdist built by maturin (PyPI), installed with
## pip into a fresh venv, run with uvx and pipx. `make test` builds and installs a dev-profile
## wheel. See docs/install.md.
test-pip: deps deps-test
	$(CARGO) test --locked --test packaging -- --include-ignored --nocapture

## Fuzz the readers of foreign input (GGUF, rule and config files, facts, ELF, llama.cpp logs)
## for FUZZ_SECONDS each with cargo-fuzz (installed from crates.io on first use; fuzz/run.sh).
FUZZ_SECONDS ?= 60
fuzz: deps
	fuzz/run.sh $(FUZZ_SECONDS) release

## The short fuzz run of CI (.ci/run, after `make test`): 10 s per target, unoptimized build.
fuzz-ci: deps
	fuzz/run.sh 10 dev

## Timings of `check` per profile and of `--version`, with hyperfine (see docs/benchmarks.md).
bench: deps build
	@command -v hyperfine >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq hyperfine; }
	bench/run.sh $(BIN)

## Regenerate docs/rules.md and docs/symptoms.md from rules/*.toml (and docs/facts.schema.json).
docs:
	UPDATE_DOCS=1 $(CARGO) test --locked --lib -- published_schema_is_current rules

fmt:
	$(CARGO) fmt --all
