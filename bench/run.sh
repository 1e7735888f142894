#!/usr/bin/env bash
# Timings of gpu-doctor on this machine, by hyperfine: anyone can repeat them with `make bench`.
# Prints a Markdown table (mean, median, min, max) and keeps hyperfine's JSON in target/bench/.
set -euo pipefail
BIN=$(realpath "${1:-target/release/gpu-doctor}")
ROOT=$(pwd)
OUT=$ROOT/target/bench
mkdir -p "$OUT"

# A project like the seed's: three real virtual environments made by python3 -m venv.
PROJECT=$(mktemp -d)
trap 'rm -rf "$PROJECT"' EXIT
for env in .venv .venv310 .venv-gpu; do python3 -m venv --without-pip "$PROJECT/$env"; done

bench() {
  local name=$1 dir=$2; shift 2
  (cd "$dir" && hyperfine -N --warmup 5 --runs "${RUNS:-40}" --ignore-failure \
    --export-json "$OUT/$name.json" "$@" >/dev/null 2>&1)
  python3 - "$OUT/$name.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
ms = lambda s: f"{s * 1000:.1f}"
print(f"| {sys.argv[2]} | `{r['command'].split('/')[-1]}` | {ms(r['median'])} | {ms(r['mean'])} ± {ms(r['stddev'] or 0)} | {ms(r['min'])} | {ms(r['max'])} |")
PY
}

echo "| case | command | median ms | mean ± σ ms | min ms | max ms |"
echo "|---|---|---:|---:|---:|---:|"
bench version "$ROOT" "$BIN --version"
bench quick "$ROOT" "$BIN check --profile quick"
bench standard "$ROOT" "$BIN check --profile standard"
bench full "$ROOT" "$BIN check --profile full"
bench quick-3-envs "$PROJECT" "$BIN check --profile quick"
bench standard-3-envs "$PROJECT" "$BIN check --profile standard"
bench replay-h100 "$ROOT" "$BIN check --facts fixtures/facts/h100.json"
bench replay-seed-laptop "$ROOT" "$BIN check --facts fixtures/facts/seed-laptop.json"
