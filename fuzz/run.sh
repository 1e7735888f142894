#!/usr/bin/env bash
# Fuzz gpu-doctor's readers of foreign input for a bounded time each: `make fuzz` (60 s per
# target, optimized build) and `make fuzz-ci` (short, unoptimized build: it compiles faster).
#
# Usage: fuzz/run.sh SECONDS_PER_TARGET [release|dev] [TARGET...]
#
# cargo-fuzz needs a nightly compiler only for its sanitizers (-Zsanitizer=...); with
# `--sanitizer none` every flag it passes (sancov instrumentation through -Cpasses and
# -Cllvm-args, --cfg fuzzing) works on the stable toolchain this project uses (verified with
# rustc 1.95). Without a sanitizer the fuzzer still finds panics, aborts, stack overflows,
# hangs (-timeout) and memory blow-ups (-rss_limit_mb): what safe Rust code can fail with.
#
# Each target starts from its seeds in fuzz/corpus/TARGET (committed) plus what earlier runs
# found in fuzz/target/corpus/TARGET (not committed). A crash stops the run: libFuzzer writes
# the input to fuzz/artifacts/TARGET/; fix the bug, then copy the input into
# fuzz/regressions/TARGET/ (tests/fuzz_regressions.rs replays that folder in `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:?usage: fuzz/run.sh SECONDS [release|dev] [TARGET...]}
profile=${2:-release}
shift $(( $# >= 2 ? 2 : 1 ))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(gguf_reader rules_loader rules_cost facts_reader elf_reader log_parser config_loader)
fi

CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION (crates.io)" >&2
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

build_flags=(--sanitizer none)
# One input running this long is a hang. The rule bounds allow about 2 s of evaluation per file
# in an optimized build; an unoptimized, instrumented one is 10 to 30 times slower.
timeout=10
if [ "$profile" = dev ]; then
  build_flags+=(--dev --target-dir fuzz/target/dev)
  timeout=60
fi
echo "fuzz: building the targets ($profile)" >&2
cargo fuzz build "${build_flags[@]}"

for target in "${targets[@]}"; do
  work="fuzz/target/corpus/$target"
  mkdir -p "$work" "fuzz/artifacts/$target"
  echo "fuzz: $target for ${seconds} s" >&2
  # -rss_limit_mb: a memory blow-up is a finding too. -max_len: the seeds are at most tens of
  # KiB; longer inputs only slow the search down.
  if ! cargo fuzz run "${build_flags[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 2> "fuzz/target/$target.log"; then
    tail -n 60 "fuzz/target/$target.log" >&2
    echo "fuzz: $target FAILED: the input is in fuzz/artifacts/$target/ (see fuzz/run.sh)" >&2
    exit 1
  fi
  grep -E "stat::number_of_executed_units|stat::new_units_added" "fuzz/target/$target.log" \
    | sed "s/^/fuzz: $target: /" >&2 || true
done
echo "fuzz: no crash in ${#targets[@]} target(s), ${seconds} s each" >&2
